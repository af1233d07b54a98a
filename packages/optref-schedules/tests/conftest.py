"""Shared helpers of the optref-schedules tests: build the optref side of a conformance case."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _argument(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"optref", "optax", "kwargs"}:
        return resolve(value["optref"])(**{k: _argument(v) for k, v in value["kwargs"].items()})
    if isinstance(value, list):
        return [_argument(v) for v in value]
    return value


def build_case(case: dict[str, Any], **overrides: Any) -> Any:
    """The optref object of a conformance case, with keyword arguments replaced."""
    kwargs = {**case["kwargs"], **overrides}
    return resolve(case["optref"])(**{k: _argument(v) for k, v in kwargs.items()})


@pytest.fixture
def build() -> Callable[..., Any]:
    return build_case
