"""The ``http`` agent: one HTTP call to a URL, or to a service of the registry by name.

5xx, 429, timeouts and lost connections are :class:`~hive.errors.TransientError` (retried,
after the answer's ``Retry-After`` when it gives one); any other status outside ``expect``
is a :class:`~hive.errors.PermanentError`. Credentials are read at call time from the
environment variables the input names. Its input and output are
:mod:`hive.agents.builtin.http_models`; the call itself is
:mod:`hive.agents.builtin.http_call`, over :mod:`hive.agents.builtin.http_transport`.
"""

from __future__ import annotations

from hive.agents.base import Agent, AgentContext
from hive.agents.builtin.http_models import HttpInput, HttpOutput


class HttpAgent(Agent[HttpInput, HttpOutput]):
    """Calls an HTTP endpoint (a URL, or a service by name) and returns its answer."""

    name = "http"
    version = "1"
    input_model = HttpInput
    output_model = HttpOutput

    def run(self, data: HttpInput, ctx: AgentContext) -> HttpOutput:
        # Imported here: every producer loads the agents to check pipelines, and only a
        # worker calls out, so httpx stays out of producers and the CLI.
        from hive.agents.builtin.http_call import call

        return call(data, ctx)
