"""reduce_on_plateau with accumulation under zero, tiny and huge gradients: the updates and
state are finite except ``best_value``, which holds Optax's documented initial +inf until
the first decision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.schedules.conformance import CASES

ACCUMULATION_CASE = next(
    c for c in CASES if c["name"] == "schedules.reduce_on_plateau-accumulation"
)
DTYPES = ("float32", "bfloat16", "float16")


def special_gradient(params: jax.Array, kind: str) -> jax.Array:
    info = jnp.finfo(params.dtype)
    magnitude = {"zero": 0.0, "tiny": float(info.tiny), "huge": 0.1 * float(np.sqrt(info.max))}
    signs = jnp.where(jnp.arange(params.size) % 2 == 0, 1.0, -1.0)
    return (signs * magnitude[kind]).astype(params.dtype)


@pytest.mark.parametrize("kind", ["zero", "tiny", "huge"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_only_best_value_is_infinite_and_only_before_the_first_decision(build, dtype, kind):
    tx = build(ACCUMULATION_CASE)
    accumulation = int(ACCUMULATION_CASE["kwargs"]["accumulation_size"])
    params = jnp.ones([4], dtype)
    grads = special_gradient(params, kind)
    state = tx.init(params)
    for step in range(accumulation + 1):
        updates, state = tx.update(grads, state, params, value=jnp.zeros([], dtype))
        assert np.all(np.isfinite(np.asarray(updates, np.float64)))
        for field in ("scale", "plateau_count", "cooldown_count", "count", "avg_value"):
            assert np.isfinite(np.float64(getattr(state, field))), (step, field)
        best = np.float64(state.best_value)
        # +inf until the first decision (after `accumulation` values), then the mean.
        assert best == (np.inf if step < accumulation - 1 else 0.0), step
