"""Loading pipeline files: a valid file, and one test per kind of problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from hive.agents.base import Agent, AgentContext, AgentOptions
from hive.agents.registry import AgentRegistry
from hive.errors import PipelineError
from hive.pipelines import (
    Pipeline,
    load_catalog,
    load_pipeline_file,
    load_pipelines,
    validate_paths,
)


class TextInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class TextOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class ShoutAgent(Agent[TextInput, TextOutput]):
    name = "shout"
    input_model = TextInput
    output_model = TextOutput
    options = AgentOptions(timeout=20, queue="hive.text")

    def run(self, data: TextInput, ctx: AgentContext) -> TextOutput:
        return TextOutput(text=data.text.upper())


class WordsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    top: int = 5


class WordsOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    words: list[str]


class WordsAgent(Agent[WordsInput, WordsOutput]):
    name = "words"
    input_model = WordsInput
    output_model = WordsOutput

    def run(self, data: WordsInput, ctx: AgentContext) -> WordsOutput:
        return WordsOutput(words=data.text.split()[: data.top])


class CollectInput(BaseModel):
    model_config = ConfigDict(extra="allow")


class CollectOutput(BaseModel):
    model_config = ConfigDict(extra="allow")


class CollectAgent(Agent[CollectInput, CollectOutput]):
    name = "collect"
    input_model = CollectInput
    output_model = CollectOutput

    def run(self, data: CollectInput, ctx: AgentContext) -> CollectOutput:
        return CollectOutput(**ctx.upstream)


@pytest.fixture
def registry() -> AgentRegistry:
    registry = AgentRegistry()
    for agent in (ShoutAgent, WordsAgent, CollectAgent):
        registry.register(agent)
    return registry


HEADER = """\
name: demo
version: 1
input_schema:
  type: object
  required: [text]
  properties: {text: {type: string}}
"""

VALID = (
    HEADER
    + """\
steps:
  - id: shout
    agent: shout
    input: {text: $input.text}
  - id: words
    agent: words
    needs: [shout]
    input: {text: $steps.shout.text, top: 3}
    options: {timeout: 5, max_retries: 0}
  - id: again
    agent: shout
    needs: [words]
    input: {text: $steps.shout.text}
  - id: collect
    agent: collect
    needs: [words, again]
"""
)


def write(directory: Path, text: str, name: str = "demo.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, registry: AgentRegistry) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        load_pipeline_file(path, registry)
    return caught.value.problems


def steps_problems(tmp_path: Path, registry: AgentRegistry, steps: str) -> list[str]:
    """Problems of a file made of the standard header and ``steps``."""
    return problems_of(write(tmp_path, HEADER + "steps:\n" + textwrap.dedent(steps)), registry)


def test_valid_file_loads_steps_in_file_order(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, VALID)
    pipeline = load_pipeline_file(path, registry)
    assert isinstance(pipeline, Pipeline)
    assert (pipeline.name, pipeline.version, pipeline.source) == ("demo", 1, str(path))
    assert [step.id for step in pipeline.steps] == ["shout", "words", "again", "collect"]
    assert pipeline.step("words").input == {"text": "$steps.shout.text", "top": 3}
    assert pipeline.step("collect").input == {}
    assert pipeline.output is None


def test_valid_file_records_the_steps_each_step_refers_to(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    pipeline = load_pipeline_file(write(tmp_path, VALID), registry)
    assert pipeline.step("shout").refs == []
    assert pipeline.step("words").refs == ["shout"]
    # A transitive ancestor may be referred to without being a direct need.
    assert pipeline.step("again").refs == ["shout"]
    assert pipeline.step("again").needs == ["words"]


def test_step_options_merge_the_agents_options_with_the_steps_overrides(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    pipeline = load_pipeline_file(write(tmp_path, VALID), registry)
    assert pipeline.step("shout").options == AgentOptions(timeout=20, queue="hive.text")
    assert pipeline.step("words").options == AgentOptions(timeout=5, max_retries=0)
    assert pipeline.step("collect").options == AgentOptions()


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, "name: demo\nsteps:\n  - id: a\n    agent: [shout\n")
    [problem] = problems_of(path, registry)
    assert problem.startswith(f"{path}: line 5, column 1: invalid YAML: ")


def test_repeated_yaml_key_is_a_problem_not_silently_overwritten(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID + "    agent: shout\n")
    [problem] = problems_of(path, registry)
    line = VALID.count("\n") + 1
    assert problem.startswith(f"{path}: line {line}, column 5: invalid YAML: ")
    assert "duplicate key 'agent'" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "expected a mapping with name, version, input_schema and steps, got a list"),
        (
            "just text\n",
            "expected a mapping with name, version, input_schema and steps, got a string",
        ),
        ("", "the file is empty; expected name, version, input_schema and steps"),
    ],
)
def test_file_that_is_not_a_mapping_is_a_problem(
    tmp_path: Path, registry: AgentRegistry, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    assert problems_of(path, registry) == [f"{path}: {expected}"]


def test_missing_and_unknown_top_level_fields_are_each_named(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, "name: demo\nversion: 1\nstesp: []\n")
    assert problems_of(path, registry) == [
        f"{path}: input_schema: required field is missing",
        f"{path}: steps: required field is missing",
        f"{path}: stesp: unknown field; allowed fields: "
        "name, version, description, input_schema, steps, output, budget_usd, input_guard",
    ]


def test_top_level_field_of_the_wrong_type_is_named(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("version: 1", "version: '1'"))
    assert problems_of(path, registry) == [
        f"{path}: version: Input should be a valid integer, not a string"
    ]


def test_pipeline_name_must_be_lowercase_without_spaces(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("name: demo", "name: Doc Triage"))
    assert problems_of(path, registry) == [
        f"{path}: name: 'Doc Triage' must match ^[a-z0-9][a-z0-9_.-]*$"
    ]


def test_unknown_agent_is_a_problem_listing_the_known_agents(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("agent: words", "agent: wrods"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': agent: unknown agent 'wrods'; known agents: collect, shout, words"
    ]


def test_unknown_agent_whose_entry_point_failed_to_load_says_why(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    registry.broken["wrods"] = "acme.wrods:Agent: ModuleNotFoundError: No module named 'acme'"
    path = write(tmp_path, VALID.replace("agent: words", "agent: wrods"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': agent: unknown agent 'wrods'; known agents: collect, shout, "
        "words (its entry point did not load: acme.wrods:Agent: ModuleNotFoundError: "
        "No module named 'acme')"
    ]


def test_duplicate_step_id_is_a_problem(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, VALID + "  - id: words\n    agent: collect\n")
    assert problems_of(path, registry) == [
        f"{path}: step 'words': id: duplicate step id; steps.1 has it already"
    ]


def test_step_id_with_a_dot_is_a_problem(tmp_path: Path, registry: AgentRegistry) -> None:
    problems = steps_problems(tmp_path, registry, "  - {id: a.b, agent: collect}\n")
    assert problems == [
        f"{tmp_path / 'demo.yaml'}: step 'a.b': id: 'a.b' must match "
        "^[A-Za-z0-9_][A-Za-z0-9_-]*$ (no dots)"
    ]


def test_unknown_need_names_the_step_and_field(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, VALID.replace("needs: [shout]", "needs: [shuot]"))
    problems = problems_of(path, registry)
    assert problems[0] == f"{path}: step 'words': needs: unknown step 'shuot'"


def test_cyclic_needs_are_a_problem_naming_the_cycle(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    problems = steps_problems(
        tmp_path,
        registry,
        """\
        - {id: a, agent: collect, needs: [c]}
        - {id: b, agent: collect, needs: [a]}
        - {id: c, agent: collect, needs: [b]}
        - {id: d, agent: collect, needs: [d]}
        """,
    )
    path = tmp_path / "demo.yaml"
    assert problems == [
        f"{path}: step 'a': needs: cycle: a -> c -> b -> a",
        f"{path}: step 'd': needs: cycle: d -> d",
    ]


def test_reference_to_a_step_that_is_not_upstream_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("needs: [words]\n", "needs: []\n"))
    assert problems_of(path, registry) == [
        f"{path}: step 'again': input.text: '$steps.shout.text' refers to step 'shout', "
        "which is not upstream of step 'again'; add 'shout' to needs "
        "(directly or through a step it needs)"
    ]


def test_reference_to_an_unknown_step_is_a_problem(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, VALID.replace("$steps.shout.text, top", "$steps.shuot.text, top"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': input.text: '$steps.shuot.text' refers to unknown step 'shuot'"
    ]


def test_reference_to_the_steps_own_output_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    problems = steps_problems(
        tmp_path, registry, "  - {id: a, agent: shout, input: {text: $steps.a.text}}\n"
    )
    assert problems == [
        f"{tmp_path / 'demo.yaml'}: step 'a': input.text: "
        "'$steps.a.text': a step cannot refer to its own output"
    ]


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("$foo.bar", "must start with $input or $steps (write $$ for a literal $), not $foo"),
        ("$steps.", "empty path segment"),
        ("$steps", "$steps must be followed by a step id: $steps.<id>"),
    ],
)
def test_malformed_reference_is_a_problem_naming_where_it_sits(
    tmp_path: Path, registry: AgentRegistry, reference: str, problem: str
) -> None:
    problems = steps_problems(
        tmp_path, registry, f"  - {{id: a, agent: collect, input: {{x: [1, '{reference}']}}}}\n"
    )
    assert problems == [
        f"{tmp_path / 'demo.yaml'}: step 'a': input.x.1: "
        f"malformed reference {reference!r}: {problem}"
    ]


def test_reference_to_an_undeclared_input_property_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("$input.text", "$input.txt"))
    assert problems_of(path, registry) == [
        f"{path}: step 'shout': input.text: '$input.txt': input_schema declares no property "
        "'txt' (properties: text)"
    ]


def test_reference_to_an_unknown_output_field_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(
        tmp_path, VALID.replace("{text: $steps.shout.text, top", "{text: $steps.shout.t, top")
    )
    assert problems_of(path, registry) == [
        f"{path}: step 'words': input.text: '$steps.shout.t': agent 'shout' of step 'shout' "
        "has no output field 't' (fields: text)"
    ]


def test_literal_input_of_the_wrong_type_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("top: 3", "top: many"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': input.top: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')"
    ]


def test_missing_required_input_field_is_a_problem(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, VALID.replace("{text: $steps.shout.text, top: 3}", "{top: 3}"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': input.text: required field is missing"
    ]


def test_unknown_input_field_is_a_problem_even_when_it_is_a_reference(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("top: 3", "top: 3, tpo: $input.text"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': input.tpo: unknown field for agent 'words'; "
        "its fields are: text, top"
    ]


def test_input_fields_given_by_reference_are_not_type_checked(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    # `top` wants an int; what `$input.text` holds is known only at run time.
    pipeline = load_pipeline_file(
        write(tmp_path, VALID.replace("top: 3", "top: $input.text")), registry
    )
    assert pipeline.step("words").input["top"] == "$input.text"


def test_escaped_dollar_is_checked_as_the_literal_it_stands_for(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("top: 3", "top: $$3"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': input.top: Input should be a valid integer, "
        "unable to parse string as an integer (got '$3')"
    ]


def test_yaml_date_in_an_input_is_a_problem(tmp_path: Path, registry: AgentRegistry) -> None:
    problems = steps_problems(
        tmp_path, registry, "  - {id: a, agent: collect, input: {when: 2024-01-31}}\n"
    )
    assert problems == [
        f"{tmp_path / 'demo.yaml'}: step 'a': input.when: a date cannot be stored as JSON; quote it"
    ]


@pytest.mark.parametrize(
    ("value", "where", "problem"),
    [
        (".nan", "input.x", "nan is not a JSON number"),
        ("[.inf]", "input.x.0", "inf is not a JSON number"),
        ('"a\\0b"', "input.x", "contains a NUL character (\\u0000), which cannot be stored"),
        ("{1: one}", "input.x", "key 1 is not a string; quote it"),
    ],
    ids=["nan", "inf", "nul", "int-key"],
)
def test_input_value_that_cannot_be_stored_is_one_problem(
    tmp_path: Path, registry: AgentRegistry, value: str, where: str, problem: str
) -> None:
    problems = steps_problems(
        tmp_path, registry, f"  - {{id: a, agent: collect, input: {{x: {value}}}}}\n"
    )
    assert problems == [f"{tmp_path / 'demo.yaml'}: step 'a': {where}: {problem}"]


def test_unstorable_literal_is_reported_once_even_where_the_agent_also_refuses_it(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    problems = steps_problems(
        tmp_path, registry, "  - {id: a, agent: words, input: {text: x, top: .inf}}\n"
    )
    assert problems == [f"{tmp_path / 'demo.yaml'}: step 'a': input.top: inf is not a JSON number"]


def test_output_value_that_cannot_be_stored_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID + "output: {when: 2024-01-31, ratio: .nan}\n")
    assert problems_of(path, registry) == [
        f"{path}: output.ratio: nan is not a JSON number",
        f"{path}: output.when: a date cannot be stored as JSON; quote it",
    ]


def test_agent_input_is_checked_even_when_another_field_of_the_step_is_malformed(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    problems = steps_problems(
        tmp_path, registry, "  - {id: a, agent: shout, input: {text: 5}, options: 7}\n"
    )
    path = tmp_path / "demo.yaml"
    assert problems == [
        f"{path}: step 'a': options: Input should be a valid dictionary, not an integer",
        f"{path}: step 'a': input.text: Input should be a valid string (got 5)",
    ]


def test_reference_to_a_required_input_property_missing_from_properties_is_allowed(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    text = VALID.replace("required: [text]", "required: [text, lang]").replace(
        "{text: $input.text}", "{text: $input.lang}", 1
    )
    pipeline = load_pipeline_file(write(tmp_path, text), registry)
    assert pipeline.step("shout").input == {"text": "$input.lang"}


def test_input_path_into_a_scalar_input_schema_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(
        tmp_path,
        """\
        name: demo
        version: 1
        input_schema: {type: string}
        steps:
          - {id: a, agent: shout, input: {text: $input}}
          - {id: b, agent: shout, input: {text: $input.text}}
        """,
    )
    assert problems_of(path, registry) == [
        f"{path}: step 'b': input.text: '$input.text': input_schema's type is 'string': "
        "the input has no fields"
    ]


@pytest.mark.parametrize(
    ("schema", "where", "problem"),
    [
        (
            "{type: object, properties: {text: {$ref: '#/$defs/txt'}}}",
            "input_schema.properties.text.$ref",
            "$ref '#/$defs/txt' points at nothing in the schema",
        ),
        (
            "{$ref: 'https://example.com/input.json'}",
            "input_schema.$ref",
            "$ref 'https://example.com/input.json' cannot be resolved "
            "(other schemas are never fetched)",
        ),
        (
            "{type: object, properties: {text: {$dynamicRef: 'https://example.com/x.json'}}}",
            "input_schema.properties.text.$dynamicRef",
            "$dynamicRef 'https://example.com/x.json' cannot be resolved "
            "(other schemas are never fetched)",
        ),
        (
            "{type: object, properties: {text: {$dynamicRef: 'file:///etc/hostname'}}}",
            "input_schema.properties.text.$dynamicRef",
            "$dynamicRef 'file:///etc/hostname' cannot be resolved "
            "(other schemas are never fetched)",
        ),
        (
            "{type: object, properties: {text: {$dynamicRef: '#/$defs/none'}}}",
            "input_schema.properties.text.$dynamicRef",
            "$dynamicRef '#/$defs/none' points at nothing in the schema",
        ),
    ],
    ids=["dangling", "remote", "dynamic-remote", "dynamic-file", "dynamic-dangling"],
)
def test_input_schema_ref_that_does_not_resolve_is_a_problem(
    tmp_path: Path, registry: AgentRegistry, schema: str, where: str, problem: str
) -> None:
    path = write(
        tmp_path,
        f"name: demo\nversion: 1\ninput_schema: {schema}\n"
        "steps: [{id: a, agent: shout, input: {text: hi}}]\n",
    )
    assert problems_of(path, registry) == [f"{path}: {where}: {problem}"]


def test_input_schema_refs_to_its_own_defs_load(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(
        tmp_path,
        """\
        name: demo
        version: 1
        input_schema:
          type: object
          $defs: {txt: {type: string}}
          properties:
            text: {$ref: '#/$defs/txt'}
            parts: {prefixItems: [{$ref: '#/$defs/txt'}]}
            note: {default: {$ref: 'not a schema, just data'}}
        steps: [{id: a, agent: shout, input: {text: $input.text}}]
        """,
    )
    assert load_pipeline_file(path, registry).name == "demo"


def test_input_schema_dynamic_refs_to_its_own_anchors_load(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(
        tmp_path,
        """\
        name: demo
        version: 1
        input_schema:
          type: object
          $defs: {txt: {$dynamicAnchor: txt, type: string}}
          properties:
            text: {$dynamicRef: '#txt'}
            title: {$dynamicRef: '#/$defs/txt'}
        steps: [{id: a, agent: shout, input: {text: $input.text}}]
        """,
    )
    assert load_pipeline_file(path, registry).name == "demo"


def test_invalid_input_schema_is_a_problem(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, VALID.replace("{text: {type: string}}", "{text: {type: strnig}}"))
    [problem] = problems_of(path, registry)
    assert problem.startswith(
        f"{path}: input_schema.properties.text.type: not a valid JSON Schema: 'strnig' is not"
    )


def test_invalid_option_overrides_are_problems(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(
        tmp_path, VALID.replace("{timeout: 5, max_retries: 0}", "{timeout: 0, retires: 2}")
    )
    assert problems_of(path, registry) == [
        f"{path}: step 'words': options.timeout: Input should be greater than 0, not 0",
        f"{path}: step 'words': options.retires: unknown option; options are: queue, timeout, "
        "max_retries, retry_backoff, retry_backoff_max, retry_jitter, approval, "
        "approval_timeout, approval_timeout_action, input_guard",
    ]


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("{timeout: .inf}", "options.timeout: Input should be a finite number, not inf"),
        (
            "{queue: ''}",
            "options.queue: a queue name must be non-empty, without commas or whitespace, not ''",
        ),
    ],
    ids=["infinite-timeout", "empty-queue"],
)
def test_option_overrides_no_worker_can_use_are_problems(
    tmp_path: Path, registry: AgentRegistry, override: str, problem: str
) -> None:
    path = write(tmp_path, VALID.replace("{timeout: 5, max_retries: 0}", override))
    assert problems_of(path, registry) == [f"{path}: step 'words': {problem}"]


def test_output_referring_to_an_unknown_step_is_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID + "output: {report: $steps.colect}\n")
    assert problems_of(path, registry) == [
        f"{path}: output.report: '$steps.colect' refers to unknown step 'colect'"
    ]


def test_empty_steps_list_is_a_problem(tmp_path: Path, registry: AgentRegistry) -> None:
    path = write(tmp_path, HEADER + "steps: []\n")
    assert problems_of(path, registry) == [f"{path}: steps: a pipeline needs at least one step"]


def test_step_fields_of_the_wrong_type_are_named(tmp_path: Path, registry: AgentRegistry) -> None:
    problems = steps_problems(
        tmp_path, registry, "  - {id: a, agent: collect, needs: shout, input: [1], color: red}\n"
    )
    path = tmp_path / "demo.yaml"
    assert problems == [
        f"{path}: step 'a': needs: Input should be a valid list, not a string",
        f"{path}: step 'a': input: Input should be a valid dictionary, not a list",
        f"{path}: step 'a': color: unknown field; allowed fields: id, agent, needs, input, options",
    ]


def test_step_that_is_not_a_mapping_is_named_by_its_index(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    problems = steps_problems(tmp_path, registry, "  - {id: a, agent: collect}\n  - shout\n")
    assert problems == [f"{tmp_path / 'demo.yaml'}: steps.1: expected a mapping, got a string"]


def test_file_with_several_problems_reports_them_all_in_file_order(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(
        tmp_path,
        """\
        name: demo
        version: 1
        input_schema: {type: object}
        extra: true
        steps:
          - id: a
            agent: nope
          - id: b
            agent: words
            needs: [a, ghost]
            input: {text: 5}
            options: {timeout: -1}
          - id: b
            agent: shout
        output: $steps.c
        """,
    )
    assert problems_of(path, registry) == [
        f"{path}: extra: unknown field; allowed fields: "
        "name, version, description, input_schema, steps, output, budget_usd, input_guard",
        f"{path}: step 'a': agent: unknown agent 'nope'; known agents: collect, shout, words",
        f"{path}: step 'b': needs: unknown step 'ghost'",
        f"{path}: step 'b': options.timeout: Input should be greater than 0, not -1",
        f"{path}: step 'b': input.text: Input should be a valid string (got 5)",
        f"{path}: step 'b': id: duplicate step id; steps.1 has it already",
        f"{path}: output: '$steps.c' refers to unknown step 'c'",
    ]


def test_load_pipelines_loads_every_yaml_and_yml_file(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    write(tmp_path, VALID, "demo.yaml")
    write(tmp_path, VALID.replace("name: demo", "name: other"), "other.yml")
    write(tmp_path, "not a pipeline", "notes.txt")
    pipelines = load_pipelines(tmp_path, registry)
    assert sorted(pipelines) == ["demo", "other"]
    assert pipelines["other"].source == str(tmp_path / "other.yml")


def test_load_pipelines_reports_the_problems_of_every_file_at_once(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    write(tmp_path, VALID.replace("agent: words", "agent: wrods"), "a.yaml")
    write(tmp_path, VALID.replace("version: 1", "version: 0"), "b.yaml")
    with pytest.raises(PipelineError) as caught:
        load_pipelines(tmp_path, registry)
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b.yaml"),
    ]


def test_duplicate_pipeline_names_across_files_are_a_problem(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, VALID, "b.yaml")
    with pytest.raises(PipelineError) as caught:
        load_pipelines(tmp_path, registry)
    assert caught.value.problems == [
        f"{tmp_path / 'b.yaml'}: name: pipeline 'demo' is already defined in {tmp_path / 'a.yaml'}"
    ]


def test_a_catalog_keeps_the_pipelines_that_load_and_names_each_broken_one(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    write(tmp_path, VALID, "demo.yaml")
    write(tmp_path, VALID.replace("name: demo", "name: unknown-agent").replace(
        "agent: collect", "agent: nope"), "unknown-agent.yaml")  # fmt: skip
    write(tmp_path, "name: [unclosed\n", "garbage.yaml")
    write(tmp_path, VALID.replace("name: demo", "name: twice"), "twice-a.yaml")
    write(tmp_path, VALID.replace("name: demo", "name: twice"), "twice-b.yaml")

    catalog = load_catalog(tmp_path, registry)

    assert sorted(catalog.pipelines) == ["demo"]
    assert sorted(catalog.broken) == ["garbage", "twice", "unknown-agent"]
    (unknown,) = catalog.broken["unknown-agent"]
    assert unknown.startswith(f"{tmp_path / 'unknown-agent.yaml'}: step 'collect': agent: ")
    (garbage,) = catalog.broken["garbage"]  # no name read: its file's stem
    assert garbage.startswith(f"{tmp_path / 'garbage.yaml'}: ")
    # Defined twice: which one is meant is not known, so neither is run.
    assert catalog.broken["twice"] == [
        f"{tmp_path / 'twice-b.yaml'}: name: pipeline 'twice' is already defined in "
        f"{tmp_path / 'twice-a.yaml'}"
    ]
    assert catalog.problems == [garbage, *catalog.broken["twice"], unknown]  # file order


def test_missing_pipelines_directory_is_a_pipeline_error_naming_it(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    with pytest.raises(PipelineError) as caught:
        load_pipelines(tmp_path / "nowhere", registry)
    assert str(caught.value) == f"{tmp_path / 'nowhere'}: pipelines directory does not exist"


def test_validate_paths_checks_files_and_directories_together(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder, VALID, "a.yaml")
    single = write(tmp_path, VALID.replace("version: 1", "version: 0"), "single.yaml")
    problems = validate_paths([folder, single, tmp_path / "missing.yaml"], registry)
    assert problems == [
        f"{tmp_path / 'missing.yaml'}: no such file or directory",
        f"{single}: version: Input should be greater than or equal to 1",
    ]


def test_validate_paths_does_not_take_a_file_given_twice_for_a_duplicate(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID)
    assert validate_paths([path, tmp_path / "." / "demo.yaml", tmp_path], registry) == []


def test_bad_name_is_reported_before_other_top_level_problems(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(
        tmp_path, VALID.replace("name: demo", "name: Demo").replace("version: 1", "version: 0")
    )
    assert problems_of(path, registry) == [
        f"{path}: name: 'Demo' must match ^[a-z0-9][a-z0-9_.-]*$",
        f"{path}: version: Input should be greater than or equal to 1",
    ]


def test_validate_paths_returns_no_problems_for_good_files(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    assert validate_paths([write(tmp_path, VALID)], registry) == []


def test_unreadable_needs_do_not_cause_false_upstream_problems(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    path = write(tmp_path, VALID.replace("needs: [shout]", "needs: shout"))
    assert problems_of(path, registry) == [
        f"{path}: step 'words': needs: Input should be a valid list, not a string"
    ]


def test_names_longer_than_their_columns_are_problems_at_load_not_at_every_submit(
    tmp_path: Path, registry: AgentRegistry
) -> None:
    class LongNamedAgent(ShoutAgent):
        name = "a" * 201

    registry.register(LongNamedAgent)
    text = (
        VALID.replace("name: demo", f"name: {'p' * 201}")
        .replace("id: again", f"id: {'s' * 201}")
        .replace("agent: collect", f"agent: {'a' * 201}")
        .replace("needs: [words, again]", "needs: [words]")
    )
    path = write(tmp_path, text)

    assert problems_of(path, registry) == [
        f"{path}: name: 201 characters long; at most 200",
        f"{path}: steps.2: id: 201 characters long; at most 200",
        f"{path}: step 'collect': agent: 201 characters long; at most 200",
    ]


def test_names_as_long_as_their_columns_load(tmp_path: Path, registry: AgentRegistry) -> None:
    class LongNamedAgent(ShoutAgent):
        name = "a" * 200

    registry.register(LongNamedAgent)
    text = VALID.replace("name: demo", f"name: {'p' * 200}") + (
        f"  - id: {'s' * 200}\n    agent: {'a' * 200}\n    input: {{text: x}}\n"
    )
    pipeline = load_pipeline_file(write(tmp_path, text), registry)
    assert (pipeline.name, pipeline.steps[-1].id) == ("p" * 200, "s" * 200)
