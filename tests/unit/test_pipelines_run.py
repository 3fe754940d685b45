"""A loaded pipeline at run time: input validation, the DAG's shape and the run's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hive.pipelines
from hive.agents.base import AgentOptions
from hive.errors import InputError
from hive.pipelines import (
    Pipeline,
    StepSpec,
    UnresolvedReference,
    pipeline_output,
    validate_run_input,
)
from hive.pipelines.dag import ancestors, find_cycles

REPO = Path(__file__).resolve().parents[2]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "maxLength": 10},
        "tags": {"type": "array", "items": {"type": "string"}},
        "email": {"type": "string", "format": "email"},
    },
    "additionalProperties": False,
}


def make_pipeline(output: Any = None) -> Pipeline:
    """redact → (keywords ∥ sentiment), and a `log` step that only needs redact."""

    def step(step_id: str, needs: list[str]) -> StepSpec:
        return StepSpec(
            id=step_id,
            agent="echo",
            needs=needs,
            input={"text": "$input.text"},
            options=AgentOptions(),
            refs=[],
        )

    return Pipeline(
        name="demo",
        version=1,
        input_schema=SCHEMA,
        steps=[
            step("redact", []),
            step("keywords", ["redact"]),
            step("sentiment", ["redact"]),
            step("report", ["keywords", "sentiment"]),
            step("log", ["redact"]),
        ],
        output=output,
        source="demo.yaml",
    )


def invalid_input_problems(data: Any) -> list[str]:
    with pytest.raises(InputError) as caught:
        validate_run_input(make_pipeline(), data)
    assert caught.value.pipeline == "demo"
    return caught.value.problems


def test_valid_run_input_passes() -> None:
    validate_run_input(make_pipeline(), {"text": "hi", "tags": ["a"]})


def test_run_input_of_the_wrong_type_names_the_field() -> None:
    assert invalid_input_problems({"text": 5}) == ["input.text: 5 is not of type 'string'"]


def test_missing_required_run_input_is_reported_at_the_input_itself() -> None:
    assert invalid_input_problems({}) == ["input: 'text' is a required property"]


def test_run_input_errors_are_all_reported_sorted_by_path() -> None:
    data = {"text": "far too long here", "tags": ["ok", "ok", 2] + ["ok"] * 7 + [3], "x": 1}
    assert invalid_input_problems(data) == [
        "input: Additional properties are not allowed ('x' was unexpected)",
        "input.tags.2: 2 is not of type 'string'",
        "input.tags.10: 3 is not of type 'string'",
        "input.text: 'far too long here' is too long",
    ]


def test_run_input_that_is_not_an_object_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        validate_run_input(make_pipeline(), ["text"])
    assert str(caught.value) == (
        "invalid input for pipeline 'demo': input: ['text'] is not of type 'object'"
    )


def test_run_input_format_is_not_asserted() -> None:
    validate_run_input(make_pipeline(), {"text": "hi", "email": "not an email"})


def test_dependents_lists_every_step_with_the_steps_that_need_it() -> None:
    assert make_pipeline().dependents() == {
        "redact": ["keywords", "sentiment", "log"],
        "keywords": ["report"],
        "sentiment": ["report"],
        "report": [],
        "log": [],
    }


def test_terminal_steps_are_the_steps_nothing_needs_in_file_order() -> None:
    assert make_pipeline().terminal_steps() == ["report", "log"]


def test_step_returns_the_step_with_that_id() -> None:
    assert make_pipeline().step("keywords").needs == ["redact"]


def test_step_raises_key_error_for_an_unknown_id() -> None:
    with pytest.raises(KeyError, match="no step 'nope'"):
        make_pipeline().step("nope")


def test_ancestors_include_steps_needed_through_other_steps() -> None:
    graph = {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "ghost"]}
    assert ancestors(graph) == {"a": set(), "b": {"a"}, "c": {"a", "b"}, "d": {"a"}}


def test_a_long_chain_of_steps_does_not_hit_the_recursion_limit() -> None:
    graph = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(3000)}
    graph["s0"] = ["s2999"]
    [cycle] = find_cycles(graph)
    assert (len(cycle), cycle[0], cycle[-1]) == (3001, "s0", "s0")


def test_default_output_is_the_terminal_steps_outputs_keyed_by_step_id() -> None:
    outputs = {"redact": {"text": "r"}, "report": {"merged": {}}, "log": {"text": "l"}}
    assert pipeline_output(make_pipeline(), {"text": "hi"}, outputs) == {
        "report": {"merged": {}},
        "log": {"text": "l"},
    }


def test_output_template_is_resolved_when_the_pipeline_sets_one() -> None:
    pipeline = make_pipeline(output={"summary": "$steps.report.merged", "asked": "$input.text"})
    outputs = {"report": {"merged": {"a": 1}}}
    assert pipeline_output(pipeline, {"text": "hi"}, outputs) == {
        "summary": {"a": 1},
        "asked": "hi",
    }


def test_output_of_a_step_without_output_is_an_unresolved_reference() -> None:
    with pytest.raises(UnresolvedReference, match="step 'log' has no output"):
        pipeline_output(make_pipeline(), {}, {"report": {}})


def test_package_exports_exactly_its_public_names() -> None:
    assert sorted(hive.pipelines.__all__) == [
        "Catalog",
        "MalformedReference",
        "Pipeline",
        "Reference",
        "StepPlan",
        "StepSpec",
        "UnresolvedReference",
        "load_catalog",
        "load_pipeline_file",
        "load_pipelines",
        "output_spec",
        "parse_reference",
        "pipeline_output",
        "plan_steps",
        "referenced_steps",
        "resolve",
        "validate_paths",
        "validate_run_input",
    ]
    for name in hive.pipelines.__all__:
        assert getattr(hive.pipelines, name) is not None


def test_shipped_doc_triage_pipeline_validates_with_the_builtin_agents() -> None:
    pytest.importorskip("hive.agents.builtin")
    from hive.agents.registry import AgentRegistry
    from hive.pipelines import load_pipelines

    pipelines = load_pipelines(REPO / "config" / "pipelines", AgentRegistry.discover())
    triage = pipelines["doc-triage"]
    assert triage.step_ids() == ["redact", "keywords", "summarize", "sentiment", "report"]
    assert triage.step("report").needs == ["keywords", "summarize", "sentiment"]
    assert triage.dependents()["redact"] == ["keywords", "summarize", "sentiment"]
    assert triage.terminal_steps() == ["report"]
    validate_run_input(triage, {"text": "Call me at 555-0100."})
    with pytest.raises(InputError):
        validate_run_input(triage, {"text": ""})
