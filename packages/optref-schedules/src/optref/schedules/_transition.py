"""The transition from one value to another over a number of steps: linear, polynomial, cosine.

Every phase of every interpolating schedule (linear and polynomial schedules, warmups,
cosine decay, piecewise interpolation, one-cycle) is a transition from ``start`` to
``end`` after ``done`` of ``done + remaining`` steps, with a progress
$w(s) \\in [0, 1]$ of the fraction $s$ of steps done:

$$v = \\text{start} + (\\text{end} - \\text{start})\\,w(s)
    = \\text{end} + (\\text{start} - \\text{end})\\,(1 - w(s)).$$

Three properties make it a reference:

* **Exact endpoints.** Before the transition (``done <= 0``) the value is ``start``, at
  and after its end (``remaining <= 0``) it is ``end``, bit for bit: no
  ``(start - end) * 1 + end`` rounding.
* **No cancellation.** The first form is used while $w \\le 1/2$, the second after, and
  both $w$ and $1 - w$ are computed from the exact integer step counts ``done`` and
  ``remaining`` without subtracting from one: $1 - (1-s)^p = -\\operatorname{expm1}
  (p \\log(1 - s))$ with $\\log(1 - s)$ from ``log1p`` for small $s$, and
  $\\tfrac12(1 + \\cos \\pi s) = \\sin^2(\\tfrac\\pi2 (1-s))$.
  So the value keeps full relative precision even where it tends to zero (the tail of a
  cosine decay to 0, the last phase of a one-cycle schedule), where
  $\\tfrac12(1 + \\cos\\pi s)$ loses every digit in float32.
* **Finite gradients.** Outside the open interval the fractions are replaced by 1/2
  before the powers and logarithms (the double-``where`` pattern), so the derivative
  with respect to ``power`` is 0, not ``0 * log 0 = NaN``, at the endpoints.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array

__all__ = ["transition"]


def transition(
    start: Array,
    end: Array,
    done: Array,
    remaining: Array,
    dtype: jnp.dtype,
    *,
    cosine: bool = False,
    power: Array | None = None,
) -> Array:
    """The value after ``done`` of ``done + remaining`` steps of a transition start -> end.

    ``done`` and ``remaining`` are step counts relative to the transition's two ends
    (``count - begin`` and ``begin + length - count``), computed exactly in the count's
    dtype; they may be negative or past the end. The progress is

    $$w(s) = \\begin{cases} 1 - (1 - u)^p \\\\ u \\end{cases}, \\qquad
    u = \\begin{cases} \\sin^2(\\tfrac\\pi2 s) & \\text{cosine} \\\\ s & \\text{linear}
    \\end{cases}, \\qquad s = \\frac{\\text{done}}{\\text{done} + \\text{remaining}},$$

    with the power $p$ only when ``power`` is given. ``start`` and ``end`` are arrays of
    the compute ``dtype``; the result is in ``dtype``.
    """
    finished = remaining <= 0
    started = done > 0
    inside = started & ~finished
    # Exact in the count's dtype; 1 outside, where it is not used.
    length = jnp.where(inside, done + remaining, jnp.ones_like(done + remaining))
    half = jnp.asarray(0.5, dtype)
    s = jnp.where(inside, done.astype(dtype) / length.astype(dtype), half)
    r = jnp.where(inside, remaining.astype(dtype) / length.astype(dtype), half)
    if cosine:
        quarter_turn = jnp.asarray(jnp.pi / 2, dtype)
        u, u_rest = jnp.sin(quarter_turn * s) ** 2, jnp.sin(quarter_turn * r) ** 2
    else:
        u, u_rest = s, r
    if power is None:
        w, w_rest = u, u_rest
    else:
        p = power.astype(dtype)
        # log(1 - u): log1p where u is small, else log of the separately accurate 1 - u
        # (XLA's float64 log1p is off by up to ~120 ulp on [-0.5, -0.3]).
        log_rest = jnp.where(u < 0.25, jnp.log1p(-u), jnp.log(u_rest))
        w, w_rest = -jnp.expm1(p * log_rest), u_rest**p
    value = jnp.where(w <= w_rest, start + (end - start) * w, end + (start - end) * w_rest)
    return jnp.where(finished, end, jnp.where(started, value, start))
