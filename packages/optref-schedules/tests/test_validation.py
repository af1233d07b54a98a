"""Arguments are checked when a schedule is built; errors name the schedule and the argument."""

from __future__ import annotations

import jax
import pytest

import optref.schedules as S

jax.config.update("jax_enable_x64", True)

BAD = [
    (lambda: S.linear_schedule(1.0, 0.0, -1), "linear_schedule: transition_steps"),
    (lambda: S.linear_schedule(1.0, 0.0, 10, -2), "linear_schedule: transition_begin"),
    (lambda: S.linear_schedule(1.0, 0.0, 10.5), "transition_steps must be a whole number"),
    (lambda: S.polynomial_schedule(1.0, 0.0, 0.0, 10), "polynomial_schedule: power"),
    (lambda: S.polynomial_schedule(1.0, 0.0, 2, -3), "polynomial_schedule: transition_steps"),
    (
        lambda: S.cosine_decay_schedule(1.0, 0),
        "cosine_decay_schedule: decay_steps must be positive",
    ),
    (lambda: S.cosine_decay_schedule(1.0, 10, exponent=-1.0), "cosine_decay_schedule: exponent"),
    (lambda: S.cosine_decay_schedule("1", 10), "init_value must be a real number"),
    (lambda: S.cosine_decay_schedule(1.0 + 1j, 10), "init_value must be real"),
    (
        lambda: S.exponential_decay(1.0, 0, 0.5),
        "exponential_decay: transition_steps must be positive",
    ),
    (lambda: S.exponential_decay(1.0, 10, 0.0), "exponential_decay: decay_rate"),
    (lambda: S.exponential_decay(1.0, 10, -0.5), "exponential_decay: decay_rate"),
    (lambda: S.exponential_decay(1.0, 10, 0.5, -1), "exponential_decay: transition_begin"),
    (lambda: S.piecewise_constant_schedule(1.0, {5: -0.1}), "piecewise_constant_schedule: scales"),
    (
        lambda: S.piecewise_constant_schedule(1.0, {-5: 0.1}),
        "piecewise_constant_schedule: boundaries",
    ),
    (lambda: S.piecewise_constant_schedule(1.0, {2.5: 0.1}), "boundaries must be a whole number"),
    (lambda: S.piecewise_constant_schedule([1.0, 2.0], {2: 0.1}), "init_value must be a scalar"),
    (lambda: S.piecewise_interpolate_schedule("cubic", 1.0, {2: 0.1}), "interpolate_type"),
    (lambda: S.piecewise_interpolate_schedule("linear", 1.0, {2: -0.1}), "scales"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 2, []), "one element less than"),
    (lambda: S.join_schedules([S.constant_schedule(1.0)] * 3, [10, 5]), "non-decreasing order"),
    (
        lambda: S.join_schedules([S.constant_schedule(1.0)] * 2, [-1]),
        "boundaries must be non-negative",
    ),
    (
        lambda: S.join_schedules([S.constant_schedule(1.0), 3.0], [1]),
        "schedules[1] must be a callable",
    ),
    (lambda: S.join_schedules([], []), "schedules must not be empty"),
    (lambda: S.warmup_constant_schedule(0.0, 1.0, -1), "warmup_constant_schedule: warmup_steps"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), "decay_steps - warmup_steps"),
    (lambda: S.warmup_cosine_decay_schedule(0.0, 1.0, -1, 10), "warmup_steps must be non-negative"),
    (lambda: S.warmup_exponential_decay_schedule(0.0, 1.0, 5, 0, 0.5), "transition_steps"),
    (lambda: S.warmup_exponential_decay_schedule(0.0, 1.0, 5, 10, 0.0), "decay_rate"),
    (lambda: S.cosine_onecycle_schedule(0, 1.0), "cosine_onecycle_schedule: transition_steps"),
    (lambda: S.cosine_onecycle_schedule(10, 1.0, pct_start=1.0), "strictly increasing"),
    (lambda: S.cosine_onecycle_schedule(10, 1.0, div_factor=0.0), "div_factor"),
    (lambda: S.linear_onecycle_schedule(10, 1.0, 0.5, 0.55), "strictly increasing"),
    (lambda: S.linear_onecycle_schedule(10, 1.0, 0.3, 1.0), "strictly increasing"),
    (lambda: S.linear_onecycle_schedule(10, 1.0, -0.1), "pct_start must be in [0, 1]"),
    (lambda: S.sgdr_schedule([]), "cosine_kwargs must not be empty"),
    (
        lambda: S.sgdr_schedule(
            [{"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 5, "decay_steps": 5}]
        ),
        "decay_steps - warmup_steps",
    ),
    (lambda: S.reduce_on_plateau(factor=1.0), "reduce_on_plateau: factor"),
    (lambda: S.reduce_on_plateau(rtol=-1e-3), "reduce_on_plateau: rtol"),
    (lambda: S.reduce_on_plateau(rtol=1.5), "reduce_on_plateau: rtol"),
    (lambda: S.reduce_on_plateau(rtol=0.0, atol=0.0), "at least one of rtol and atol"),
    (lambda: S.reduce_on_plateau(patience=0), "reduce_on_plateau: patience"),
    (lambda: S.reduce_on_plateau(accumulation_size=0), "accumulation_size"),
    (lambda: S.reduce_on_plateau(cooldown=-1), "cooldown"),
    (lambda: S.reduce_on_plateau(min_scale=-0.1), "min_scale"),
]


@pytest.mark.parametrize(("make", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_arguments_raise_naming_the_argument(make, message) -> None:
    with pytest.raises(S.ScheduleArgumentError, match=message.replace("[", r"\[")):
        make()


def test_arguments_are_checked_inside_jit() -> None:
    @jax.jit
    def build(x):
        return S.linear_schedule(x, 0.0, -1)(3)

    with pytest.raises(S.ScheduleArgumentError, match="transition_steps"):
        build(1.0)


def test_schedule_argument_error_is_a_value_error() -> None:
    assert issubclass(S.ScheduleArgumentError, ValueError)


def test_bool_count_is_refused() -> None:
    with pytest.raises(TypeError, match="count"):
        S.linear_schedule(1.0, 0.0, 10)(True)
