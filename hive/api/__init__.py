"""``hive api``: the HTTP producer API, a layer beside the CLI over :mod:`hive.service`.

::

    app          create_app: the FastAPI application (uvicorn's factory)
    middleware   the request body cap (413), security headers, the last-resort 500
    errors       Hive's errors as HTTP answers: 401, 403, 404, 422 with each problem's path
    auth         the key of a request (Bearer or X-API-Key) as a Principal; the audit record
    models       the wire models: the field names of the Python client and ``--json``
    runs         /v1/runs: submit, read, list (cursor pages), cancel, wait
    pipelines    /v1/pipelines
    health       /healthz (alive), /readyz (PostgreSQL and Redis answer)

Role checks and tenant scoping are the service layer's; this layer authenticates, parses
and serialises, nothing else.
"""

from hive.api.app import create_app

__all__ = ["create_app"]
