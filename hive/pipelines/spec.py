"""The validated pipeline: what the loader produces and the rest of Hive trusts.

Build these with :func:`hive.pipelines.load_pipeline_file` or
:func:`hive.pipelines.load_pipelines`, which check everything first; the models
themselves do not re-check the DAG or the references.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hive.agents.base import AgentOptions
from hive.pipelines.refs import resolve


class StepSpec(BaseModel):
    """One step of a pipeline, with its agent's options merged with the step's overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    agent: str
    needs: list[str] = Field(default_factory=list)
    input: dict[str, Any] = Field(default_factory=dict)
    """The raw template: literals and references, resolved per run by :func:`resolve`."""
    options: AgentOptions = Field(default_factory=AgentOptions)
    refs: list[str] = Field(default_factory=list)
    """Sorted ids of the steps this step's input refers to with ``$steps.<id>``."""


class Pipeline(BaseModel):
    """A named, versioned DAG of steps, loaded from one YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int
    description: str | None = None
    input_schema: dict[str, Any]
    steps: list[StepSpec]
    """In file order."""
    output: Any | None = None
    """Template of the run's output; None means the outputs of :meth:`terminal_steps`."""
    budget_usd: float | None = None
    """Each run's cost budget in USD, unless its submit sets its own; None: no run budget."""
    source: str
    """The file the pipeline was loaded from."""

    def step(self, step_id: str) -> StepSpec:
        """The step with id ``step_id``; KeyError if there is none."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(f"pipeline {self.name!r} has no step {step_id!r}")

    def step_ids(self) -> list[str]:
        """Every step id, in file order."""
        return [step.id for step in self.steps]

    def dependents(self) -> dict[str, list[str]]:
        """Step id → ids of the steps that need it directly, in file order; every step is a key."""
        result: dict[str, list[str]] = {step.id: [] for step in self.steps}
        for step in self.steps:
            for need in step.needs:
                result[need].append(step.id)
        return result

    def terminal_steps(self) -> list[str]:
        """Ids of the steps nothing needs, in file order."""
        return [step_id for step_id, users in self.dependents().items() if not users]

    def output_template(self) -> Any:
        """``output`` if set, else ``{terminal step id: "$steps.<id>"}``."""
        if self.output is not None:
            return self.output
        return {step_id: f"$steps.{step_id}" for step_id in self.terminal_steps()}


def pipeline_output(pipeline: Pipeline, run_input: Any, outputs: dict[str, Any]) -> Any:
    """The run's output: ``pipeline.output`` resolved, or each terminal step's output by id.

    Raises:
        UnresolvedReference: a referenced step has no output or a path does not exist.
    """
    return resolve(pipeline.output_template(), run_input, outputs)
