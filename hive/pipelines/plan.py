"""A validated pipeline as the rows a run of it is stored as: one per step, with the DAG
facts the farm needs at run time, so a changed pipeline file never affects runs in flight.

Pure: the service layer hands these to :func:`hive.db.runs.insert_run` (whose ``NewStep``
protocol they satisfy) and to the dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hive.pipelines.refs import referenced_steps
from hive.pipelines.spec import Pipeline


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    agent: str
    needs: list[str]
    dependents: list[str]
    chain_next: str | None
    inputs_from: list[str]
    input_template: Any
    options: dict[str, Any]


def plan_steps(pipeline: Pipeline) -> list[StepPlan]:
    """One row per step, with the DAG facts the farm needs at run time: dependents, the
    chain successor (the one dependent whose only need is this step, unless it needs an
    approval), and which outputs the input template reads."""
    dependents = pipeline.dependents()
    needs = {s.id: s.needs for s in pipeline.steps}
    # A step awaiting approval goes out on its own once approved, never in a chain.
    held = {s.id for s in pipeline.steps if s.options.approval == "required"}
    rows = []
    for spec in pipeline.steps:
        deps = dependents.get(spec.id, [])
        chained = len(deps) == 1 and needs[deps[0]] == [spec.id] and deps[0] not in held
        chain_next = deps[0] if chained else None
        rows.append(
            StepPlan(
                step_id=spec.id,
                agent=spec.agent,
                needs=list(spec.needs),
                dependents=list(deps),
                chain_next=chain_next,
                inputs_from=sorted(set(spec.needs) | set(spec.refs)),
                input_template=spec.input,
                # Only what differs from AgentOptions' defaults: every reading fills the rest
                # (hive.db.options.step_options), and each claim reads and returns the row.
                options=spec.options.model_dump(mode="json", exclude_defaults=True),
            )
        )
    return rows


def output_spec(pipeline: Pipeline) -> dict[str, Any]:
    """How the run's output is built once every step is done."""
    if pipeline.output is None:
        terminal = pipeline.terminal_steps()
        return {"template": None, "terminal": terminal, "reads": terminal}
    return {"template": pipeline.output, "reads": sorted(referenced_steps(pipeline.output))}
