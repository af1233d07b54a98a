"""Heavy-ball and Nesterov momentum: an accumulated trace of past updates."""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import Array, Inexact, PyTree, jaxtyped

from ._base import check_state, params_like
from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import compute_dtype
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["Trace", "TraceState", "trace"]


@jaxtyped(typechecker=typechecker)
class TraceState(eqx.Module):
    """The accumulated trace of past updates."""

    trace: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]


class Trace(LeafwiseTransformation):
    """Momentum: ``trace = g + decay * trace``.

    Built by :func:`trace`, whose docstring gives the math and the references.
    """

    decay: Array = eqx.field(converter=as_scalar_hyperparameter)
    nesterov: bool = eqx.field(static=True, default=False)
    accumulator_dtype: Any = eqx.field(static=True, default=None)
    scalar_hyperparameters = ("decay",)

    def __check_init__(self) -> None:
        check_range(self, "decay", self.decay, 0.0)

    def init(self, params: PyTree) -> TraceState:
        return TraceState(tree_zeros_like(params, dtype=self.accumulator_dtype))

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, TraceState)
        decay, nesterov = self.decay, self.nesterov

        def leaf(g: Array, p: Any, moments: tuple[Array], constants: tuple) -> Any:
            t = moments[0]
            work = compute_dtype(t.dtype)
            t = (g.astype(work) + decay.astype(work) * t.astype(work)).astype(t.dtype)
            if nesterov:
                work = compute_dtype(g.dtype)
                u = (g.astype(work) + decay.astype(work) * t.astype(work)).astype(g.dtype)
            else:
                u = t.astype(g.dtype)
            return u, (t,)

        return LeafwiseStep(leaf, lambda new: TraceState(new[0]), moments=(state.trace,))


def trace(decay: float | Array, nesterov: bool = False, accumulator_dtype: Any = None) -> Trace:
    """Momentum, heavy-ball or Nesterov.

    $$m_t = g_t + \\mu\\,m_{t-1}, \\qquad u_t = \\begin{cases} m_t & \\text{heavy ball} \\\\
    g_t + \\mu\\,m_t & \\text{Nesterov} \\end{cases}$$

    ``accumulator_dtype`` stores the trace in another dtype (``None``: the params').
    References: Polyak (1964); Sutskever et al., *On the importance of initialization
    and momentum in deep learning* (2013). Optax: ``optax.trace``.
    """
    return Trace(decay, nesterov, accumulator_dtype)
