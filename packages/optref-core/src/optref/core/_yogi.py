"""Yogi: Adam with an additive, sign-controlled update of the second moment."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._adam import ScaleByAdamState
from ._alias import alias
from ._base import check_state
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
from ._tree import _decay_pair, tree_full_like

__all__ = ["ScaleByYogi", "scale_by_yogi", "yogi"]


class ScaleByYogi(LeafwiseTransformation):
    """Scale by Yogi's bias-corrected moments.

    Built by :func:`scale_by_yogi`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.999, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-3, converter=as_scalar_hyperparameter)
    eps_root: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    initial_accumulator_value: Array = eqx.field(default=1e-6, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("b1", "b2", "eps", "eps_root", "initial_accumulator_value")

    def __check_init__(self) -> None:
        check_range(self, "b1", self.b1, 0.0, 1.0, high_inclusive=False)
        check_range(self, "b2", self.b2, 0.0, 1.0, high_inclusive=False)
        check_range(self, "eps", self.eps, 0.0)
        check_range(self, "eps_root", self.eps_root, 0.0)
        check_range(self, "initial_accumulator_value", self.initial_accumulator_value, 0.0)

    def init(self, params: PyTree) -> ScaleByAdamState:
        value = self.initial_accumulator_value
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=tree_full_like(params, value),
            nu=tree_full_like(params, value),
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByAdamState, params)
        count = safe_increment(state.count)
        b1, b2, eps, eps_root = self.b1, self.b2, self.eps, self.eps_root
        correction_mu, correction_nu = (
            bias_correction_factor(b1, count),
            bias_correction_factor(b2, count),
        )
        _, complement2 = _decay_pair(b2)

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            m, v = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            m_new = moving_average(m.astype(work), g_w, b1)
            g2, v_w = abs_sq(g_w), jnp.real(v.astype(work))
            # v - (1 - b2) sign(v - g^2) g^2, by comparison: where v = g^2 = inf it stays
            # inf instead of becoming inf - inf or 0 * inf = NaN.
            step = complement2.astype(real) * g2
            v_new = jnp.where(v_w > g2, v_w - step, jnp.where(v_w < g2, v_w + step, v_w))
            m_hat = m_new / correction_mu.astype(work)
            step = adaptive_ratio(m_hat, v_new / correction_nu.astype(real), eps, eps_root)
            return step.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByAdamState(count=count, mu=new[0], nu=new[1]),
            moments=(state.mu, state.nu),
        )


def scale_by_yogi(
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-3,
    eps_root: float | Array = 0.0,
    initial_accumulator_value: float | Array = 1e-6,
) -> ScaleByYogi:
    """Rescale updates by Yogi's moments.

    $$\\begin{aligned}
    m_t &= \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\qquad
    v_t = v_{t-1} - (1-\\beta_2)\\,\\operatorname{sign}\\big(v_{t-1} - |g_t|^2\\big)\\,|g_t|^2, \\\\
    \\text{update}_t &= \\frac{\\hat m_t}{\\sqrt{\\hat v_t + \\varepsilon_{\\mathrm{root}}}
    + \\varepsilon}, \\qquad \\hat m_t = \\frac{m_t}{1-\\beta_1^t}, \\quad
    \\hat v_t = \\frac{v_t}{1-\\beta_2^t}.
    \\end{aligned}$$

    $v$ moves towards $|g|^2$ by an additive step, unlike Adam's multiplicative one, and
    stays positive from a positive start. Both moments start at
    ``initial_accumulator_value``, as in the authors' TensorFlow implementation and Optax.
    Complex gradients use $|g|^2$. Reference: Zaheer et al., *Adaptive Methods for
    Nonconvex Optimization* (NeurIPS 2018); Optax: ``optax.scale_by_yogi``.
    """
    return ScaleByYogi(b1, b2, eps, eps_root, initial_accumulator_value)


@alias
def yogi(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-3,
) -> Chain:
    """The Yogi optimizer: :func:`scale_by_yogi`, then the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\,\\frac{\\hat m_t}{\\sqrt{\\hat v_t} + \\varepsilon}$$

    Reference: Zaheer et al. (2018); ``optax.yogi``.
    """
    return chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))
