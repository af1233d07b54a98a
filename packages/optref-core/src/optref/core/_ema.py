"""Exponential moving average of the updates, optionally debiased."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._base import check_state, params_like
from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import bias_correction_factor, compute_dtype, safe_increment
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["Ema", "EmaState", "ema"]


@jaxtyped(typechecker=typechecker)
class EmaState(eqx.Module):
    """The step count and the moving average of past updates."""

    count: Int[Array, ""]
    ema: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]


class Ema(LeafwiseTransformation):
    """``ema = decay * ema + (1 - decay) * g``; the update is the (debiased) average.

    Built by :func:`ema`, whose docstring gives the math and the references.
    """

    decay: Array = eqx.field(converter=as_scalar_hyperparameter)
    debias: bool = eqx.field(static=True, default=True)
    accumulator_dtype: Any = eqx.field(static=True, default=None)
    scalar_hyperparameters = ("decay",)

    def __check_init__(self) -> None:
        check_range(self, "decay", self.decay, 0.0, 1.0, high_inclusive=not self.debias)

    def init(self, params: PyTree) -> EmaState:
        def zeros(p: Array) -> Array:
            dtype = self.accumulator_dtype
            if dtype is not None and jnp.iscomplexobj(p):
                # A real accumulator dtype sets the precision; a complex average needs the
                # complex dtype of that precision, or its imaginary part would be dropped.
                dtype = jnp.promote_types(dtype, jnp.complex64)
            return tree_zeros_like(p, dtype)

        return EmaState(jnp.zeros([], jnp.int32), jax.tree.map(zeros, params))

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, EmaState, params)
        count = safe_increment(state.count)
        correction = bias_correction_factor(self.decay, count) if self.debias else None
        decay = self.decay

        def leaf(g: Array, p: Any, moments: tuple[Array], constants: tuple) -> Any:
            m = moments[0]
            # The average is formed in the wider of the two dtypes, returned from that
            # value and only then rounded to the accumulator's dtype for storage (a
            # float32 accumulator under float64 updates does not round the update).
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            d = decay.astype(jnp.finfo(work).dtype)
            average = (1 - d) * g.astype(work) + d * m.astype(work)
            out = average / correction.astype(d.dtype) if correction is not None else average
            return out.astype(g.dtype), (average.astype(m.dtype),)

        return LeafwiseStep(leaf, lambda new: EmaState(count, new[0]), moments=(state.ema,))


def ema(decay: float | Array, debias: bool = True, accumulator_dtype: Any = None) -> Ema:
    """Exponential moving average of the updates.

    $$m_t = \\beta\\,m_{t-1} + (1-\\beta)\\,g_t, \\quad m_0 = 0, \\qquad
    u_t = \\begin{cases} m_t / (1-\\beta^t) & \\text{debias} \\\\ m_t & \\text{otherwise}
    \\end{cases}$$

    Unlike :func:`trace` ($m_t = g_t + \\beta m_{t-1}$), the average has unit gain. The
    bias correction is computed without cancellation. ``accumulator_dtype`` stores the
    average in another dtype (``None``: the params'); the update is computed before that
    rounding. Reference: ``optax.ema``.
    """
    return Ema(decay, debias, accumulator_dtype)
