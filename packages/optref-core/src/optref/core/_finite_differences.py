"""Central finite differences that check a derivative in float64.

The conformance checks compare a derivative computed by automatic differentiation with

$$D(h) = \\frac{f(x + h) - f(x - h)}{2h}.$$

For a smooth $f$, $D(h) = f'(x) + \\tfrac{1}{6} f'''(x) h^2 + O(h^4)$: the truncation
error falls with $h$. Each value of $f$ carries a rounding error $\\delta \\approx
k\\varepsilon\\max|f|$ ($\\varepsilon$ the machine epsilon, $k$ a few ulps), and $D(h)$ carries
$\\delta / h$: the rounding error grows as $h$ falls. The step trades the two off.

**The step is relative to the range.** A hyperparameter's derivative varies on the scale of
its distance to the end of its range, not on the scale of its value: Adam's $b_2 = 0.999$
enters through $1 - b_2$ (the second moment's memory $1 / (1 - b_2)$, the bias correction
$1 - b_2^t$), so $f'''$ grows like $(1 - b_2)^{-2} f'$ and a step of $10^{-4} b_2$ leaves a
truncation error of order $(10^{-4} b_2 / (1 - b_2))^2 = 10^{-2}$ of the derivative; it may
even step past 1. With $h = c\\,d(x)$ (:data:`RELATIVE_STEP` $c = 10^{-4}$, $d$ from
:func:`range_distance`: $10^{-3}$ for $b_2 = 0.999$, so $h = 10^{-7}$) the relative
truncation error is of order $c^2$ and the step stays inside the range. Where the
derivative is small against $\\max|f| / d(x)$ (AMSGrad's $b_2$, to which only the elements
whose running maximum moved respond), rounding dominates at that step and a larger one is
more accurate: :func:`central_difference` tries each of :data:`RELATIVE_STEPS` and keeps the
one whose error estimate is smallest.

**Richardson extrapolation.** With $D(h)$ and $D(2h)$ the $h^2$ term cancels in

$$D_R = \\frac{4 D(h) - D(2h)}{3} = f'(x) + O(h^4),$$

and $|D(2h) - D(h)| \\approx \\tfrac{1}{2}|f'''| h^2$ measures the truncation error of
$D(h)$ (:attr:`CentralDifference.truncation_error`), while $\\varepsilon\\max|f| / h$
measures the rounding error (:attr:`CentralDifference.rounding_error`; $D_R$ carries at most
$\\tfrac{3}{2}\\delta / h$). A derivative is held to a relative tolerance plus both estimates
(:meth:`CentralDifference.tolerance`), so rounding noise around an exact-zero derivative,
or a kink between the points, is not mistaken for a wrong derivative, and a smooth $f$ is
held to the relative tolerance.

Reference: Nocedal and Wright, *Numerical Optimization* (2006), section 8.1; Richardson,
*The deferred approach to the limit* (1927).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "MULTIPLES",
    "RELATIVE_STEP",
    "RELATIVE_STEPS",
    "CentralDifference",
    "central_difference",
    "difference_step",
    "range_distance",
]

RELATIVE_STEP = 1e-4
"""The step as a fraction of the distance to the end of the range (:func:`difference_step`)."""
RELATIVE_STEPS = (1e-2, 1e-3, 1e-4)
"""The fractions of the distance to the end of the range that :func:`central_difference`
tries, keeping the most accurate."""
MULTIPLES = (1.0, -1.0, 2.0, -2.0)
"""The multiples of the step at which $f$ is evaluated, in the order
:meth:`CentralDifference.from_values` takes the values: $x + h, x - h, x + 2h, x - 2h$."""
_EPS = float(np.finfo(np.float64).eps)


def range_distance(value: float) -> float:
    """How far a hyperparameter's value is from the nearest end of its range.

    $$d(x) = \\begin{cases} \\min(x, 1 - x) & 0 < x < 1 \\\\ |x| & x \\notin [0, 1)
    \\\\ 1 & x = 0 \\end{cases}$$

    A value in $(0, 1)$ is a rate or a decay whose range ends at 0 and at 1
    ($b_2 = 0.999$ is $10^{-3}$ from its end); any other non-zero value is a scale whose
    sign must not change; 0 has no known end nearby. A value at the end of its range
    ($\\epsilon_{root} = 0$, $b_2 = 1$) has no central difference inside it: such a value is
    not checked this way.
    """
    if 0.0 < value < 1.0:
        return min(value, 1.0 - value)
    return abs(value) if value != 0.0 else 1.0


def difference_step(value: float, relative: float = RELATIVE_STEP) -> float:
    """The central-difference step at ``value``: $h = c\\,d(x)$, with $c$ = ``relative``
    and $d$ the :func:`range_distance`, so that $x \\pm 2h$ stays inside the range."""
    return relative * range_distance(value)


@dataclasses.dataclass(frozen=True)
class CentralDifference:
    """Central differences of $f$ at steps $h$ and $2h$, with their error estimates.

    Attributes:
        step: $h$.
        central: $D(h) = (f(x + h) - f(x - h)) / 2h$.
        central_2h: $D(2h) = (f(x + 2h) - f(x - 2h)) / 4h$.
        max_abs_f: the largest $|f|$ of the four values (what their rounding scales with).
    """

    step: float
    central: float
    central_2h: float
    max_abs_f: float

    @classmethod
    def from_values(cls, step: float, values: Sequence[float]) -> CentralDifference:
        """From $f$ at $x + mh$ for each multiple $m$ of :data:`MULTIPLES`, in that order."""
        plus, minus, plus_2h, minus_2h = (float(v) for v in values)
        return cls(
            step=step,
            central=(plus - minus) / (2 * step),
            central_2h=(plus_2h - minus_2h) / (4 * step),
            max_abs_f=max(abs(plus), abs(minus), abs(plus_2h), abs(minus_2h)),
        )

    @property
    def extrapolated(self) -> float:
        """Richardson's $D_R = (4D(h) - D(2h)) / 3 = f'(x) + O(h^4)$."""
        return (4 * self.central - self.central_2h) / 3

    @property
    def truncation_error(self) -> float:
        """$|D(2h) - D(h)|$: three times the truncation error of $D(h)$ for a smooth $f$,
        and far above that of $D_R$; large where a kink lies between the points."""
        return abs(self.central_2h - self.central)

    @property
    def rounding_error(self) -> float:
        """$\\varepsilon\\max|f| / h$: the rounding error of $D(h)$ per ulp of error in $f$."""
        return _EPS * self.max_abs_f / self.step

    @property
    def error_estimate(self) -> float:
        """$2\\,|D(2h) - D(h)| + 16\\,\\varepsilon\\max|f|/h$: a generous bound on the
        truncation error of :attr:`extrapolated` and the rounding error of values of $f$ that
        are ten ulps off."""
        return 2 * self.truncation_error + 16 * self.rounding_error

    def tolerance(self, derivative: float, rtol: float) -> float:
        """How far ``derivative`` may be from :attr:`extrapolated`: the relative agreement
        asked for plus :attr:`error_estimate`,

        $$\\text{rtol}\\,\\max(|f'|, |D_R|) + 2\\,|D(2h) - D(h)| + 16\\,\\varepsilon\\max|f|/h.$$
        """
        scale = max(abs(derivative), abs(self.extrapolated))
        return rtol * scale + self.error_estimate

    def agrees(self, derivative: float, rtol: float) -> bool:
        """Whether ``derivative`` is within :meth:`tolerance` of :attr:`extrapolated`."""
        return abs(derivative - self.extrapolated) <= self.tolerance(derivative, rtol)


def central_difference(
    f: Callable[[Any], Any], x: Any, steps: Sequence[float] | None = None
) -> CentralDifference:
    """The most accurate :class:`CentralDifference` of a scalar function ``f`` at a scalar
    ``x``: of those at each of ``steps``, the one with the smallest
    :attr:`~CentralDifference.error_estimate`.

    ``f`` is called at ``x + m * h`` for each step $h$ and each multiple $m$ of
    :data:`MULTIPLES` (``x`` keeps its type: an array stays an array of its dtype, so a
    jitted ``f`` does not retrace). ``steps`` defaults to :func:`difference_step` of ``x``
    with each fraction of :data:`RELATIVE_STEPS`. Choosing the step by its error estimate,
    not by agreement with a derivative, keeps the choice independent of what is checked.
    """
    if steps is None:
        steps = [difference_step(float(x), c) for c in RELATIVE_STEPS]
    differences = [
        CentralDifference.from_values(h, [f(x + m * h) for m in MULTIPLES]) for h in steps
    ]
    return min(differences, key=lambda d: d.error_estimate)
