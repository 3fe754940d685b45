"""The ``merge`` agent: joins the outputs of a step's upstream steps into one object."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from hive.agents.base import Agent, AgentContext


class MergeInput(BaseModel):
    """Nothing is required; any keys given are laid over the upstream outputs."""

    model_config = ConfigDict(extra="allow")

    # Typing the extras validates them at the boundary: merge's output must be JSON.
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)


class MergeOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merged: dict[str, JsonValue]


class MergeAgent(Agent[MergeInput, MergeOutput]):
    """Combines the outputs of its upstream steps, keyed by step id, with its own input keys."""

    name = "merge"
    version = "1"
    input_model = MergeInput
    output_model = MergeOutput

    def run(self, data: MergeInput, ctx: AgentContext) -> MergeOutput:
        """Merge ``ctx.upstream`` with the input's keys.

        Args:
            data: keys to add; one named like an upstream step replaces that step's output.
            ctx: carries the upstream outputs, keyed by step id.

        Returns:
            ``{**ctx.upstream, **input keys}``.
        """
        return MergeOutput(merged={**ctx.upstream, **(data.model_extra or {})})
