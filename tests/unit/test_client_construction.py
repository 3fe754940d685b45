"""What a Client is made with: the direct arguments or the HTTP API's, never both; what the
client exports; and what a client of the HTTP API refuses (no request is sent here)."""

from __future__ import annotations

import pytest

import hive.client
from hive import Client
from hive.errors import InvalidArgument, NotAvailableOverHttp

KEY = "hive_0123abcd_secretsecretsecretsecret"


def test_the_client_package_exports_the_client_its_areas_and_its_views() -> None:
    assert sorted(hive.client.__all__) == [
        "ApprovalView", "Approvals", "BudgetView", "Budgets", "Client", "DeadLetterView",
        "PipelineView", "Run", "RunPage", "RunView", "ServiceInstanceView", "Services",
        "StepView", "UsageView", "WorkerView",
    ]  # fmt: skip
    for name in hive.client.__all__:
        assert getattr(hive.client, name) is not None


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"base_url": "http://127.0.0.1:8000"}, "api_key is needed with base_url"),
        ({"api_key": KEY}, "base_url is needed with api_key"),
        ({"base_url": "ftp://hive", "api_key": KEY}, "base_url must be an http"),
        ({"base_url": "http://hive", "api_key": " "}, "api_key must be an API key"),
        ({"base_url": "http://hive", "api_key": KEY, "timeout_s": 0}, "timeout_s must be"),
        ({"base_url": "http://hive", "api_key": KEY, "tenant": "acme"}, "tenant: a client of"),
        ({"base_url": "http://hive", "api_key": KEY, "role": "admin"}, "role: a client of"),
        ({"timeout_s": 5}, "timeout_s is for a client of the HTTP API"),
    ],
)
def test_a_client_refuses_arguments_of_the_other_kind_naming_them(
    arguments: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        Client(**arguments)  # type: ignore[arg-type]

    assert any(p.startswith(problem) for p in refused.value.problems), refused.value.problems
    assert KEY not in str(refused.value)


def test_a_client_of_the_api_shows_its_address_never_its_key_nor_credentials() -> None:
    with Client(base_url="https://user:pw@hive.example:8443/", api_key=KEY) as client:
        assert repr(client) == "<Client <HttpTransport https://hive.example:8443>>"
        assert client.tenant is None


def test_operations_the_api_does_not_offer_say_so() -> None:
    with Client(base_url="http://127.0.0.1:1", api_key=KEY) as client:
        calls = [
            client.workers,
            client.usage,
            client.budgets.list,
            lambda: client.budgets.get("acme"),
            lambda: client.approvals.get("00000000-0000-0000-0000-000000000001", "send"),
            lambda: client.settings,
        ]
        for call in calls:
            with pytest.raises(NotAvailableOverHttp, match="use a direct Client"):
                call()
        with pytest.raises(InvalidArgument, match="recorded as the API key's"):
            client.approvals.approve("00000000-0000-0000-0000-000000000001", "send", by="me")
