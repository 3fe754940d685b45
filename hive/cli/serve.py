"""``hive api``: serve the HTTP producer API (FastAPI on uvicorn).

The application is named to uvicorn by its import string, so the CLI imports nothing of
:mod:`hive.api` (a sibling layer) and each of ``--workers`` builds its own.
"""

from __future__ import annotations

import click

from hive.cli.base import check_listen, command, fail

_LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)
APP = "hive.api.app:create_app"
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


@command("api")
@click.option("--host", default=None,
              help="Listen here [default: HIVE_API_HOST, 127.0.0.1: loopback only].")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="[default: HIVE_API_PORT, 8080]")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes serving the API.")  # fmt: skip
@click.option("--loglevel", "-l", type=_LOG_LEVELS, default=None)
def api(host: str | None, port: int | None, workers: int, loglevel: str | None) -> None:
    """Serve the HTTP API: /v1/..., /healthz, /readyz, /metrics, /openapi.json."""
    try:
        import uvicorn
    except ImportError:
        fail("`hive api` needs the api extra: pip install 'hive[api]'")
    from hive.exposition import prepare_multiprocess_dir
    from hive.preflight import check_api_body_limit
    from hive.settings import get_settings

    check_api_body_limit()

    # Before anything imports prometheus-client: every worker process counts into one
    # directory, and each serves the sum on /metrics.
    prepare_multiprocess_dir()
    settings = get_settings()
    level = (loglevel or settings.logs.level).upper()
    host = host or settings.api.host
    port = port or settings.api.port
    check_listen(host, port, "HIVE_API_HOST (or --host)", "HIVE_API_PORT (or --port)")
    # Not a log record: the line a supervisor (or a test) waits for, whatever the level.
    click.echo(f"hive api: serving on {host}:{port} with {workers} worker(s)", err=True)
    uvicorn.run(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Hive's records on stderr, in every worker process (uvicorn applies this in each);
        # the access log among them (a path and a status, never a header).
        log_config={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"hive": {"()": "hive.logs.stderr_handler"}},
            "root": {"handlers": ["hive"], "level": level},
            "loggers": {name: {"handlers": [], "propagate": True} for name in _UVICORN},
        },
        server_header=False,
        # X-Forwarded-For is believed from the configured proxies alone (uvicorn's
        # ProxyHeadersMiddleware): without any, a client could name itself anything.
        proxy_headers=bool(settings.api.proxies),
        forwarded_allow_ips=settings.api.proxies or None,
    )
