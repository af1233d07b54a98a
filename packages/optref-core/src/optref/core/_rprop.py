"""Rprop: per-parameter step sizes adapted by the sign agreement of successive gradients."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree, jaxtyped

from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import as_scalar_hyperparameter, check_range, is_concrete
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import compute_dtype
from ._scale import scale
from ._tree import tree_full_like, tree_zeros_like
from ._tree_check import check_real
from ._typecheck import typechecker

__all__ = ["ScaleByRprop", "ScaleByRpropState", "rprop", "scale_by_rprop"]


@jaxtyped(typechecker=typechecker)
class ScaleByRpropState(eqx.Module):
    """The current step size of each parameter and the last step taken."""

    step_sizes: PyTree[Float[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    prev_updates: PyTree[Float[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


class ScaleByRprop(LeafwiseTransformation):
    """iRprop⁻: grow the step where the sign holds, shrink it and skip where it flips.

    Built by :func:`scale_by_rprop`, whose docstring gives the math and the references.
    """

    learning_rate: Array = eqx.field(converter=as_scalar_hyperparameter)
    eta_minus: Array = eqx.field(default=0.5, converter=as_scalar_hyperparameter)
    eta_plus: Array = eqx.field(default=1.2, converter=as_scalar_hyperparameter)
    min_step_size: Array = eqx.field(default=1e-6, converter=as_scalar_hyperparameter)
    max_step_size: Array = eqx.field(default=50.0, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = (
        "learning_rate",
        "eta_minus",
        "eta_plus",
        "min_step_size",
        "max_step_size",
    )

    def __check_init__(self) -> None:
        check_range(self, "learning_rate", self.learning_rate, 0.0, low_inclusive=False)
        check_range(self, "eta_minus", self.eta_minus, 0.0, 1.0, low_inclusive=False)
        check_range(self, "eta_plus", self.eta_plus, 1.0)
        check_range(self, "min_step_size", self.min_step_size, 0.0)
        concrete = is_concrete(self.min_step_size)
        low = float(np.max(np.asarray(self.min_step_size))) if concrete else 0.0
        check_range(self, "max_step_size", self.max_step_size, low)

    def init(self, params: PyTree) -> ScaleByRpropState:
        check_real(params, where="scale_by_rprop")
        return ScaleByRpropState(
            tree_full_like(params, self.learning_rate), tree_zeros_like(params)
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByRpropState, params)
        check_real(updates, where="scale_by_rprop", tree_name="updates")
        hp = self

        def leaf(
            g: Array, p: Any, moments: tuple[Array, Array], constants: tuple
        ) -> tuple[Array, tuple[Array, Array]]:
            size, previous = moments
            work = compute_dtype(jnp.result_type(g.dtype, size.dtype))
            g_w = g.astype(work)
            # The product of the signs, not of the values: the product of two tiny
            # values can underflow to zero and hide a sign change.
            agreement = jnp.sign(g_w) * jnp.sign(previous.astype(work))
            factor = jnp.where(agreement > 0, hp.eta_plus.astype(work), hp.eta_minus.astype(work))
            grown = jnp.clip(
                size.astype(work) * factor,
                hp.min_step_size.astype(work),
                hp.max_step_size.astype(work),
            )
            new_size = jnp.where(agreement == 0, size.astype(work), grown)
            new_step = jnp.where(agreement < 0, jnp.zeros_like(g_w), new_size * jnp.sign(g_w))
            return new_step.astype(g.dtype), (
                new_size.astype(size.dtype),
                new_step.astype(previous.dtype),
            )

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByRpropState(*new),
            moments=(state.step_sizes, state.prev_updates),
        )


def scale_by_rprop(
    learning_rate: float | Array,
    eta_minus: float | Array = 0.5,
    eta_plus: float | Array = 1.2,
    min_step_size: float | Array = 1e-6,
    max_step_size: float | Array = 50.0,
) -> ScaleByRprop:
    """Scale by Rprop's sign-adapted step sizes (iRprop⁻).

    With $s_t = \\operatorname{sign}(g_t)\\operatorname{sign}(u_{t-1})$, $u_0 = 0$,
    $\\Delta_0$ = ``learning_rate``:

    $$\\Delta_t = \\begin{cases} \\min(\\eta^+\\Delta_{t-1}, \\Delta_{\\max}) & s_t > 0 \\\\
    \\max(\\eta^-\\Delta_{t-1}, \\Delta_{\\min}) & s_t < 0 \\\\ \\Delta_{t-1} & s_t = 0
    \\end{cases}, \\qquad u_t = \\begin{cases} 0 & s_t < 0 \\\\
    \\Delta_t \\operatorname{sign}(g_t) & \\text{otherwise} \\end{cases}$$

    (the update is the ascent step; :func:`rprop` negates it). The state is Optax's:
    ``step_sizes`` $\\Delta_t$ and ``prev_updates`` $u_t$.

    **Difference from Optax.** Optax 0.2.8 computes $u_t$ and stores it, but returns the
    previous step $u_{t-1}$ (zeroed where the sign flips): its updates lag one step
    behind and the first is all zeros (optax pull request #1725). optref returns $u_t$,
    as Riedmiller & Braun and PyTorch do; the states are the same. The sign agreement is
    taken from the signs, so the product of two tiny values cannot underflow to zero.
    Real params only.

    References: Riedmiller & Braun, *A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm* (1993); Igel & Hüsken, *Empirical evaluation of the
    improved Rprop learning algorithms* (2003). Optax: ``optax.scale_by_rprop``.
    """
    return ScaleByRprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size)


@alias
def rprop(
    learning_rate: float | Array,
    eta_minus: float | Array = 0.5,
    eta_plus: float | Array = 1.2,
    min_step_size: float | Array = 1e-6,
    max_step_size: float | Array = 50.0,
) -> Chain:
    """The Rprop optimizer: :func:`scale_by_rprop`, then ``scale(-1)``.

    $$p_t = p_{t-1} - u_t$$

    See :func:`scale_by_rprop` for $u_t$ and for the difference from Optax. Reference:
    Riedmiller & Braun (1993); ``optax.rprop``.
    """
    return chain(
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
        scale(-1.0),
    )
