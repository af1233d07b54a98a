"""The central differences that check derivatives: range-relative steps, Richardson
extrapolation, and error estimates that tell a wrong derivative from rounding noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optref.core.conformance import (
    MULTIPLES,
    RELATIVE_STEPS,
    CentralDifference,
    central_difference,
    difference_step,
    range_distance,
)


def test_the_step_is_relative_to_the_end_of_the_range():
    assert range_distance(0.999) == pytest.approx(1e-3)
    assert range_distance(0.1) == 0.1
    assert range_distance(-0.05) == 0.05 and range_distance(50.0) == 50.0
    assert range_distance(0.0) == 1.0
    # Every point a beta near 1 is evaluated at stays inside (0, 1).
    for c in RELATIVE_STEPS:
        h = difference_step(0.999, c)
        assert all(0.0 < 0.999 + m * h < 1.0 for m in MULTIPLES)


def test_extrapolation_removes_the_h_squared_term():
    # f = 1 / (1 - b), a memory: D(h) = f' (1 + r^2 + r^4 + ...) with r = h / (1 - b), and
    # D_R = f' (1 - 4 r^4 + ...).
    def f(b: float) -> float:
        return 1.0 / (1.0 - b)

    def exact(b: float) -> float:
        return 1.0 / (1.0 - b) ** 2

    h = difference_step(0.9, 1e-2)
    d = central_difference(f, 0.9, [h])
    error_d = abs(d.central - exact(0.9))
    error_r = abs(d.extrapolated - exact(0.9))
    assert error_r < 1e-3 * error_d
    # |D(2h) - D(h)| is three times D(h)'s error, to leading order.
    assert d.truncation_error == pytest.approx(3 * error_d, rel=1e-2)
    assert d.agrees(exact(0.9), rtol=1e-6)


def test_the_most_accurate_step_is_kept():
    # A derivative far below max|f| / d: rounding dominates at the smallest step.
    def f(x: float) -> float:
        return 1e6 + 1e-3 * x**2

    d = central_difference(f, 0.5)
    assert d.step == difference_step(0.5, max(RELATIVE_STEPS))
    assert abs(d.extrapolated - 1e-3) <= d.error_estimate


def test_a_wrong_derivative_is_caught_and_rounding_noise_is_not():
    rng = np.random.default_rng(0)
    noise = 4 * np.finfo(np.float64).eps

    def noisy_cos(x: float) -> float:
        return math.cos(x) * (1.0 + noise * rng.uniform(-1.0, 1.0))

    d = central_difference(noisy_cos, 1.0)
    assert d.agrees(-math.sin(1.0), rtol=1e-6)
    assert not d.agrees(-math.sin(1.0) * (1 + 1e-3), rtol=1e-6)
    assert d.error_estimate < 1e-6 * math.sin(1.0)


def test_from_values_reads_the_multiples_in_order():
    h = 0.1
    values = [3.0 + 2.0 * m * h for m in MULTIPLES]  # f = 3 + 2x at x = 0
    d = CentralDifference.from_values(h, values)
    assert d.central == pytest.approx(2.0) and d.central_2h == pytest.approx(2.0)
    assert d.max_abs_f == pytest.approx(3.4)
