"""The Celery configuration built from Hive's settings."""

from __future__ import annotations

import ssl

import pytest

from hive.settings import BrokerSettings, Settings
from hive.tasks.app import celery_config, tls_options


@pytest.mark.parametrize(
    "url",
    ["rediss://:pw@redis.example:6380/0", "rediss://redis.example/0?ssl_ca_certs=/ca.pem"],
)
def test_a_rediss_url_that_chooses_no_certificate_check_gets_a_verified_one(url: str) -> None:
    # kombu alone would connect with CERT_NONE, while redis-py verifies.
    assert tls_options(url) == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


@pytest.mark.parametrize(
    "url", ["redis://:pw@localhost:6379/0", "rediss://redis.example/0?ssl_cert_reqs=optional", ""]
)
def test_a_plain_url_or_one_that_chooses_its_check_gets_no_tls_options(url: str) -> None:
    assert tls_options(url) is None


def test_broker_and_result_backend_on_rediss_both_verify_certificates() -> None:
    settings = Settings(
        broker=BrokerSettings(
            url="rediss://:pw@redis.example:6380/0",
            result_backend="rediss://:pw@redis.example:6380/1",
        )
    )

    config = celery_config(settings)

    assert config["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert config["redis_backend_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
