"""Schedules under jit and vmap, with int32, int64, Python and floating counts; schedules as
data (no recompilation, batches of schedules, serialisation)."""

from __future__ import annotations

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.schedules as S
from optref.schedules.conformance import CASES

jax.config.update("jax_enable_x64", True)

SCHEDULE_CASES = [case for case in CASES if case["kind"] == "schedule"]


# One case per distinct way of handling the count.
COUNT_CASES = [
    "schedules.polynomial_schedule-sqrt-transition_begin",
    "schedules.cosine_decay_schedule-exponent",
    "schedules.exponential_decay-staircase-transition_begin",
    "schedules.piecewise_constant_schedule",
    "schedules.piecewise_interpolate_schedule-cosine",
    "schedules.join_schedules",
    "schedules.warmup_cosine_decay_schedule-end_value-exponent",
    "schedules.linear_onecycle_schedule-pct",
    "schedules.sgdr_schedule",
]


@pytest.mark.parametrize(
    "case", [c for c in SCHEDULE_CASES if c["name"] in COUNT_CASES], ids=lambda c: c["name"]
)
def test_counts_of_every_kind_agree(case, build) -> None:
    """int32, int64, float32 and float64 counts, vmapped or as an array, traced under jit,
    and Python ints give one value."""
    schedule = build(case)
    counts = np.arange(case["steps"] + 1)

    @jax.jit
    def values(schedule):
        by_dtype = [
            jax.vmap(schedule)(jnp.asarray(counts, dtype))
            for dtype in (jnp.int64, jnp.int32, jnp.float32, jnp.float64)
        ]
        return jnp.stack([*by_dtype, schedule(jnp.asarray(counts))])

    table = np.asarray(values(schedule))
    for row in table[1:]:
        np.testing.assert_allclose(row, table[0], rtol=4e-16, atol=0)
    for count in (0, case["steps"] // 2, case["steps"]):
        np.testing.assert_allclose(float(schedule(count)), table[0, count], rtol=4e-16)


def test_float_counts_between_steps() -> None:
    schedule = S.linear_schedule(1.0, 0.0, 10)
    assert float(schedule(2.5)) == 0.75
    assert float(S.exponential_decay(1.0, 2, 0.5, staircase=True)(jnp.float32(3.5))) == 0.5
    assert float(S.piecewise_constant_schedule(1.0, {3: 0.5})(2.99)) == 1.0


def test_no_recompilation_when_parameters_change() -> None:
    traces = []

    @eqx.filter_jit
    def value(schedule, count):
        traces.append(None)
        return schedule(count)

    for peak, warmup, decay in ((1.0, 5, 50), (0.3, 7, 90), (2.0, 0, 10)):
        value(S.warmup_cosine_decay_schedule(0.0, peak, warmup, decay), jnp.int32(3))
    assert len(traces) == 1


def test_a_batch_of_schedules_vmaps() -> None:
    """A learning-rate sweep in one program: vmap over schedules, not only over counts."""
    peaks = jnp.asarray([0.1, 0.5, 1.0])
    warmups = jnp.asarray([2, 5, 10])
    batch = jax.vmap(lambda p, w: S.warmup_cosine_decay_schedule(0.0, p, w, 40))(peaks, warmups)
    values = jax.jit(jax.vmap(lambda s: s(jnp.int32(5))))(batch)
    expected = [
        S.warmup_cosine_decay_schedule(0.0, float(p), int(w), 40)(5)
        for p, w in zip(peaks, warmups, strict=True)
    ]
    np.testing.assert_array_equal(np.asarray(values), np.asarray(expected))


def test_serialise_round_trip() -> None:
    schedule = S.sgdr_schedule(
        [
            {"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 5, "decay_steps": 20},
            {"init_value": 0.1, "peak_value": 0.5, "warmup_steps": 3, "decay_steps": 30},
        ]
    )
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, schedule)
    buffer.seek(0)
    like = S.sgdr_schedule(
        [
            {"init_value": 9.0, "peak_value": 9.0, "warmup_steps": 1, "decay_steps": 2},
            {"init_value": 9.0, "peak_value": 9.0, "warmup_steps": 1, "decay_steps": 2},
        ]
    )
    loaded = eqx.tree_deserialise_leaves(buffer, like)
    evaluate = eqx.filter_jit(lambda s: jax.vmap(s)(jnp.arange(60)))
    np.testing.assert_array_equal(evaluate(loaded), evaluate(schedule))


def test_factories_work_on_traced_values() -> None:
    """Building a schedule inside jit/grad: values traced, step counts still checked."""

    @jax.jit
    def value(peak):
        return S.warmup_exponential_decay_schedule(0.0, peak, 5, 10, 0.5)(jnp.int32(12))

    assert float(value(2.0)) == float(S.warmup_exponential_decay_schedule(0.0, 2.0, 5, 10, 0.5)(12))


def test_schedules_are_modules_with_their_parameters() -> None:
    schedule = S.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100, end_value=0.1)
    assert isinstance(schedule, eqx.Module) and isinstance(schedule, S.Schedule)
    assert float(schedule.peak_value) == 1.0 and int(schedule.decay_steps) == 100
    assert schedule == schedule
    assert jnp.issubdtype(schedule.warmup_steps.dtype, jnp.integer)
    assert jnp.issubdtype(schedule.end_value.dtype, jnp.floating)
