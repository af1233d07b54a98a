"""Step arithmetic never wraps: int32's largest value works as an "infinite" length."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.schedules as S

jax.config.update("jax_enable_x64", True)

BIG = 2**31 - 1
I32 = jnp.int32


@pytest.mark.parametrize("x64", [False, True])
def test_linear_schedule_with_int32_max_steps_and_a_begin(x64) -> None:
    with jax.enable_x64(x64):
        schedule = S.linear_schedule(1.0, 0.0, I32(BIG), I32(10))
        for count in (I32(0), I32(10), I32(BIG - 1)):
            expected = 1.0 - max(int(count) - 10, 0) / BIG
            assert float(schedule(count)) == pytest.approx(expected, rel=1e-6)
        assert float(schedule(0)) == 1.0


@pytest.mark.parametrize(
    "schedule",
    [
        S.linear_schedule(1.0, 0.0, I32(BIG), I32(10)),
        S.polynomial_schedule(1.0, 0.0, 2.0, I32(BIG), I32(10)),
        S.cosine_decay_schedule(1.0, I32(BIG)),
        S.exponential_decay(1.0, I32(BIG), 0.5, I32(BIG)),
        S.warmup_cosine_decay_schedule(0.0, 1.0, I32(10), I32(BIG)),
        S.warmup_exponential_decay_schedule(0.0, 1.0, I32(BIG), I32(10), 0.5),
        S.piecewise_interpolate_schedule("cosine", 1.0, {BIG: 0.5}),
        S.join_schedules([S.constant_schedule(1.0), S.constant_schedule(0.0)], [I32(BIG)]),
    ],
    ids=lambda s: type(s).__name__,
)
def test_schedules_at_extreme_int32_counts_do_not_wrap(schedule) -> None:
    counts = jnp.asarray([-BIG - 1, -BIG, 0, 1, BIG - 1, BIG], jnp.int32)
    values = np.asarray(schedule(counts))
    assert np.all(np.isfinite(values))
    # Before any transition the value is the initial one, also for the most negative count.
    np.testing.assert_array_equal(values[:2], values[2])


def test_join_of_linear_schedules_at_huge_boundary() -> None:
    joined = S.join_schedules(
        [S.constant_schedule(1.0), S.linear_schedule(2.0, 0.0, I32(10), I32(5))], [I32(BIG - 20)]
    )
    counts = jnp.asarray([0, BIG - 20, BIG - 15, BIG - 10, BIG], jnp.int32)
    np.testing.assert_allclose(joined(counts), [1.0, 2.0, 2.0, 1.0, 0.0])


def test_step_argument_that_does_not_fit_is_an_error_naming_it() -> None:
    with jax.enable_x64(False):
        with pytest.raises(S.ScheduleArgumentError, match="cosine_decay_schedule: decay_steps"):
            S.cosine_decay_schedule(1.0, 10**10)
        with pytest.raises(S.ScheduleArgumentError, match="linear_schedule: transition_begin"):
            S.linear_schedule(1.0, 0.0, 10, np.int64(10**10))
        with pytest.raises(S.ScheduleArgumentError, match="exponential_decay: transition_steps"):
            S.exponential_decay(1.0, 1e10, 0.5)
        with pytest.raises(S.ScheduleArgumentError, match="linear_schedule: the count"):
            S.linear_schedule(1.0, 0.0, 10)(10**10)
    # With 64-bit integers the same schedule is representable and agrees with Optax.
    assert float(S.cosine_decay_schedule(1.0, 10**10)(5)) == pytest.approx(1.0)
