"""Hive's exceptions.

::

    HiveError
    ├── SettingsError            a HIVE_* variable is malformed
    ├── ServiceUnavailable       PostgreSQL or Redis cannot be reached
    ├── DatabaseNotMigrated      the database has no Hive tables (run `hive db upgrade`)
    ├── PipelineError            a pipeline file is invalid (carries every problem)
    ├── UnknownPipeline          no pipeline of that name
    ├── InputError               run input does not fit the pipeline's input_schema
    ├── InvalidArgument          a submit argument PostgreSQL cannot store (also a ValueError)
    ├── RunNotFound              also what a tenant-bound caller hears of another tenant's run
    ├── RunFailed                raised by Run.wait(): carries the failed step and its error
    ├── DispatchError            steps could not be published, and retrying will not help
    ├── PermissionDenied         the caller's role lacks the right (never about whose run it is)
    ├── ReplayError              the run cannot be replayed as asked
    └── AgentError               raised by agents
        ├── PermanentError       never retried
        │   ├── InvalidAgentInput    the step's input does not fit the agent's input model
        │   └── InvalidAgentOutput   the agent returned something that does not fit its output model
        └── RetryableError       always retried (within max_retries)
            └── TransientError

Exceptions keep JSON-able constructor arguments so Celery can rebuild them.
"""

from __future__ import annotations

from typing import Any


class HiveError(Exception):
    """Root of every error Hive raises on purpose."""


class SettingsError(HiveError):
    """One or more ``HIVE_*`` variables are malformed. ``variable`` and ``problem`` name the
    first; ``problems`` holds every one as ``[variable, problem]`` pairs."""

    def __init__(
        self, variable: str, problem: str, problems: list[list[str]] | None = None
    ) -> None:
        super().__init__(variable, problem, problems)
        self.variable = variable
        self.problem = problem
        self.problems = problems or [[variable, problem]]

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> SettingsError:
        (variable, problem), *_ = problems
        return cls(variable, problem, [[v, p] for v, p in problems])

    def __str__(self) -> str:
        return "\n".join(f"{variable}: {problem}" for variable, problem in self.problems)


class ServiceUnavailable(HiveError):
    """A server Hive needs cannot be reached; names the setting that points at it."""

    def __init__(self, variable: str, detail: str) -> None:
        super().__init__(variable, detail)
        self.variable = variable
        self.detail = detail

    def __str__(self) -> str:
        return f"cannot reach the server at {self.variable}: {self.detail}"


class DatabaseNotMigrated(HiveError):
    """The database ``HIVE_DATABASE_URL`` names is reachable but has no Hive tables."""

    def __init__(self, database: str) -> None:
        super().__init__(database)
        self.database = database

    def __str__(self) -> str:
        return (
            f"HIVE_DATABASE_URL: database {self.database!r} has no Hive tables; "
            "run `hive db upgrade` first"
        )


class PipelineError(HiveError):
    """One or more problems in pipeline files; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class UnknownPipeline(HiveError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name, known)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        known = ", ".join(sorted(self.known)) or "none"
        return f"unknown pipeline {self.name!r}; known pipelines: {known}"


class InputError(HiveError):
    """Run input that does not fit the pipeline's ``input_schema``."""

    def __init__(self, pipeline: str, problems: list[str]) -> None:
        super().__init__(pipeline, problems)
        self.pipeline = pipeline
        self.problems = problems

    def __str__(self) -> str:
        return f"invalid input for pipeline {self.pipeline!r}: " + "; ".join(self.problems)


class InvalidArgument(HiveError, ValueError):
    """Arguments of a call that Hive cannot take as given; ``problems`` names each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


class RunNotFound(HiveError):
    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id

    def __str__(self) -> str:
        return f"no run with id {self.run_id}"


class RunFailed(HiveError):
    """A run ended without success; names the failed step and its error."""

    def __init__(
        self, run_id: str, status: str, step_id: str | None, error: dict[str, Any] | None
    ) -> None:
        super().__init__(run_id, status, step_id, error)
        self.run_id = run_id
        self.status = status
        self.step_id = step_id
        self.error = error or {}

    def __str__(self) -> str:
        where = f" at step {self.step_id!r}" if self.step_id else ""
        detail = self.error.get("message", "")
        kind = self.error.get("type", "")
        return f"run {self.run_id} {self.status}{where}: {kind}: {detail}".rstrip(": ")


class DispatchError(HiveError):
    """Steps could not be published for a reason a broker outage does not explain (a bug,
    a queue name Redis holds something else under): they were failed and recorded rather
    than left to the recovery sweep, which would meet the same error on every sweep."""

    def __init__(self, run_id: str, step_ids: list[str], detail: str) -> None:
        super().__init__(run_id, step_ids, detail)
        self.run_id = run_id
        self.step_ids = step_ids
        self.detail = detail

    def __str__(self) -> str:
        noun = "step" if len(self.step_ids) == 1 else "steps"
        steps = ", ".join(repr(s) for s in self.step_ids)
        return f"run {self.run_id}: could not dispatch {noun} {steps}: {self.detail}"


class PermissionDenied(HiveError):
    """The caller's role does not carry the right the operation needs.

    Raised before any run is looked at, so it never tells whether a run exists: a run the
    caller's tenant cannot see is :class:`RunNotFound` instead.
    """

    def __init__(self, role: str, action: str) -> None:
        super().__init__(role, action)
        self.role = role
        self.action = action

    def __str__(self) -> str:
        return f"permission denied: role {self.role!r} may not {self.action}"


class ReplayError(HiveError):
    """The run cannot be replayed as asked."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(run_id, reason)
        self.run_id = run_id
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot replay run {self.run_id}: {self.reason}"


class AgentError(HiveError):
    """Base of errors an agent raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PermanentError(AgentError):
    """The step cannot succeed: it is not retried."""


class RetryableError(AgentError):
    """The step may succeed if tried again: it is retried within its max_retries."""


class TransientError(RetryableError):
    """A passing fault (network, rate limit): retried."""


class InvalidAgentInput(PermanentError):
    """The step's resolved input does not fit the agent's input model."""


class InvalidAgentOutput(PermanentError):
    """The agent's result does not fit its output model."""
