"""Turn a validated pipeline and input into rows: the run, its steps, and its first dispatch."""

from __future__ import annotations

import uuid
from typing import Any

from hive.db.runs import NewStep
from hive.pipelines import Pipeline
from hive.pipelines.refs import referenced_steps


def plan_steps(pipeline: Pipeline) -> list[NewStep]:
    """One row per step, with the DAG facts the farm needs at run time: dependents, the
    chain successor (the one dependent whose only need is this step), and which outputs
    the input template reads."""
    dependents = pipeline.dependents()
    needs = {s.id: s.needs for s in pipeline.steps}
    rows = []
    for spec in pipeline.steps:
        deps = dependents.get(spec.id, [])
        chain_next = deps[0] if len(deps) == 1 and needs[deps[0]] == [spec.id] else None
        rows.append(
            NewStep(
                step_id=spec.id,
                agent=spec.agent,
                needs=list(spec.needs),
                dependents=list(deps),
                chain_next=chain_next,
                inputs_from=sorted(set(spec.needs) | set(spec.refs)),
                input_template=spec.input,
                options=spec.options.model_dump(mode="json"),
            )
        )
    return rows


def output_spec(pipeline: Pipeline) -> dict[str, Any]:
    """How the run's output is built once every step is done."""
    if pipeline.output is None:
        terminal = pipeline.terminal_steps()
        return {"template": None, "terminal": terminal, "reads": terminal}
    return {"template": pipeline.output, "reads": sorted(referenced_steps(pipeline.output))}


def new_run_id() -> uuid.UUID:
    return uuid.uuid4()
