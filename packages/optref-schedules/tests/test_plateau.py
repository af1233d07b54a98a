"""reduce_on_plateau: its state, its decisions against a plain-Python reference, jit."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.schedules as S
from optref.schedules.conformance import PLATEAU_VALUES

jax.config.update("jax_enable_x64", True)

OPTAX_STATE_FIELDS = [
    "scale",
    "best_value",
    "plateau_count",
    "cooldown_count",
    "count",
    "avg_value",
]


def reference_scales(values, factor, patience, rtol, atol, cooldown, accumulation, min_scale):
    """The scale after each value, by the algorithm as documented, in plain Python."""
    scale, best, plateau, cooling, count, total = 1.0, float("inf"), 0, 0, 0, 0.0
    scales = []
    for value in values:
        count += 1
        total += value
        if count == accumulation:
            mean = total / count
            count, total = 0, 0.0
            if mean < (best if best == float("inf") else (1 - rtol) * best - atol):
                best, plateau = mean, 0
            else:
                plateau += 1
            if cooling > 0:
                plateau, cooling = 0, cooling - 1
            elif plateau == patience:
                scale, plateau, cooling = max(scale * factor, min_scale), 0, cooldown
            else:
                scale = max(scale, min_scale)
        scales.append(scale)
    return scales


SETTINGS = [
    {
        "factor": 0.5,
        "patience": 2,
        "rtol": 0.1,
        "atol": 0.0,
        "cooldown": 0,
        "accumulation_size": 1,
        "min_scale": 0.0,
    },
    {
        "factor": 0.5,
        "patience": 2,
        "rtol": 0.1,
        "atol": 0.0,
        "cooldown": 3,
        "accumulation_size": 1,
        "min_scale": 0.0,
    },
    {
        "factor": 0.3,
        "patience": 1,
        "rtol": 0.0,
        "atol": 1e-3,
        "cooldown": 1,
        "accumulation_size": 3,
        "min_scale": 0.05,
    },
    {
        "factor": 0.1,
        "patience": 3,
        "rtol": 1.0,
        "atol": 0.0,
        "cooldown": 0,
        "accumulation_size": 2,
        "min_scale": 0.0,
    },
]
VALUES = list(PLATEAU_VALUES)


@pytest.mark.parametrize("settings", SETTINGS)
def test_scales_follow_the_documented_algorithm(settings) -> None:
    transform = S.reduce_on_plateau(**settings)
    params = {"w": jnp.ones(3)}
    state = transform.init(params)
    step = jax.jit(lambda g, s, v: transform.update(g, s, value=v))
    scales = []
    for value in VALUES:
        updates, state = step(params, state, jnp.asarray(value))
        np.testing.assert_array_equal(updates["w"], state.scale * np.ones(3))
        scales.append(float(state.scale))
    expected = reference_scales(
        VALUES,
        *(
            settings[k]
            for k in (
                "factor",
                "patience",
                "rtol",
                "atol",
                "cooldown",
                "accumulation_size",
                "min_scale",
            )
        ),
    )
    np.testing.assert_allclose(scales, expected, rtol=1e-15)
    assert min(scales) < 1.0  # the plateaus did reduce the scale


def test_state_mirrors_optax() -> None:
    state = S.reduce_on_plateau().init({"a": jnp.ones(2, jnp.float32), "b": jnp.ones(2)})
    assert isinstance(state, S.ReduceLROnPlateauState)
    assert [f.name for f in dataclasses.fields(state)] == OPTAX_STATE_FIELDS
    assert state.scale.dtype == jnp.float32 and state.best_value.dtype == jnp.float64
    assert state.avg_value.dtype == jnp.float64
    assert all(
        getattr(state, k).dtype == jnp.int32 for k in ("plateau_count", "cooldown_count", "count")
    )
    assert float(state.best_value) == float("inf") and float(state.scale) == 1.0


def test_updates_keep_their_dtypes_and_none_leaves() -> None:
    transform = S.reduce_on_plateau()
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": None, "c": jnp.ones((), jnp.complex64)}
    state = transform.init(params)
    updates, _ = transform.update(params, state, value=1.0)
    assert updates["a"].dtype == jnp.bfloat16 and updates["b"] is None
    assert updates["c"].dtype == jnp.complex64


def test_gradients_flow_through_the_updates() -> None:
    transform = S.reduce_on_plateau()
    state = transform.init(jnp.ones(2))
    grad = jax.grad(lambda g: jnp.sum(transform.update(g, state, value=1.0)[0]))(jnp.ones(2))
    np.testing.assert_array_equal(grad, np.ones(2))


def test_value_is_required_and_states_are_checked() -> None:
    transform = S.reduce_on_plateau()
    state = transform.init(jnp.ones(2))
    with pytest.raises(TypeError, match="value"):
        transform.update(jnp.ones(2), state)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="ReduceLROnPlateauState"):
        transform.update(jnp.ones(2), {"count": 0}, value=1.0)


def test_extra_keyword_arguments_are_accepted() -> None:
    """A chain forwards every keyword argument to every member."""
    transform = S.reduce_on_plateau()
    state = transform.init(jnp.ones(2))
    transform.update(jnp.ones(2), state, None, value=1.0, grad=jnp.ones(2), value_fn=None)
