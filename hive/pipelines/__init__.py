"""Pipelines: DAGs of agent steps, loaded from YAML files and checked before anything runs.

::

    load_pipelines(dir, registry)   every *.yaml / *.yml file → {name: Pipeline}
    load_catalog(dir, registry)     the files that load, and the broken ones → Catalog
    load_pipeline_file(path, reg)   one file → Pipeline
    validate_paths(paths, reg)      problems only, for `hive pipelines validate`
    validate_run_input(p, data)     run input vs. the pipeline's input_schema
    resolve(template, input, outs)  substitute $input / $steps.<id> references
    pipeline_output(p, input, outs) the run's output
    plan_steps(p), output_spec(p)   the rows a run of the pipeline is stored as

Loading raises :class:`~hive.errors.PipelineError` listing every problem at once.
"""

from hive.errors import MalformedReference, UnresolvedReference
from hive.pipelines.inputs import validate_run_input
from hive.pipelines.loader import (
    Catalog,
    load_catalog,
    load_pipeline_file,
    load_pipelines,
    validate_paths,
)
from hive.pipelines.plan import StepPlan, output_spec, plan_steps
from hive.pipelines.refs import (
    Reference,
    parse_reference,
    referenced_steps,
    resolve,
)
from hive.pipelines.spec import Pipeline, StepSpec, pipeline_output

__all__ = [
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
