"""The producer API: submit runs, look at them, wait for them.

>>> from hive import Client
>>> run = Client().submit("doc-triage", {"text": "Call me at 415-555-0100"})
>>> run.wait(timeout=30)

``Client(tenant="acme")`` acts for one tenant: its runs are submitted for that tenant and
it sees no other tenant's run. ``Client()`` is the operator, across every tenant. Every
call goes through :mod:`hive.service`, where the tenant and the role are enforced.

``Client(base_url="http://hive-api:8000", api_key=key)`` does the same over the HTTP API
(``hive api``), as the key's tenant and role: the same methods, views and errors.

::

    client.py      Client, Run: the producer's calls, over a transport
    areas.py       Services, Approvals, Budgets: client.services, .approvals, .budgets
    transport.py   Transport: what the client needs from the way it reaches the farm
    direct.py      DirectTransport: hive.service in this process
    http.py        HttpTransport: the HTTP API over httpx (keep-alive, one retry)
    http_errors.py the API's error answers as hive.errors, in one place
    wire.py        the API's bodies as the service's views
"""

from hive.client.areas import Approvals, Budgets, Services
from hive.client.client import Client, Run
from hive.service import (
    ApprovalView,
    BudgetView,
    DeadLetterView,
    PipelineView,
    RunPage,
    RunView,
    ServiceInstanceView,
    StepView,
    UsageView,
    WorkerView,
)

__all__ = [
    "ApprovalView",
    "Approvals",
    "BudgetView",
    "Budgets",
    "Client",
    "DeadLetterView",
    "PipelineView",
    "Run",
    "RunPage",
    "RunView",
    "ServiceInstanceView",
    "Services",
    "StepView",
    "UsageView",
    "WorkerView",
]
