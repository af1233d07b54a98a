"""Schedules and reduce_on_plateau pass to jax.jit as functions: they hash by value."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.schedules as S
from optref.schedules.conformance import CASES

jax.config.update("jax_enable_x64", True)

SCHEDULE_CASES = [case for case in CASES if case["kind"] == "schedule"]


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=[c["name"] for c in SCHEDULE_CASES])
def test_jit_of_every_schedule_gives_its_value(case, build) -> None:
    schedule = build(case)
    counts = [0, 3, case["steps"] // 2, case["steps"] + 1]
    jitted = jax.jit(schedule)
    for count in counts:
        # Compiled and eager programs may fuse differently: equal to rounding.
        np.testing.assert_allclose(jitted(count), schedule(count), rtol=1e-13)


def test_equal_schedules_hash_equal_and_a_changed_value_is_not_served_from_cache() -> None:
    first, same = S.linear_schedule(1.0, 0.0, 10), S.linear_schedule(1.0, 0.0, 10)
    assert hash(first) == hash(same)
    assert hash(first) != hash(S.linear_schedule(2.0, 0.0, 10))
    assert hash(first) != hash(S.linear_schedule(1.0, 0.0, 11))
    assert float(jax.jit(first)(3)) == pytest.approx(0.7)
    assert float(jax.jit(same)(3)) == pytest.approx(0.7)
    assert float(jax.jit(S.linear_schedule(2.0, 0.0, 10))(3)) == pytest.approx(1.4)
    assert float(jax.jit(S.linear_schedule(1.0, 0.0, 20))(3)) == pytest.approx(0.85)
    assert float(jax.jit(first)(3)) == pytest.approx(0.7)


def test_a_traced_schedule_refuses_to_hash_with_a_clear_error() -> None:
    def closes_over(peak):
        return hash(S.linear_schedule(0.0, peak, 10))

    with pytest.raises(TypeError, match="traced"):
        jax.jit(closes_over)(1.0)


def test_jit_of_reduce_on_plateau_update() -> None:
    plateau = S.reduce_on_plateau(patience=1)
    params = jnp.ones(2)
    state = plateau.init(params)
    update = jax.jit(plateau.update)
    for value in (1.0, 1.0, 1.0):
        jitted, jitted_state = update(params, state, value=value)
        eager, eager_state = plateau.update(params, state, value=value)
        np.testing.assert_allclose(jitted, eager, rtol=1e-13)
        jax.tree.map(np.testing.assert_array_equal, jitted_state, eager_state)
        state = eager_state
    assert float(state.scale) == pytest.approx(0.01)
    assert hash(plateau) == hash(S.reduce_on_plateau(patience=1))
    assert hash(plateau) != hash(S.reduce_on_plateau(patience=2))
    # Another factor is another program, not the cached one.
    other = S.reduce_on_plateau(factor=0.5, patience=1)
    state = other.init(params)
    for value in (1.0, 1.0, 1.0):
        _, state = jax.jit(other.update)(params, state, value=value)
    assert float(state.scale) == pytest.approx(0.25)
