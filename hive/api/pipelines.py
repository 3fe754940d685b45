"""``/v1/pipelines``: what a key's tenant can submit, with each input schema and DAG."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, Depends

from hive import service
from hive.api.auth import AuthenticatedRoute, principal
from hive.api.errors import ERROR_RESPONSES
from hive.api.models import PipelineOutput
from hive.pipelines import Pipeline
from hive.service import Principal
from hive.settings import get_settings

router = APIRouter(
    prefix="/v1", tags=["pipelines"], responses=ERROR_RESPONSES, route_class=AuthenticatedRoute
)


@router.get("/pipelines", response_model=list[PipelineOutput])
def list_pipelines(who: Principal = Depends(principal)) -> list[dict[str, Any]]:  # noqa: B008
    """Every pipeline, by name."""
    pipelines = service.list_pipelines(get_settings(), who.caller)
    return [_shown(pipelines[name]) for name in sorted(pipelines)]


@router.get("/pipelines/{name:path}", response_model=PipelineOutput)
def get_pipeline(name: str, who: Principal = Depends(principal)) -> dict[str, Any]:  # noqa: B008
    """One pipeline: its input JSON Schema and its steps (``needs`` make the DAG)."""
    return _shown(service.get_pipeline(get_settings(), who.caller, name))


def _shown(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline's JSON with its file's name alone: where the server keeps its files is
    the operator's to know (`hive pipelines show` has the path)."""
    shown = service.pipeline_view(pipeline).to_json()
    return {**shown, "source": PurePath(shown["source"]).name}
