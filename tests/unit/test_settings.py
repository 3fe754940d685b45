"""Settings come from HIVE_* variables; a malformed one is reported by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive.errors import SettingsError
from hive.settings import Settings, describe, get_settings, load_settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HIVE_LEASE_GRACE_S", "abc"),
        ("HIVE_LEASE_GRACE_S", "0"),
        ("HIVE_RETENTION_DAYS", "1.5"),
        ("HIVE_VISIBILITY_TIMEOUT_S", "-3"),
        ("HIVE_DATABASE_URL", "mysql://root@localhost/hive"),
        ("HIVE_BROKER_URL", "amqp://guest@localhost//"),
        ("HIVE_LOG_FORMAT", "xml"),
        ("HIVE_FLOWER_BASIC_AUTH", "admin"),
        ("HIVE_FLOWER_BASIC_AUTH", ":"),
        ("HIVE_FLOWER_BASIC_AUTH", "admin:pw,guest:"),
        ("HIVE_DATABASE_URL", "postgresql+psycopg2://"),
        ("HIVE_DATABASE_URL", "postgresql://u:pw@db:port/hive"),
        ("HIVE_DATABASE_URL", "postgresql://u:pw@[::1/hive"),
        ("HIVE_BROKER_URL", "redis://:pw@broker:port/0"),
        ("HIVE_BROKER_URL", "redis://:pw@broker:6379/zero"),
        ("HIVE_BROKER_URL", "sentinel://:pw@broker:26379/0"),
        ("HIVE_RESULT_BACKEND", "rpc://"),
        ("HIVE_PIPELINES_DIR", ""),
        ("HIVE_LOG_LEVEL", "LOUD"),
        ("HIVE_KEY_PREFIX", ""),
        ("HIVE_PURGE_INTERVAL_S", "inf"),
        ("HIVE_LEASE_GRACE_S", "nan"),
    ],
)
def test_load_settings_with_a_malformed_variable_raises_settings_error_naming_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable}: ")
    assert raised.value.problem
    assert not raised.value.problem.startswith("Value error")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HIVE_DATABASE_URL", "postgresql://admin:s3cret@db:port/hive"),
        ("HIVE_DATABASE_URL", "mysql://admin:s3cret@db/hive"),
        ("HIVE_BROKER_URL", "redis://:s3cret@broker:6379/zero"),
        ("HIVE_RESULT_BACKEND", "amqp://admin:s3cret@broker//"),
        ("HIVE_FLOWER_BASIC_AUTH", "admin:s3cret,guest:"),
    ],
)
def test_a_settings_error_never_repeats_the_password(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert "s3cret" not in str(raised.value)


def test_get_settings_with_a_malformed_variable_raises_settings_error_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIVE_LEASE_GRACE_S", "abc")

    with pytest.raises(SettingsError, match="HIVE_LEASE_GRACE_S"):
        get_settings()


def test_load_settings_reads_hive_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_LEASE_GRACE_S", "12.5")
    monkeypatch.setenv("HIVE_DATABASE_URL", "postgresql://u@db:5432/farm")
    monkeypatch.setenv("HIVE_BROKER_URL", "redis://broker:6379/3")
    monkeypatch.setenv("HIVE_PIPELINES_DIR", "/etc/hive/pipelines")
    monkeypatch.setenv("HIVE_FLOWER_BASIC_AUTH", "admin:secret")

    settings = load_settings()

    assert settings.recovery.lease_grace_s == 12.5
    # A bare postgresql:// gets the driver Hive ships (SQLAlchemy 2.1 would pick psycopg 3).
    assert settings.database.url.get_secret_value() == "postgresql+psycopg2://u@db:5432/farm"
    assert settings.broker.url.get_secret_value() == "redis://broker:6379/3"
    assert settings.pipelines.dir == Path("/etc/hive/pipelines")
    assert settings.flower.basic_auth is not None
    assert settings.flower.basic_auth.get_secret_value() == "admin:secret"


def test_load_settings_accepts_the_valid_shapes_of_each_url_and_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIVE_DATABASE_URL", "postgresql:///farm?host=/var/run/postgresql")
    monkeypatch.setenv("HIVE_BROKER_URL", "rediss://:pw@broker")
    monkeypatch.setenv("HIVE_RESULT_BACKEND", "")
    monkeypatch.setenv("HIVE_FLOWER_BASIC_AUTH", "admin:pw,guest:pw2")
    monkeypatch.setenv("HIVE_LOG_LEVEL", "debug")

    settings = load_settings()

    assert (
        settings.database.url.get_secret_value()
        == "postgresql+psycopg2:///farm?host=/var/run/postgresql"
    )
    assert settings.broker.url.get_secret_value() == "rediss://:pw@broker"
    assert settings.broker.result_backend.get_secret_value() == ""
    assert settings.flower.basic_auth is not None
    assert settings.flower.basic_auth.get_secret_value() == "admin:pw,guest:pw2"
    assert settings.logs.level == "DEBUG"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://broker:6379/0?socket_timeout=5", "query parameter 'socket_timeout'"),
        ("redis://broker:6379/0?ssl_cert_reqs=none", "ssl_cert_reqs is for rediss://"),
        ("rediss://broker:6379/0?ssl_cert_reqs=never", "ssl_cert_reqs must be"),
    ],
)
def test_a_broker_url_query_celery_or_redis_py_would_trip_on_is_refused(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_BROKER_URL", url)

    with pytest.raises(SettingsError, match="HIVE_BROKER_URL") as raised:
        load_settings()

    assert problem in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "rediss://:pw@broker/0?ssl_cert_reqs=none",
        "rediss://broker/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required",
        "rediss://broker/0?ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_check_hostname=false",
    ],
)
def test_a_broker_url_may_carry_the_tls_options(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_BROKER_URL", url)

    assert load_settings().broker.url.get_secret_value() == url


def test_an_empty_flower_basic_auth_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_FLOWER_BASIC_AUTH", "")

    assert load_settings().flower.basic_auth is None


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.recovery.lease_grace_s = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        settings.recovery = settings.recovery  # type: ignore[misc]


def test_every_malformed_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_BROKER_URL", "amqp://guest:hunter2@broker//")
    monkeypatch.setenv("HIVE_LEASE_GRACE_S", "abc")
    monkeypatch.setenv("HIVE_LOG_LEVEL", "LOUD")

    with pytest.raises(SettingsError) as raised:
        load_settings()

    named = [variable for variable, _ in raised.value.problems]
    assert named == ["HIVE_BROKER_URL", "HIVE_LEASE_GRACE_S", "HIVE_LOG_LEVEL"]
    assert str(raised.value).splitlines()[1].startswith("HIVE_LEASE_GRACE_S: ")
    assert "hunter2" not in str(raised.value)


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_DATABASE_URL", "postgresql://u:hunter2@db:5432/farm")
    monkeypatch.setenv("HIVE_BROKER_URL", "redis://:hunter3@broker:6379/0")
    monkeypatch.setenv("HIVE_RESULT_BACKEND", "redis://:hunter4@broker:6379/1")
    monkeypatch.setenv("HIVE_FLOWER_BASIC_AUTH", "admin:hunter5")

    shown = f"{load_settings()!r} {load_settings()}"

    assert not [word for word in ("hunter2", "hunter3", "hunter4", "hunter5") if word in shown]


def _readme_rows() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return [line for line in readme.splitlines() if line.startswith("| `HIVE_")]


def test_the_readme_settings_table_is_the_settings_own_description() -> None:
    expected = [
        f"| `{variable}` | {default} | {description} |"
        for variable, default, description in describe()
    ]

    # On failure, paste the expected rows into README.md's settings table.
    assert _readme_rows() == expected, "\n".join(expected)


@pytest.mark.parametrize(
    ("variable", "ours"),
    [
        ("CELERY_BROKER_URL", "HIVE_BROKER_URL"),
        ("CELERY_BROKER_READ_URL", "HIVE_BROKER_URL"),
        ("CELERY_BROKER_WRITE_URL", "HIVE_BROKER_URL"),
        ("CELERY_RESULT_BACKEND", "HIVE_RESULT_BACKEND"),
    ],
)
def test_load_settings_refuses_a_celery_variable_naming_it_and_hives_own(
    variable: str, ours: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "redis://:secret@elsewhere:6379/0")

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert raised.value.variable == variable
    assert ours in raised.value.problem
    assert "secret" not in str(raised.value)


def test_load_settings_ignores_an_empty_celery_variable_as_celery_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "")

    assert load_settings().broker.url.get_secret_value()


def test_data_dir_must_not_be_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_DATA_DIR", "")

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert raised.value.variable == "HIVE_DATA_DIR"


def test_a_heartbeat_no_shorter_than_the_lost_worker_threshold_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIVE_WORKER_HEARTBEAT_S", "30")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert refused.value.problems == [
        ["HIVE_WORKER_LOST_AFTER_S", "must be longer than HIVE_WORKER_HEARTBEAT_S"]
    ]
    monkeypatch.setenv("HIVE_WORKER_LOST_AFTER_S", "31")
    assert load_settings().workers.lost_after_s == 31.0
