"""Loading pipeline files: parse, check everything, report every problem at once.

Each problem is one line naming the file, the step and the field, e.g.
``config/pipelines/x.yaml: step 'keywords': needs: unknown step 'redat'``.
Problems come in a stable order: the file's top level, then each step in file
order, then ``output``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hive.agents.base import AgentOptions
from hive.agents.registry import AgentRegistry
from hive.errors import PipelineError
from hive.pipelines.bounds import STEP_ID_MAX_CHARS
from hive.pipelines.checks import (
    AgentClass,
    ReferenceScope,
    check_agent_input,
    check_input_schema,
    check_json,
    check_pipeline_guard,
    declared_input_properties,
    merge_options,
    scalar_input_type,
)
from hive.pipelines.dag import ancestors, find_cycles
from hive.pipelines.document import (
    PipelineDocument,
    StepDocument,
    describe_type,
    problem_lines,
    read_yaml,
    validate_document,
)
from hive.pipelines.refs import referenced_steps
from hive.pipelines.spec import Pipeline, StepSpec

logger = logging.getLogger(__name__)

PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
# No dots: they separate the parts of a $steps.<id>.<path> reference.
STEP_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
SUFFIXES = (".yaml", ".yml")


@dataclass
class _StepDraft:
    """One item of ``steps`` with each field that passed the structure check (None if it failed)."""

    index: int
    label: str
    document: StepDocument | None = None
    """Set when the whole step passed the structure check."""
    id: str | None = None
    agent: str | None = None
    needs: list[str] | None = None
    input: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def report(self, where: str, message: str) -> None:
        self.problems.append(f"{self.label}: {where}: {message}")


def load_pipeline_file(path: Path, registry: AgentRegistry) -> Pipeline:
    """Load and check one pipeline file.

    Raises:
        PipelineError: listing every problem found in the file.
    """
    pipeline, problems, _ = _check_file(path, registry)
    if pipeline is None:
        raise PipelineError(problems)
    return pipeline


def load_pipelines(directory: Path, registry: AgentRegistry) -> dict[str, Pipeline]:
    """Load every ``*.yaml`` / ``*.yml`` file of ``directory``, keyed by pipeline name.

    Raises:
        PipelineError: listing every problem of every file, duplicate names included.
    """
    if not directory.is_dir():
        raise PipelineError([f"{directory}: pipelines directory does not exist"])
    pipelines, problems = _load_files(_pipeline_files(directory), registry)
    if problems:
        raise PipelineError(problems)
    logger.debug("loaded %d pipelines from %s", len(pipelines), directory)
    return pipelines


@dataclass(frozen=True)
class Catalog:
    """What a pipelines directory offers: the pipelines that load, and those that do not
    with their problems, so that a broken file takes down its own pipeline alone."""

    pipelines: dict[str, Pipeline]
    broken: dict[str, list[str]]
    """Pipeline name -> why it cannot be run (one line each, naming the file). The name is
    the one the file gives, or its file's stem when it gives none that reads; a name that
    two files give is broken, since which one is meant is not known."""
    problems: list[str]
    """Every problem of every file, in file order (as :func:`load_pipelines` reports them)."""


def load_catalog(directory: Path, registry: AgentRegistry) -> Catalog:
    """Load every ``*.yaml`` / ``*.yml`` file of ``directory``, keeping those that load.

    Raises:
        PipelineError: ``directory`` is not a directory.
    """
    if not directory.is_dir():
        raise PipelineError([f"{directory}: pipelines directory does not exist"])
    checked = [(path, *_check_file(path, registry)) for path in _pipeline_files(directory)]
    pipelines: dict[str, Pipeline] = {}
    broken: dict[str, list[str]] = {}
    problems: list[str] = []
    first_file: dict[str, Path] = {}
    for path, pipeline, file_problems, name in checked:
        if name is not None and name in first_file:
            file_problems = [
                *file_problems,
                f"{path}: name: pipeline {name!r} is already defined in {first_file[name]}",
            ]
            if pipelines.pop(name, None) is not None:
                broken[name] = []
        elif name is not None:
            first_file[name] = path
        problems.extend(file_problems)
        if name is not None and file_problems:
            broken.setdefault(name, []).extend(file_problems)
        elif pipeline is not None and name is not None and name not in broken:
            pipelines[name] = pipeline
    for path, _, file_problems, name in checked:
        if name is None and path.stem not in pipelines and path.stem not in broken:
            broken[path.stem] = file_problems
    if problems:
        logger.debug("%s: %d pipelines load, %d do not", directory, len(pipelines), len(broken))
    return Catalog(pipelines, broken, problems)


def validate_paths(paths: list[Path], registry: AgentRegistry) -> list[str]:
    """Every problem in the pipeline files and directories given; empty when all are fine."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            files.extend(_pipeline_files(path))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return problems + _load_files(_distinct(files), registry)[1]


def _distinct(files: list[Path]) -> list[Path]:
    """``files`` without repeats: a file named twice is not its own duplicate pipeline."""
    seen: set[Path] = set()
    distinct: list[Path] = []
    for path in files:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            distinct.append(path)
    return distinct


def _pipeline_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def _load_files(
    files: list[Path], registry: AgentRegistry
) -> tuple[dict[str, Pipeline], list[str]]:
    pipelines: dict[str, Pipeline] = {}
    problems: list[str] = []
    for path in files:
        pipeline, file_problems, _ = _check_file(path, registry)
        problems.extend(file_problems)
        if pipeline is None:
            continue
        first = pipelines.get(pipeline.name)
        if first is not None:
            problems.append(
                f"{path}: name: pipeline {pipeline.name!r} is already defined in {first.source}"
            )
        else:
            pipelines[pipeline.name] = pipeline
    return pipelines, problems


def _check_file(
    path: Path, registry: AgentRegistry
) -> tuple[Pipeline | None, list[str], str | None]:
    """The file's pipeline, or its problems; and the name it gives, if it reads as one."""
    data, problems = read_yaml(path)
    if not problems and data is None:
        problems = ["the file is empty; expected name, version, input_schema and steps"]
    elif not problems and not isinstance(data, dict):
        problems = [
            "expected a mapping with name, version, input_schema and steps, "
            f"got {describe_type(data)}"
        ]
    pipeline = None
    if not problems:
        pipeline, problems = _check_document(data, str(path), registry)
    name = data.get("name") if isinstance(data, dict) else None
    named = name if isinstance(name, str) and PIPELINE_NAME.fullmatch(name) else None
    return pipeline, [f"{path}: {problem}" for problem in problems], named


def _check_document(
    data: dict[str, Any], source: str, registry: AgentRegistry
) -> tuple[Pipeline | None, list[str]]:
    document, top = validate_document(PipelineDocument, data)
    problems: list[str] = []
    name = data.get("name")
    # Before the structure problems, so that they all come in field order.
    if isinstance(name, str) and not PIPELINE_NAME.fullmatch(name):
        problems.append(f"name: {name!r} must match ^{PIPELINE_NAME.pattern}$")
    problems.extend(problem_lines(top))
    schema = data.get("input_schema")
    properties = scalar_type = None
    if isinstance(schema, dict):
        schema_problems = check_input_schema(schema)
        problems.extend(problem_lines(schema_problems))
        if not schema_problems:
            properties = declared_input_properties(schema)
            scalar_type = scalar_input_type(schema)
    raw_steps = data.get("steps")
    if isinstance(raw_steps, list) and not raw_steps:
        problems.append("steps: a pipeline needs at least one step")
    guard, guard_problems = check_pipeline_guard(data.get("input_guard"))
    problems.extend(problem_lines(guard_problems))
    drafts = _draft_steps(raw_steps if isinstance(raw_steps, list) else [])
    first_by_id = _first_by_id(drafts)
    agents = {step_id: registry.get(d.agent or "") for step_id, d in first_by_id.items()}
    scope = ReferenceScope(agents, properties, scalar_type)
    specs = _check_steps(drafts, first_by_id, registry, scope, guard)
    for draft in drafts:
        problems.extend(draft.problems)
    output = data.get("output")
    problems.extend(problem_lines(check_json(output, "output") + scope.check(output, "output")))
    if problems or document is None or specs is None:
        return None, problems
    pipeline = Pipeline(
        name=document.name,
        version=document.version,
        description=document.description,
        input_schema=document.input_schema,
        steps=specs,
        output=document.output,
        budget_usd=document.budget_usd,
        source=source,
    )
    return pipeline, []


def _draft_steps(raw_steps: list[Any]) -> list[_StepDraft]:
    drafts: list[_StepDraft] = []
    for index, item in enumerate(raw_steps):
        if not isinstance(item, dict):
            draft = _StepDraft(index, f"steps.{index}")
            draft.problems.append(f"steps.{index}: expected a mapping, got {describe_type(item)}")
            drafts.append(draft)
            continue
        raw_id = item.get("id")
        # An id too long to store is named by its place: repeating it would not help.
        named = isinstance(raw_id, str) and len(raw_id) <= STEP_ID_MAX_CHARS
        label = f"step {raw_id!r}" if named else f"steps.{index}"
        document, problems = validate_document(StepDocument, item)
        bad = {where.split(".")[0] for where, _ in problems}
        draft = _StepDraft(index, label, document)
        for name, spec_field in StepDocument.model_fields.items():
            if name not in bad:
                default = spec_field.get_default(call_default_factory=True)
                setattr(draft, name, item.get(name, default))
        for where, message in problems:
            draft.report(where, message)
        drafts.append(draft)
    return drafts


def _first_by_id(drafts: list[_StepDraft]) -> dict[str, _StepDraft]:
    """Step id → its first step; later steps with the same id are reported."""
    first: dict[str, _StepDraft] = {}
    for draft in drafts:
        if draft.id is None:
            continue
        if draft.id in first:
            earlier = first[draft.id].index
            draft.report("id", f"duplicate step id; steps.{earlier} has it already")
        else:
            first[draft.id] = draft
    return first


def _check_steps(
    drafts: list[_StepDraft],
    first_by_id: dict[str, _StepDraft],
    registry: AgentRegistry,
    scope: ReferenceScope,
    guard: dict[str, Any] | None = None,
) -> list[StepSpec] | None:
    """Check each step's values, recording problems on its draft; the specs if all is well."""
    graph = {step_id: draft.needs or [] for step_id, draft in first_by_id.items()}
    cycles = {cycle[0]: " -> ".join(cycle) for cycle in find_cycles(graph)}
    # With a step's needs unreadable, ancestry is unknown: skip the upstream check, not guess.
    needs_known = all(draft.needs is not None for draft in first_by_id.values())
    upstream = ancestors(graph)
    specs: list[StepSpec] = []
    for draft in drafts:
        if draft.id is not None and first_by_id[draft.id] is not draft:
            continue  # a duplicate: reported, and its id means another step
        if draft.id is not None and not STEP_ID.fullmatch(draft.id):
            draft.report("id", f"{draft.id!r} must match ^{STEP_ID.pattern}$ (no dots)")
        agent = _check_agent(draft, registry)
        _check_needs(draft, graph)
        if draft.id in cycles:
            draft.report("needs", f"cycle: {cycles[draft.id]}")
        options = _check_options(draft, agent, guard)
        if draft.input is not None:
            problems = check_json(draft.input, "input")
            if draft.id is not None:
                allowed = upstream[draft.id] if needs_known else None
                problems += scope.check(draft.input, "input", draft.id, allowed)
            if agent is not None:
                problems += check_agent_input(agent, draft.input)
            for where, message in problems:
                draft.report(where, message)
        if draft.document is not None and not draft.problems and options is not None:
            specs.append(_spec(draft.document, options))
    return specs if len(specs) == len(drafts) else None


def _check_agent(draft: _StepDraft, registry: AgentRegistry) -> AgentClass | None:
    if draft.agent is None:
        return None
    agent = registry.get(draft.agent)
    if agent is None:
        known = ", ".join(registry.names()) or "none"
        message = f"unknown agent {draft.agent!r}; known agents: {known}"
        if draft.agent in registry.broken:
            message += f" (its entry point did not load: {registry.broken[draft.agent]})"
        draft.report("agent", message)
    return agent


def _check_options(
    draft: _StepDraft, agent: AgentClass | None, guard: dict[str, Any] | None
) -> AgentOptions | None:
    if draft.options is None:
        return None
    overrides = draft.options
    # The pipeline's input guard replaces an agent's default one; a step's own wins.
    if guard is not None and agent is not None and agent.options.input_guard is not None:
        overrides = {"input_guard": guard, **overrides}
    options, problems = merge_options(agent, overrides)
    for where, message in problems:
        draft.report(where, message)
    return options


def _check_needs(draft: _StepDraft, graph: dict[str, list[str]]) -> None:
    seen: set[str] = set()
    for need in draft.needs or []:
        if need not in graph:
            draft.report("needs", f"unknown step {need!r}")
        elif need in seen:
            draft.report("needs", f"step {need!r} is listed twice")
        seen.add(need)


def _spec(document: StepDocument, options: AgentOptions) -> StepSpec:
    return StepSpec(
        id=document.id,
        agent=document.agent,
        needs=document.needs,
        input=document.input,
        options=options,
        refs=sorted(referenced_steps(document.input)),
    )
