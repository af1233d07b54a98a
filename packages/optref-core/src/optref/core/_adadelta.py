"""Adadelta: step sizes from the ratio of moving RMS of past steps and of gradients."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, PyTree, jaxtyped

from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import abs_sq, compute_dtype, differentiated_as, safe_div, safe_sqrt
from ._scale import scale_by_learning_rate
from ._stateless import identity
from ._tree import tree_zeros_like
from ._typecheck import typechecker
from ._weight_decay import add_decayed_weights

__all__ = ["ScaleByAdaDeltaState", "ScaleByAdadelta", "adadelta", "scale_by_adadelta"]


@jaxtyped(typechecker=typechecker)
class ScaleByAdaDeltaState(eqx.Module):
    """Moving averages of the squared gradients (``e_g``) and squared steps (``e_x``)."""

    e_g: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    e_x: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


def _root_ratio_reference(steps: Array, gradients: Array) -> Array:
    numerator = safe_sqrt(steps)
    return safe_div(numerator, safe_sqrt(gradients), numerator * 0)


@differentiated_as(_root_ratio_reference)
def _root_ratio(steps: Array, gradients: Array) -> Array:
    """``sqrt(steps) / sqrt(gradients)`` for two nonnegative moments, zero where the
    second's root is zero (NaN where the first is then NaN or infinite), in one select.

    On nonnegative numbers, NaN and infinities the values are those of the double-where
    form (:func:`safe_div` of two :func:`safe_sqrt`), and so are the derivatives; a
    negative moment, which no step makes, has the root NaN here where that form takes 0.
    """
    root = jnp.sqrt(gradients)
    return jnp.sqrt(steps) / jnp.where(root == 0, jnp.inf, root)


class ScaleByAdadelta(LeafwiseTransformation):
    """``u = sqrt(E[Δx²] + eps) / sqrt(E[g²] + eps) · g``.

    Built by :func:`scale_by_adadelta`, whose docstring gives the math and the references.
    """

    rho: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-6, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("rho", "eps")

    def __check_init__(self) -> None:
        check_range(self, "rho", self.rho, 0.0, 1.0)
        check_range(self, "eps", self.eps, 0.0)

    def init(self, params: PyTree) -> ScaleByAdaDeltaState:
        return ScaleByAdaDeltaState(tree_zeros_like(params), tree_zeros_like(params))

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByAdaDeltaState, params)
        rho, eps = self.rho, self.eps

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            e_g, e_x = moments
            work = compute_dtype(jnp.result_type(g.dtype, e_g.dtype, e_x.dtype))
            real = jnp.finfo(work).dtype
            r, e = rho.astype(real), eps.astype(real)
            g_w = g.astype(work)
            new_e_g = (1 - r) * abs_sq(g_w) + r * jnp.real(e_g.astype(work))
            # With eps = 0 both roots can be zero (no gradient yet): a zero step, not 0/0.
            ratio = _root_ratio(jnp.real(e_x.astype(work)) + e, new_e_g + e)
            scaled = ratio * g_w
            new_e_x = (1 - r) * abs_sq(scaled) + r * jnp.real(e_x.astype(work))
            return scaled.astype(g.dtype), (new_e_g.astype(e_g.dtype), new_e_x.astype(e_x.dtype))

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByAdaDeltaState(new[0], new[1]),
            moments=(state.e_g, state.e_x),
        )


def scale_by_adadelta(rho: float | Array = 0.9, eps: float | Array = 1e-6) -> ScaleByAdadelta:
    """Rescale by Adadelta's ratio of RMS of past steps to RMS of gradients.

    $$\\begin{aligned}
    E[g^2]_t &= \\rho\\,E[g^2]_{t-1} + (1-\\rho)\\,|g_t|^2, \\qquad
    u_t = \\frac{\\sqrt{E[\\Delta x^2]_{t-1} + \\varepsilon}}{\\sqrt{E[g^2]_t + \\varepsilon}}\\,
    g_t, \\\\
    E[\\Delta x^2]_t &= \\rho\\,E[\\Delta x^2]_{t-1} + (1-\\rho)\\,|u_t|^2.
    \\end{aligned}$$

    Computed in at least float32, stored in the params' dtype. $|\\cdot|^2$ is the
    squared modulus, so complex params get a real, positive scaling (Optax squares the
    complex numbers themselves there, which is not Adadelta). Reference: Zeiler,
    *ADADELTA: An Adaptive Learning Rate Method* (2012), Algorithm 1. Optax:
    ``optax.scale_by_adadelta``.
    """
    return ScaleByAdadelta(rho, eps)


@alias
def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float | Array = 0.9,
    eps: float | Array = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> Chain:
    """Adadelta: :func:`add_decayed_weights`, :func:`scale_by_adadelta`, then the rate.

    $$p_t = p_{t-1} - \\eta_t\\,
    \\frac{\\sqrt{E[\\Delta x^2]_{t-1} + \\varepsilon}}{\\sqrt{E[g^2]_t + \\varepsilon}}\\,
    (g_t + \\lambda p_{t-1})$$

    As in Optax, ``learning_rate=None`` puts :func:`identity` in the rate's place (no
    scaling and no sign flip, so the chain returns the ascent direction: pass a rate for
    descent), and the weight-decay member needs ``params`` even when ``weight_decay`` is
    zero. Reference: Zeiler (2012); ``optax.adadelta``.
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        identity() if learning_rate is None else scale_by_learning_rate(learning_rate),
    )
