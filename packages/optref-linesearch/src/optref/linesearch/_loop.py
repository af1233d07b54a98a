"""The inner loop of a line search: unbounded (as Optax) or bounded and reverse-differentiable.

A line search repeats a trial step until its criterion holds or its budget of steps is
spent. Optax runs it in :func:`jax.lax.while_loop`, which forward mode (``jax.jvp``)
differentiates but reverse mode (``jax.grad``) cannot: the number of trips is not known
when the program is traced. The bounded form runs a fixed number of trips,
``max_steps``, with :func:`jax.lax.scan`; each trip is a :func:`jax.lax.cond` that takes
the step while the loop's condition holds and passes the carry through once it stops.
It computes the same numbers in the same order, and both modes of differentiation go
through it. Outside ``vmap`` the trips after the stop cost one predicate each; under
``vmap`` the ``cond`` becomes a select and every trip evaluates the body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import jax

__all__ = ["line_search_loop"]

Carry = TypeVar("Carry")


def line_search_loop(
    cond_fn: Callable[[Carry], jax.Array],
    body_fn: Callable[[Carry], Carry],
    init: Carry,
    *,
    max_steps: int,
    bounded: bool,
) -> Carry:
    """``while cond_fn(carry): carry = body_fn(carry)``, at most ``max_steps`` trips if bounded.

    $$c_{k+1} = \\begin{cases} \\mathrm{body}(c_k) & \\mathrm{cond}(c_k) \\\\ c_k &
    \\text{otherwise} \\end{cases}, \\qquad k = 0, \\ldots, K - 1$$

    With ``bounded=False``, a :func:`jax.lax.while_loop` (as Optax); ``max_steps`` must
    then be an upper bound of the trips ``cond_fn`` allows, so both forms agree.
    """
    if not bounded:
        return jax.lax.while_loop(cond_fn, body_fn, init)

    def trip(carry: Carry, _: None) -> tuple[Carry, None]:
        return jax.lax.cond(cond_fn(carry), body_fn, lambda c: c, carry), None

    final, _ = jax.lax.scan(trip, init, None, length=max_steps)
    return final
