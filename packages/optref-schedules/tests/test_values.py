"""Values: exact at step 0 and at every boundary, the documented formulas in between, and
the documented handling of degenerate arguments."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.schedules as S

jax.config.update("jax_enable_x64", True)


def _at(schedule, count: int, dtype=None) -> float:
    return float(schedule(jnp.asarray(count, dtype)))


_SGDR = S.sgdr_schedule(
    [
        {"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 5, "decay_steps": 20},
        {"init_value": 0.1, "peak_value": 0.5, "warmup_steps": 3, "decay_steps": 30},
    ]
)
_JOINED = S.join_schedules(
    [S.linear_schedule(0.2, 1.0, 10), S.cosine_decay_schedule(2.0, 20, 0.25)], [10]
)


# (schedule, count, value that it must equal bit for bit)
EXACT = [
    (S.constant_schedule(0.3), 0, 0.3),
    (S.constant_schedule(0.3), 10**6, 0.3),
    (S.linear_schedule(1.0, 0.1, 50, 3), 0, 1.0),
    (S.linear_schedule(1.0, 0.1, 50, 3), 3, 1.0),
    (S.linear_schedule(1.0, 0.1, 50, 3), 53, 0.1),
    (S.linear_schedule(1.0, 0.1, 50, 3), 10**6, 0.1),
    (S.polynomial_schedule(0.3, 0.07, 2.5, 17, 4), 4, 0.3),
    (S.polynomial_schedule(0.3, 0.07, 2.5, 17, 4), 21, 0.07),
    (S.cosine_decay_schedule(0.7, 40, 0.1, 1.3), 0, 0.7),
    (S.cosine_decay_schedule(0.7, 40, 0.1, 1.3), 40, 0.1 * 0.7),
    (S.cosine_decay_schedule(0.7, 40, 0.1, 1.3), 41, 0.1 * 0.7),
    (S.exponential_decay(0.9, 5, 0.5, 7), 0, 0.9),
    (S.exponential_decay(0.9, 5, 0.5, 7), 7, 0.9),
    (S.exponential_decay(0.9, 5, 0.5, 7, end_value=0.01), 10**4, 0.01),
    (S.exponential_decay(0.01, 5, 3.0, end_value=0.5), 10**4, 0.5),
    (S.exponential_decay(0.9, 5, 0.5, 7, staircase=True), 11, 0.9),
    (S.exponential_decay(0.9, 5, 0.5, 7, staircase=True), 12, 0.9 * 0.5),
    (S.piecewise_constant_schedule(0.5, {3: 0.1, 9: 3.0}), 2, 0.5),
    (S.piecewise_constant_schedule(0.5, {3: 0.1, 9: 3.0}), 3, 0.5 * 0.1),
    (S.piecewise_constant_schedule(0.5, {3: 0.1, 9: 3.0}), 9, 0.5 * 0.1 * 3.0),
    (S.piecewise_interpolate_schedule("cosine", 0.5, {3: 0.1, 9: 3.0}), 0, 0.5),
    (S.piecewise_interpolate_schedule("cosine", 0.5, {3: 0.1, 9: 3.0}), 3, 0.5 * 0.1),
    (S.piecewise_interpolate_schedule("cosine", 0.5, {3: 0.1, 9: 3.0}), 9, 0.5 * 0.1 * 3.0),
    (S.piecewise_interpolate_schedule("linear", 0.5, {3: 0.1, 9: 3.0}), 3, 0.5 * 0.1),
    (S.piecewise_interpolate_schedule("linear", 0.5, {3: 0.1, 9: 3.0}), 99, 0.5 * 0.1 * 3.0),
    (S.warmup_constant_schedule(0.0, 3e-4, 10), 0, 0.0),
    (S.warmup_constant_schedule(0.0, 3e-4, 10), 10, 3e-4),
    (S.warmup_cosine_decay_schedule(1e-5, 3e-3, 7, 50, 1e-4, 2.0), 0, 1e-5),
    (S.warmup_cosine_decay_schedule(1e-5, 3e-3, 7, 50, 1e-4, 2.0), 7, 3e-3),
    (S.warmup_cosine_decay_schedule(1e-5, 3e-3, 7, 50, 1e-4, 2.0), 50, 1e-4),
    (S.warmup_cosine_decay_schedule(1e-5, 3e-3, 7, 50, 1e-4, 2.0), 500, 1e-4),
    (S.warmup_exponential_decay_schedule(0.0, 0.2, 6, 4, 0.5, 3), 6, 0.2),
    (S.warmup_exponential_decay_schedule(0.0, 0.2, 6, 4, 0.5, 3), 9, 0.2),
    (S.cosine_onecycle_schedule(40, 0.3, 0.25, 10.0, 100.0), 0, 0.3 / 10.0),
    (S.cosine_onecycle_schedule(40, 0.3, 0.25, 10.0, 100.0), 10, 0.3),
    (S.cosine_onecycle_schedule(40, 0.3, 0.25, 10.0, 100.0), 40, 0.3 / 10.0 / 100.0),
    (S.linear_onecycle_schedule(40, 0.3, 0.25, 0.75, 10.0, 100.0), 0, 0.3 / 10.0),
    (S.linear_onecycle_schedule(40, 0.3, 0.25, 0.75, 10.0, 100.0), 10, 0.3),
    (S.linear_onecycle_schedule(40, 0.3, 0.25, 0.75, 10.0, 100.0), 30, 0.3 / 10.0),
    (S.linear_onecycle_schedule(40, 0.3, 0.25, 0.75, 10.0, 100.0), 40, 0.3 / 10.0 / 100.0),
    # Step 0 where the list above starts later, and the last boundaries of the joins.
    (S.polynomial_schedule(0.3, 0.07, 2.5, 17, 4), 0, 0.3),
    (S.piecewise_constant_schedule(0.5, {3: 0.1, 9: 3.0}), 0, 0.5),
    (S.piecewise_interpolate_schedule("linear", 0.5, {3: 0.1, 9: 3.0}), 0, 0.5),
    (S.warmup_exponential_decay_schedule(0.0, 0.2, 6, 4, 0.5, 3), 0, 0.0),
    (_SGDR, 0, 0.0),
    (_SGDR, 20, 0.1),
    (_SGDR, 50, 0.0),
    (_JOINED, 0, 0.2),
    (_JOINED, 10, 2.0),
    (_JOINED, 30, 2.0 * 0.25),
]


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int64])
@pytest.mark.parametrize(("schedule", "count", "expected"), EXACT)
def test_exact_at_start_and_boundaries(schedule, count, expected, dtype) -> None:
    assert _at(schedule, count, dtype) == expected


def test_formulas_between_boundaries() -> None:
    assert math.isclose(_at(S.linear_schedule(1.0, 0.1, 50, 3), 28), 0.55, rel_tol=1e-15)
    poly = S.polynomial_schedule(0.3, 0.07, 2.5, 17, 4)
    assert math.isclose(_at(poly, 10), 0.23 * (1 - 6 / 17) ** 2.5 + 0.07, rel_tol=1e-14)
    cosine = S.cosine_decay_schedule(0.7, 40, 0.1, 1.3)
    expected = 0.7 * (0.9 * (0.5 * (1 + math.cos(math.pi * 13 / 40))) ** 1.3 + 0.1)
    assert math.isclose(_at(cosine, 13), expected, rel_tol=1e-14)
    exponential = S.exponential_decay(0.9, 5, 0.5, 7)
    assert math.isclose(_at(exponential, 20), 0.9 * 0.5 ** (13 / 5), rel_tol=1e-14)
    stairs = S.exponential_decay(0.9, 5, 0.5, 7, staircase=True)
    assert math.isclose(_at(stairs, 20), 0.9 * 0.5**2, rel_tol=1e-15)
    interpolate = S.piecewise_interpolate_schedule("cosine", 0.5, {3: 0.1, 9: 3.0})
    expected = 0.05 + (0.15 - 0.05) * 0.5 * (1 - math.cos(math.pi * 2 / 6))
    assert math.isclose(_at(interpolate, 5), expected, rel_tol=1e-14)
    linear = S.piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
    assert [round(_at(linear, t), 6) for t in range(0, 11, 2)] == [
        1.0,
        0.55,
        0.1,
        0.0505,
        0.001,
        0.001,
    ]


def test_joined_schedules_restart_their_count() -> None:
    joined = S.join_schedules(
        [
            S.linear_schedule(0.0, 1.0, 10),
            S.constant_schedule(0.5),
            S.cosine_decay_schedule(2.0, 20),
        ],
        [10, 15],
    )
    assert _at(joined, 0) == 0.0 and _at(joined, 9) == 0.9
    assert _at(joined, 10) == 0.5 and _at(joined, 14) == 0.5
    assert _at(joined, 15) == 2.0 and _at(joined, 35) == 0.0
    assert math.isclose(_at(joined, 25), 1.0, rel_tol=1e-15)


def test_sgdr_restarts_each_cycle() -> None:
    kwargs = [
        {"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 5, "decay_steps": 20},
        {
            "init_value": 0.1,
            "peak_value": 0.5,
            "warmup_steps": 3,
            "decay_steps": 30,
            "end_value": 0.01,
        },
    ]
    schedule = S.sgdr_schedule(kwargs)
    assert [_at(schedule, t) for t in (0, 5, 19 + 1, 23, 50, 10**4)] == [
        0.0,
        1.0,
        0.1,
        0.5,
        0.01,
        0.01,
    ]


def test_zero_length_transition_is_a_step() -> None:
    """transition_steps = 0: init_value before transition_begin, end_value from it on."""
    step = S.linear_schedule(0.2, 1.0, 0, 5)
    assert [_at(step, t) for t in (0, 4, 5, 6)] == [0.2, 0.2, 1.0, 1.0]
    assert _at(S.polynomial_schedule(0.2, 1.0, 2.0, 0), 0) == 1.0
    assert _at(S.warmup_constant_schedule(0.1, 1.0, 0), 0) == 1.0
    assert _at(S.warmup_cosine_decay_schedule(0.1, 1.0, 0, 10), 0) == 1.0


def test_zero_peak_still_decays_to_end_value() -> None:
    schedule = S.warmup_cosine_decay_schedule(0.0, 0.0, 5, 20, end_value=0.01)
    assert _at(schedule, 5) == 0.0 and _at(schedule, 20) == 0.01
    assert 0.0 < _at(schedule, 12) < 0.01


def test_tail_of_a_cosine_decay_keeps_relative_precision_in_float32() -> None:
    """½(1 + cos πs) cancels in float32 near s = 1; the value must not."""
    schedule = S.cosine_decay_schedule(jnp.float32(1.0), 1000)
    counts = jnp.arange(990, 1000)
    value = np.asarray(jax.jit(jax.vmap(schedule))(counts))
    exact = np.sin(np.pi / 2 * (1000 - np.arange(990, 1000)) / 1000) ** 2
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, exact, rtol=4 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64])
def test_value_dtype_follows_the_values(dtype) -> None:
    one = jnp.asarray(1.0, dtype)
    for schedule in (
        S.linear_schedule(one, 0.1, 10),
        S.cosine_decay_schedule(one, 10, 0.1),
        S.exponential_decay(one, 10, 0.5, end_value=0.01),
        S.piecewise_interpolate_schedule("cosine", one, {3: 0.5}),
        S.piecewise_constant_schedule(one, {3: 0.5}),
        S.warmup_cosine_decay_schedule(0.0, one, 3, 10),
        S.cosine_onecycle_schedule(10, one),
        S.constant_schedule(one),
    ):
        for count in (jnp.int32(4), jnp.float32(4.0)):
            assert jax.eval_shape(schedule, count).dtype == dtype, (schedule, count)


def test_python_numbers_give_the_default_float() -> None:
    assert S.linear_schedule(1, 0, 10)(3).dtype == jnp.float64
