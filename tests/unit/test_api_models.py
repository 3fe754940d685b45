"""The HTTP API's bodies carry the same fields as the service layer's views, which the Python
client and every `--json` print: a producer moving between them finds the same names."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel

from hive.api import models
from hive.service import views
from hive.service.services import ServiceInstanceView

PAIRS = [
    (models.RunOutput, views.RunView),
    (models.StepOutput, views.StepView),
    (models.DeadLetterOutput, views.DeadLetterView),
    (models.PipelineOutput, views.PipelineView),
    (models.PipelineStepOutput, views.PipelineStepView),
    (models.ApprovalOutput, views.ApprovalView),
    (models.ServiceInstanceOutput, ServiceInstanceView),
]


@pytest.mark.parametrize(("wire", "view"), PAIRS, ids=[wire.__name__ for wire, _ in PAIRS])
def test_an_api_body_has_exactly_the_fields_of_its_service_view(
    wire: type[BaseModel], view: type
) -> None:
    assert sorted(wire.model_fields) == sorted(field.name for field in dataclasses.fields(view))
