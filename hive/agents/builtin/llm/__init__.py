"""The ``llm`` agent: chat completions from OpenAI-compatible APIs.

::

    models    LlmInput (endpoint, messages, fallback, output_schema), LlmOutput
    client    one HTTP call to one endpoint (httpx), its failures sorted
    repair    output_schema: parse, validate, ask again with the error
    pricing   the price table (HIVE_LLM_PRICES_FILE) and what tokens cost
    agent     LlmAgent: the fallback chain through the farm's guard, usage, metrics
"""

from hive.agents.builtin.llm.agent import LlmAgent
from hive.agents.builtin.llm.models import LlmInput, LlmOutput, Message, Provider

__all__ = ["LlmAgent", "LlmInput", "LlmOutput", "Message", "Provider"]
