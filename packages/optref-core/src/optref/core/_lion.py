"""Lion: the sign of an interpolation between the gradient and its momentum."""

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
from ._numerics import compute_dtype, moving_average, safe_increment
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like
from ._typecheck import typechecker
from ._weight_decay import add_decayed_weights

__all__ = ["LION_MODES", "ScaleByLion", "ScaleByLionState", "lion", "scale_by_lion"]

#: The ways to turn the interpolated momentum into a step: ``sign``, ``tanh`` or clipped.
LION_MODES = ("hard", "smooth", "refined")


@jaxtyped(typechecker=typechecker)
class ScaleByLionState(eqx.Module):
    """The step count and the momentum ``mu``."""

    count: Int[Array, ""]
    mu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]


class ScaleByLion(LeafwiseTransformation):
    """``sign((1 - b1) g + b1 m)`` (or a smooth variant), with ``m`` an EMA of rate ``b2``.

    Built by :func:`scale_by_lion`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.99, converter=as_scalar_hyperparameter)
    mu_dtype: Any = eqx.field(static=True, default=None)
    mode: str = eqx.field(static=True, default="hard")
    smooth_beta: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("b1", "b2", "smooth_beta")

    def __check_init__(self) -> None:
        check_range(self, "b1", self.b1, 0.0, 1.0)
        check_range(self, "b2", self.b2, 0.0, 1.0)
        check_range(self, "smooth_beta", self.smooth_beta, 0.0, low_inclusive=False)
        if self.mode not in LION_MODES:
            raise ValueError(
                f"scale_by_lion: mode must be one of {list(LION_MODES)}, got {self.mode!r}."
            )

    def init(self, params: PyTree) -> ScaleByLionState:
        return ScaleByLionState(
            count=jnp.zeros([], jnp.int32), mu=tree_zeros_like(params, dtype=self.mu_dtype)
        )

    def _direction(self, x: Array) -> Array:
        if self.mode == "smooth":
            return jnp.tanh(self.smooth_beta.astype(x.dtype) * x)
        if self.mode == "refined":
            return jnp.where(jnp.abs(x) < 1, x, jnp.sign(x))
        return jnp.sign(x)

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByLionState)
        b1, b2 = self.b1, self.b2
        count = safe_increment(state.count)

        def leaf(g: Array, p: Any, moments: tuple[Array], constants: tuple) -> Any:
            m = moments[0]
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            g_w, m_w = g.astype(work), m.astype(work)
            step = self._direction(moving_average(m_w, g_w, b1))
            m_new = moving_average(m_w, g_w, b2)
            return step.astype(g.dtype), (m_new.astype(m.dtype),)

        return LeafwiseStep(
            leaf, lambda new: ScaleByLionState(count=count, mu=new[0]), moments=(state.mu,)
        )


def scale_by_lion(
    b1: float | Array = 0.9,
    b2: float | Array = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: float | Array = 1.0,
) -> ScaleByLion:
    """Rescale updates by Lion: the sign of an interpolated momentum.

    $$\\begin{aligned}
    c_t &= \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\qquad
    \\text{update}_t = \\phi(c_t), \\\\
    m_t &= \\beta_2 m_{t-1} + (1-\\beta_2) g_t,
    \\end{aligned}$$

    with $\\phi = \\operatorname{sign}$ (``mode="hard"``, the paper's), $\\phi(c) =
    \\tanh(\\beta_s c)$ (``"smooth"``, $\\beta_s$ = ``smooth_beta``) or $\\phi(c) = c$ for
    $|c| < 1$ and $\\operatorname{sign}(c)$ otherwise (``"refined"``). For complex
    gradients $\\operatorname{sign}(c) = c / |c|$. The update uses the previous momentum,
    which is then updated. ``mu_dtype`` stores the momentum in another dtype. Reference:
    Chen et al., *Symbolic Discovery of Optimization Algorithms* (2023); Optax:
    ``optax.scale_by_lion``.
    """
    return ScaleByLion(b1, b2, mu_dtype, mode, smooth_beta)


@alias
def lion(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> Chain:
    """The Lion optimizer: :func:`scale_by_lion`, decoupled weight decay, the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\big(\\operatorname{sign}(\\beta_1 m_{t-1} + (1-\\beta_1) g_t)
    + \\lambda\\,p_{t-1}\\big)$$

    Reference: Chen et al. (2023); ``optax.lion``.
    """
    return chain(
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
