"""The price table: what a model's tokens cost, per 1M input (prompt) and output
(completion) tokens, read from ``HIVE_LLM_PRICES_FILE``::

    currency: USD
    models:
      gpt-4o-mini: {input: 0.15, output: 0.60}      # any provider serving this model
      azure:gpt-4o: {input: 2.50, output: 10.00}    # this provider's price for it

``<provider>:<model>`` wins over ``<model>``. The file is validated whole when loaded
(``hive worker`` loads it before it starts: a malformed one stops it, naming the entry),
and read again when it changes. A missing file means no prices: usage is recorded
without a cost.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hive.errors import SettingsError
from hive.settings import get_settings

logger = logging.getLogger(__name__)

_VARIABLE = "HIVE_LLM_PRICES_FILE"
_PER_TOKENS = 1_000_000
# Costs are kept to a billionth of the currency unit: sums of floats stay readable.
_COST_DIGITS = 9


class Price(BaseModel):
    """A model's price per 1M tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    input: float = Field(ge=0, description="per 1M prompt tokens")
    output: float = Field(ge=0, description="per 1M completion tokens")


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    currency: str = Field(default="USD", min_length=1, max_length=16)
    models: dict[str, Price] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _named(cls, models: dict[str, Price]) -> dict[str, Price]:
        blank = [name for name in models if not name.strip()]
        if blank:
            raise ValueError("a model name is empty")
        return models

    def price_of(self, provider: str, model: str) -> Price | None:
        return self.models.get(f"{provider}:{model}") or self.models.get(model)

    def cost(self, provider: str, model: str, prompt: int, completion: int) -> float | None:
        """What the tokens cost; None when the table has no price for the model."""
        price = self.price_of(provider, model)
        if price is None:
            return None
        cost = (prompt * price.input + completion * price.output) / _PER_TOKENS
        return round(cost, _COST_DIGITS) if math.isfinite(cost) else None


def load_price_table(path: Path) -> PriceTable:
    """Read and validate the table at ``path``.

    Raises:
        SettingsError: the file cannot be read, is not YAML, or does not fit; names
            ``HIVE_LLM_PRICES_FILE``, the file, and each entry at fault.
    """
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(_VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SettingsError(_VARIABLE, f"{path}: not YAML: {exc}") from None
    if raw is None:
        raw = {}
    try:
        return PriceTable.model_validate(raw)
    except ValidationError as exc:
        problems = [
            (_VARIABLE, f"{path}: {'.'.join(str(p) for p in e['loc']) or 'top'}: {e['msg']}")
            for e in exc.errors()
        ]
        raise SettingsError.of(problems) from None


_cache_lock = threading.Lock()
_cached: tuple[tuple[str, int, int], PriceTable] | None = None


def price_table(path: Path | None = None) -> PriceTable | None:
    """The table at ``path`` (default: the setting), read again when the file changes;
    None when there is no such file.

    Raises:
        SettingsError: the file is malformed (see :func:`load_price_table`).
    """
    global _cached
    path = get_settings().llm.prices_file if path is None else path
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(_VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
    table = load_price_table(path)
    with _cache_lock:
        _cached = (key, table)
    return table


def check_price_table() -> None:
    """For ``hive worker`` before it starts: a malformed table stops it; a missing one is
    only worth a warning.

    Raises:
        SettingsError: as :func:`load_price_table`.
    """
    path = get_settings().llm.prices_file
    if price_table(path) is None:
        logger.warning(
            "%s: %s does not exist; llm usage is recorded without a cost", _VARIABLE, path
        )
