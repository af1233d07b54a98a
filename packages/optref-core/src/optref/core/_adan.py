"""Adan: adaptive Nesterov momentum from moving averages of gradients and their differences."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import (
    abs_sq,
    adaptive_ratio,
    bias_correction_factor,
    compute_dtype,
    moving_average,
    safe_increment,
)
from ._scale import scale_by_learning_rate
from ._tree import _decay_pair, tree_zeros_like
from ._typecheck import typechecker
from ._weight_decay import add_decayed_weights

__all__ = ["ScaleByAdan", "ScaleByAdanState", "adan", "scale_by_adan"]


@jaxtyped(typechecker=typechecker)
class ScaleByAdanState(eqx.Module):
    """Adan's moving averages of the gradients (``m``), of their differences (``v``), of the
    squared Nesterov-corrected gradients (``n``), the previous gradient (``g``) and the
    step count (``t``), in Optax's order."""

    m: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    v: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    n: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    g: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    # Last, as in Optax (params_like() fields have no default; pyright cannot tell).
    t: Int[Array, ""]  # pyright: ignore[reportGeneralTypeIssues]


class ScaleByAdan(LeafwiseTransformation):
    """Scale by Adan's bias-corrected moments.

    Built by :func:`scale_by_adan`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.98, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.92, converter=as_scalar_hyperparameter)
    b3: Array = eqx.field(default=0.99, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    eps_root: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("b1", "b2", "b3", "eps", "eps_root")

    def __check_init__(self) -> None:
        for name in ("b1", "b2", "b3"):
            check_range(self, name, getattr(self, name), 0.0, 1.0, high_inclusive=False)
        check_range(self, "eps", self.eps, 0.0)
        check_range(self, "eps_root", self.eps_root, 0.0)

    def init(self, params: PyTree) -> ScaleByAdanState:
        return ScaleByAdanState(
            m=tree_zeros_like(params),
            v=tree_zeros_like(params),
            n=tree_zeros_like(params),
            g=tree_zeros_like(params),
            t=jnp.zeros([], jnp.int32),
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByAdanState, params)
        b1, b2, b3, eps, eps_root = self.b1, self.b2, self.b3, self.eps, self.eps_root
        first = state.t == 0
        t = safe_increment(state.t)
        corrections = [bias_correction_factor(b, t) for b in (b1, b2, b3)]
        _, complement2 = _decay_pair(b2)

        def leaf(
            g: Array, p: Any, moments: tuple[Array, Array, Array, Array], constants: tuple
        ) -> tuple[Array, tuple[Array, Array, Array, Array]]:
            m, v, n, g_prev = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            c2 = complement2.astype(real)
            # No previous gradient on the first step: the difference is zero.
            diff = jnp.where(first, jnp.zeros_like(g_w), g_w - g_prev.astype(work))
            m_new = moving_average(m.astype(work), g_w, b1)
            v_new = moving_average(v.astype(work), diff, b2)
            n_new = moving_average(jnp.real(n.astype(work)), abs_sq(g_w + c2 * diff), b3)
            direction = m_new / corrections[0].astype(real) + c2 * (
                v_new / corrections[1].astype(real)
            )
            step = adaptive_ratio(direction, n_new / corrections[2].astype(real), eps, eps_root)
            return step.astype(g.dtype), (
                m_new.astype(m.dtype),
                v_new.astype(v.dtype),
                n_new.astype(n.dtype),
                g.astype(g_prev.dtype),
            )

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByAdanState(m=new[0], v=new[1], n=new[2], g=new[3], t=t),
            moments=(state.m, state.v, state.n, state.g),
        )


def scale_by_adan(
    b1: float | Array = 0.98,
    b2: float | Array = 0.92,
    b3: float | Array = 0.99,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
) -> ScaleByAdan:
    """Rescale updates by Adan's moments of the gradients and of their differences.

    With $\\Delta_t = g_t - g_{t-1}$ ($\\Delta_1 = 0$):

    $$\\begin{aligned}
    m_t &= \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\qquad
    v_t = \\beta_2 v_{t-1} + (1-\\beta_2) \\Delta_t, \\\\
    n_t &= \\beta_3 n_{t-1} + (1-\\beta_3) \\big|g_t + (1-\\beta_2)\\Delta_t\\big|^2, \\\\
    \\text{update}_t &= \\frac{\\hat m_t + (1-\\beta_2)\\,\\hat v_t}
    {\\sqrt{\\hat n_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon},
    \\end{aligned}$$

    where hats are the bias-corrected moments ($\\hat x_t = x_t / (1-\\beta^t)$, computed
    without cancellation). The betas are decay rates, as in Optax (the paper's
    $\\beta$ are one minus these). Reference: Xie et al., *Adan: Adaptive Nesterov Momentum
    Algorithm for Faster Optimizing Deep Models* (2022), Algorithm 1; Optax:
    ``optax.scale_by_adan``.
    """
    return ScaleByAdan(b1, b2, b3, eps, eps_root)


@alias
def adan(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.98,
    b2: float | Array = 0.92,
    b3: float | Array = 0.99,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> Chain:
    """The Adan optimizer: :func:`scale_by_adan`, decoupled weight decay, the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\Big(\\frac{\\hat m_t + (1-\\beta_2)\\hat v_t}
    {\\sqrt{\\hat n_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon} + \\lambda\\,p_{t-1}\\Big)$$

    Note the alias's ``eps_root`` default (``1e-8``) differs from the transform's (``0``),
    as in Optax. Reference: Xie et al. (2022); ``optax.adan``.
    """
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
