"""Token prices a user gives in a model's metadata, and the cost of a response.

No price table ships with the package (it would go stale): prices come from the user, per
million tokens, in whatever currency they bill in (the README writes USD)::

    manager.register_model(
        "gpt", provider, metadata={"prices": {"input": 2.50, "output": 10.00, "cached_input": 1.25}}
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from reliable_llm._errors import ConfigurationError
from reliable_llm._types import Usage

__all__ = ["Prices", "prices_from_metadata"]

_KEYS = frozenset(("input", "output", "cached_input"))
_PER_TOKEN = 1e-6  # prices are per million tokens


class Prices(NamedTuple):
    """Prices per token (the metadata's per-million figures divided by a million)."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage | None) -> float | None:
        """The cost of ``usage`` in the prices' currency, or None when usage is unknown.

        Input tokens read from the provider's cache are charged the cached-input price when
        one is given; every other input token the input price.
        """
        if usage is None:
            return None
        cost = usage.input_tokens * self.input + usage.output_tokens * self.output
        cached = self.cached_input
        if cached is not None and usage.cache_read_tokens:
            cost -= usage.cache_read_tokens * (self.input - cached)
        return cost


def _price(model: str, prices: Mapping[str, Any], key: str) -> float:
    value = prices[key]
    if type(value) not in (int, float) or not value >= 0:
        raise ConfigurationError(
            f"metadata['prices'][{key!r}] of model {model!r} must be a number >= 0 "
            f"(price per million tokens), got {value!r}"
        )
    return float(value) * _PER_TOKEN


def prices_from_metadata(model: str, metadata: Mapping[str, Any]) -> Prices | None:
    """The prices in ``metadata["prices"]``, or None when the model has none.

    Raises:
        ConfigurationError: ``prices`` is not a mapping with numeric ``input`` and ``output``
            (and optionally ``cached_input``) prices per million tokens, or has other keys.
    """
    prices = metadata.get("prices")
    if prices is None:
        return None
    if not isinstance(prices, Mapping) or not {"input", "output"} <= prices.keys():
        raise ConfigurationError(
            f"metadata['prices'] of model {model!r} must be a dict with 'input' and 'output' "
            f"prices per million tokens (and optionally 'cached_input'), got {prices!r}"
        )
    unknown = set(prices) - _KEYS
    if unknown:
        raise ConfigurationError(
            f"metadata['prices'] of model {model!r} has unknown keys {sorted(unknown)}; "
            f"expected {sorted(_KEYS)}"
        )
    cached = _price(model, prices, "cached_input") if "cached_input" in prices else None
    return Prices(_price(model, prices, "input"), _price(model, prices, "output"), cached)
