"""Conformance cases of optref-schedules against Optax (plain data; run by optref.audit).

optref-schedules does not depend on optref-core, so its cases are plain dicts with the
fields of ``optref.core.conformance.Case``; the runner reads both. A schedule case
(``kind="schedule"``) compares the two schedules' values at every integer step
``0..steps`` (``steps`` lies well past the last boundary) and differentiates the value
with respect to the keyword arguments named in ``hyperparameters``.

A keyword argument that is itself built by a factory (the schedules given to
``join_schedules``) is a dict with exactly the keys ``optref``, ``optax`` and
``kwargs``, the fields of ``optref.core.conformance.Call``.

Deviations (dicts with the fields of ``optref.core.conformance.Deviation``) record where
optref differs from Optax on purpose.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CASES", "INT32_COUNT_DEVIATION", "PLATEAU_VALUES"]

_S = "optref.schedules."

#: Optax divides an int32 count by a Python int in float32, whatever the dtype of the
#: schedule's values: with ``jax_enable_x64`` and Optax's own int32 step counts, its
#: polynomial, linear, exponential and piecewise-interpolated schedules (and the warmups
#: and one-cycle schedules built on them) are float32-rounded. optref computes in the
#: values' dtype; with int64 counts the two agree to rounding.
INT32_COUNT_DEVIATION: dict[str, Any] = {
    "check": "float64",
    "reason": (
        "With int32 step counts (the dtype of Optax's own counters) Optax computes "
        "count / transition_steps in float32 even with jax_enable_x64, so its polynomial, "
        "linear, exponential and piecewise-interpolated schedules, and the warmups and "
        "one-cycle schedules built on them, are rounded to float32 (relative error "
        "~1e-8). optref computes in the dtype of the schedule's values; evaluated at "
        "int64 counts the two agree to ~1e-15."
    ),
}

_NO_WARMUP_DEVIATION: dict[str, Any] = {
    "check": "float64",
    "reason": (
        "A zero-length linear transition (warmup_steps = 0) holds init_value forever in "
        "Optax, so warmup_constant_schedule never reaches peak_value; optref follows the "
        "formula's limit, peak_value from step 0 on."
    ),
}

_ZERO_PEAK_DEVIATION: dict[str, Any] = {
    "check": "float64",
    "reason": (
        "For peak_value = 0 Optax's warmup_cosine_decay_schedule sets alpha = 0 (to avoid "
        "end_value / peak_value) and stays at 0 after the warmup, ignoring end_value; "
        "optref decays from peak_value to end_value as documented."
    ),
}


def _case(
    name: str,
    kwargs: dict[str, Any],
    steps: int,
    hyperparameters: tuple[str, ...] = (),
    *,
    optax: str | None = None,
    deviations: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    factory = name.split("-")[0]
    case: dict[str, Any] = {
        "name": f"schedules.{name}",
        "optref": _S + factory,
        "optax": optax or f"optax.schedules.{factory}",
        "kwargs": kwargs,
        "kind": "schedule",
        "steps": steps,
        "hyperparameters": hyperparameters,
    }
    if deviations:
        case["deviations"] = deviations
    return case


def _plateau_case(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A case of the plateau transformation, run by the runner as a transformation on its
    problems, with the problem's loss as ``value`` (as the scale of small descent steps)."""
    return {
        "name": f"schedules.{name}",
        "optref": _S + "reduce_on_plateau",
        "optax": "optax.contrib.reduce_on_plateau",
        "kwargs": kwargs,
        "kind": "transformation",
        "steps": 30,
        "step_scale": -0.01,
        "extra_args": ("value",),
    }


def _call(factory: str, **kwargs: Any) -> dict[str, Any]:
    """A schedule built by ``factory`` in each library, as an argument of another."""
    return {"optref": _S + factory, "optax": f"optax.schedules.{factory}", "kwargs": kwargs}


_I32 = (INT32_COUNT_DEVIATION,)
_ONECYCLE = ("peak_value", "div_factor", "final_div_factor")

#: Monitored values for checking reduce_on_plateau outside the runner (which feeds it the
#: problem's loss): a loss that improves, stalls, improves a little, and stalls again.
PLATEAU_VALUES: tuple[float, ...] = (
    *(5.0, 4.0, 3.9, 3.95, 3.9, 3.0, 2.99, 2.995, 2.98, 2.97),
    *(2.5, 2.5, 2.5, 2.5, 2.49, 2.48, 2.47),
    *(1.0,) * 7,
)

CASES: list[dict[str, Any]] = [
    _case("constant_schedule", {"value": 0.5}, 5, ("value",)),
    _case("constant_schedule-int", {"value": 3}, 5),
    # Linear and polynomial.
    _case(
        "linear_schedule",
        {"init_value": 1.0, "end_value": 0.1, "transition_steps": 50},
        70,
        ("init_value", "end_value"),
        deviations=_I32,
    ),
    _case(
        "linear_schedule-transition_begin",
        {"init_value": 0.0, "end_value": 2e-3, "transition_steps": 37, "transition_begin": 13},
        80,
        ("init_value", "end_value"),
        deviations=_I32,
    ),
    _case(
        "linear_schedule-to_zero",
        {"init_value": 3e-4, "end_value": 0.0, "transition_steps": 120, "transition_begin": 7},
        140,
        ("init_value",),
        deviations=_I32,
    ),
    _case(
        "polynomial_schedule",
        {"init_value": 1.0, "end_value": 0.01, "power": 2, "transition_steps": 50},
        70,
        ("init_value", "end_value", "power"),
        deviations=_I32,
    ),
    _case(
        "polynomial_schedule-sqrt-transition_begin",
        {
            "init_value": 1.0,
            "end_value": 1e-3,
            "power": 0.5,
            "transition_steps": 40,
            "transition_begin": 10,
        },
        70,
        ("init_value", "end_value", "power"),
        deviations=_I32,
    ),
    _case(
        "polynomial_schedule-increasing",
        {
            "init_value": 1e-4,
            "end_value": 0.1,
            "power": 3.0,
            "transition_steps": 33,
            "transition_begin": 5,
        },
        60,
        ("end_value", "power"),
        deviations=_I32,
    ),
    # Cosine decay.
    _case(
        "cosine_decay_schedule",
        {"init_value": 1.0, "decay_steps": 50},
        70,
        ("init_value",),
    ),
    _case(
        "cosine_decay_schedule-alpha",
        {"init_value": 0.1, "decay_steps": 64, "alpha": 0.1},
        90,
        ("init_value", "alpha"),
    ),
    _case(
        "cosine_decay_schedule-exponent",
        {"init_value": 2.0, "decay_steps": 45, "alpha": 0.05, "exponent": 2.0},
        60,
        ("init_value", "alpha", "exponent"),
    ),
    _case(
        "cosine_decay_schedule-sqrt_exponent",
        {"init_value": 1.0, "decay_steps": 30, "exponent": 0.5},
        40,
        ("exponent",),
    ),
    # Exponential decay.
    _case(
        "exponential_decay",
        {"init_value": 1.0, "transition_steps": 10, "decay_rate": 0.5},
        60,
        ("init_value", "decay_rate"),
        deviations=_I32,
    ),
    _case(
        "exponential_decay-staircase-transition_begin",
        {
            "init_value": 0.5,
            "transition_steps": 7,
            "decay_rate": 0.8,
            "transition_begin": 12,
            "staircase": True,
        },
        80,
        ("init_value", "decay_rate"),
        deviations=_I32,
    ),
    _case(
        "exponential_decay-end_value",
        {
            "init_value": 1.0,
            "transition_steps": 5,
            "decay_rate": 0.7,
            "transition_begin": 3,
            "end_value": 0.05,
        },
        60,
        ("init_value", "decay_rate", "end_value"),
        deviations=_I32,
    ),
    _case(
        "exponential_decay-growth-end_value",
        {"init_value": 1e-3, "transition_steps": 4, "decay_rate": 1.5, "end_value": 0.2},
        60,
        ("init_value", "decay_rate", "end_value"),
        deviations=_I32,
    ),
    # Piecewise.
    _case(
        "piecewise_constant_schedule",
        {"init_value": 1.0, "boundaries_and_scales": {10: 0.5, 30: 0.1, 31: 2.0}},
        50,
        ("init_value",),
    ),
    _case(
        "piecewise_constant_schedule-boundary_zero",
        {"init_value": 0.3, "boundaries_and_scales": {0: 0.5, 20: 0.0}},
        30,
        ("init_value",),
    ),
    _case(
        "piecewise_constant_schedule-none",
        {"init_value": 0.3},
        5,
        ("init_value",),
    ),
    _case(
        "piecewise_interpolate_schedule-linear",
        {
            "interpolate_type": "linear",
            "init_value": 1.0,
            "boundaries_and_scales": {4: 0.1, 8: 0.01, 30: 3.0},
        },
        40,
        ("init_value",),
        deviations=_I32,
    ),
    _case(
        "piecewise_interpolate_schedule-cosine",
        {
            "interpolate_type": "cosine",
            "init_value": 2.0,
            "boundaries_and_scales": {10: 0.5, 25: 0.01, 60: 4.0},
        },
        80,
        ("init_value",),
        deviations=_I32,
    ),
    _case(
        "piecewise_interpolate_schedule-boundary_zero",
        {
            "interpolate_type": "cosine",
            "init_value": 1.0,
            "boundaries_and_scales": {0: 2.0, 15: 0.25},
        },
        25,
        ("init_value",),
        deviations=_I32,
    ),
    # Joined schedules.
    _case(
        "join_schedules",
        {
            "schedules": [
                _call("linear_schedule", init_value=0.0, end_value=1.0, transition_steps=10),
                _call("constant_schedule", value=1.0),
                _call("cosine_decay_schedule", init_value=1.0, decay_steps=30, alpha=0.1),
            ],
            "boundaries": [10, 25],
        },
        70,
        deviations=_I32,
    ),
    _case(
        "join_schedules-repeated_boundary",
        {
            "schedules": [
                _call("constant_schedule", value=2.0),
                _call("exponential_decay", init_value=1.0, transition_steps=3, decay_rate=0.5),
                _call("constant_schedule", value=7.0),
                _call(
                    "polynomial_schedule",
                    init_value=1.0,
                    end_value=0.0,
                    power=2.0,
                    transition_steps=20,
                    transition_begin=4,
                ),
            ],
            "boundaries": [0, 12, 12],
        },
        40,
        deviations=_I32,
    ),
    # Warmups.
    _case(
        "warmup_constant_schedule",
        {"init_value": 0.0, "peak_value": 1e-3, "warmup_steps": 20},
        30,
        ("init_value", "peak_value"),
        deviations=_I32,
    ),
    _case(
        "warmup_constant_schedule-no_warmup",
        {"init_value": 0.1, "peak_value": 1.0, "warmup_steps": 0},
        5,
        ("peak_value",),
        deviations=(_NO_WARMUP_DEVIATION,),
    ),
    _case(
        "warmup_cosine_decay_schedule",
        {
            "init_value": 0.0,
            "peak_value": 1.0,
            "warmup_steps": 10,
            "decay_steps": 60,
            "end_value": 0.0,
        },
        80,
        ("init_value", "peak_value", "end_value"),
        deviations=_I32,
    ),
    _case(
        "warmup_cosine_decay_schedule-end_value-exponent",
        {
            "init_value": 1e-4,
            "peak_value": 3e-3,
            "warmup_steps": 7,
            "decay_steps": 50,
            "end_value": 1e-5,
            "exponent": 1.5,
        },
        70,
        ("init_value", "peak_value", "end_value", "exponent"),
        deviations=_I32,
    ),
    _case(
        "warmup_cosine_decay_schedule-no_warmup",
        {
            "init_value": 0.5,
            "peak_value": 1.0,
            "warmup_steps": 0,
            "decay_steps": 40,
            "end_value": 0.1,
        },
        50,
        ("peak_value", "end_value"),
        deviations=_I32,
    ),
    _case(
        "warmup_cosine_decay_schedule-zero_peak",
        {
            "init_value": 0.0,
            "peak_value": 0.0,
            "warmup_steps": 5,
            "decay_steps": 20,
            "end_value": 0.01,
        },
        30,
        deviations=(_ZERO_PEAK_DEVIATION,),
    ),
    _case(
        "warmup_exponential_decay_schedule",
        {
            "init_value": 0.0,
            "peak_value": 1.0,
            "warmup_steps": 10,
            "transition_steps": 5,
            "decay_rate": 0.5,
        },
        60,
        ("init_value", "peak_value", "decay_rate"),
        deviations=_I32,
    ),
    _case(
        "warmup_exponential_decay_schedule-staircase-end_value",
        {
            "init_value": 1e-3,
            "peak_value": 0.1,
            "warmup_steps": 8,
            "transition_steps": 6,
            "decay_rate": 0.6,
            "transition_begin": 4,
            "staircase": True,
            "end_value": 5e-3,
        },
        80,
        ("peak_value", "decay_rate", "end_value"),
        deviations=_I32,
    ),
    # One-cycle.
    _case(
        "cosine_onecycle_schedule",
        {"transition_steps": 50, "peak_value": 1.0, "div_factor": 25.0, "final_div_factor": 1e4},
        70,
        _ONECYCLE,
        deviations=_I32,
    ),
    _case(
        "cosine_onecycle_schedule-pct_start",
        {
            "transition_steps": 37,
            "peak_value": 0.2,
            "pct_start": 0.45,
            "div_factor": 10.0,
            "final_div_factor": 100.0,
        },
        50,
        _ONECYCLE,
        deviations=_I32,
    ),
    _case(
        "linear_onecycle_schedule",
        {"transition_steps": 60, "peak_value": 1.0, "div_factor": 25.0, "final_div_factor": 1e4},
        80,
        _ONECYCLE,
        deviations=_I32,
    ),
    _case(
        "linear_onecycle_schedule-pct",
        {
            "transition_steps": 41,
            "peak_value": 0.5,
            "pct_start": 0.2,
            "pct_final": 0.7,
            "div_factor": 5.0,
            "final_div_factor": 50.0,
        },
        60,
        _ONECYCLE,
        deviations=_I32,
    ),
    # SGDR.
    _case(
        "sgdr_schedule",
        {
            "cosine_kwargs": [
                {"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 5, "decay_steps": 20},
                {
                    "init_value": 0.1,
                    "peak_value": 0.5,
                    "warmup_steps": 3,
                    "decay_steps": 30,
                    "end_value": 0.01,
                },
                {
                    "init_value": 0.05,
                    "peak_value": 0.25,
                    "warmup_steps": 0,
                    "decay_steps": 15,
                    "exponent": 2.0,
                },
            ]
        },
        90,
        deviations=_I32,
    ),
    _case(
        "sgdr_schedule-single_cycle",
        {
            "cosine_kwargs": [
                {
                    "init_value": 1e-3,
                    "peak_value": 2e-3,
                    "warmup_steps": 4,
                    "decay_steps": 40,
                    "end_value": 1e-4,
                    "exponent": 0.7,
                },
            ]
        },
        50,
        deviations=_I32,
    ),
    # Reduce on plateau: a transformation with state, fed the loss as ``value``.
    _plateau_case("reduce_on_plateau", {"factor": 0.5, "patience": 2, "rtol": 0.1, "cooldown": 1}),
    _plateau_case(
        "reduce_on_plateau-accumulation",
        {
            "factor": 0.3,
            "patience": 1,
            "rtol": 0.0,
            "atol": 1e-3,
            "accumulation_size": 3,
            "min_scale": 0.05,
        },
    ),
]
