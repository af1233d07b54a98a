"""AdaBelief: Adam with the variance of the gradient around its moving average."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Inexact, Int, PyTree, jaxtyped

from ._adam import check_moment_ranges
from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import (
    abs_sq,
    adaptive_ratio,
    bias_correction_factor,
    compute_dtype,
    debiased_momentum,
    momentum_corrections,
    moving_average,
    safe_increment,
)
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["ScaleByBelief", "ScaleByBeliefState", "adabelief", "scale_by_belief"]


@jaxtyped(typechecker=typechecker)
class ScaleByBeliefState(eqx.Module):
    """The step count, the first moment ``mu`` and the second central moment ``nu``."""

    count: Int[Array, ""]
    mu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    nu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


class ScaleByBelief(LeafwiseTransformation):
    """Scale by the first moment over the root of the "belief" ``EMA((g - m)^2) + eps_root``.

    Built by :func:`scale_by_belief`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.999, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-16, converter=as_scalar_hyperparameter)
    eps_root: Array = eqx.field(default=1e-16, converter=as_scalar_hyperparameter)
    nesterov: bool = eqx.field(static=True, default=False)
    scalar_hyperparameters = ("b1", "b2", "eps", "eps_root")

    def __check_init__(self) -> None:
        check_moment_ranges(self)

    def init(self, params: PyTree) -> ScaleByBeliefState:
        return ScaleByBeliefState(
            count=jnp.zeros([], jnp.int32), mu=tree_zeros_like(params), nu=tree_zeros_like(params)
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByBeliefState, params)
        count = safe_increment(state.count)
        b1, b2, eps, eps_root = self.b1, self.b2, self.eps, self.eps_root
        correction_nu = bias_correction_factor(b2, count)
        corrections_mu = momentum_corrections(b1, count, self.nesterov)

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            m, s = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            m_new = moving_average(m.astype(work), g_w, b1)
            surprise = abs_sq(g_w - m_new)
            s_new = moving_average(jnp.real(s.astype(work)), surprise, b2) + eps_root.astype(real)
            m_hat = debiased_momentum(m_new, g_w, b1, corrections_mu)
            step = adaptive_ratio(m_hat, s_new / correction_nu.astype(real), eps)
            return step.astype(g.dtype), (m_new.astype(m.dtype), s_new.astype(s.dtype))

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByBeliefState(count=count, mu=new[0], nu=new[1]),
            moments=(state.mu, state.nu),
        )


def scale_by_belief(
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-16,
    eps_root: float | Array = 1e-16,
    *,
    nesterov: bool = False,
) -> ScaleByBelief:
    """Rescale updates by AdaBelief: the step shrinks where the gradient is "surprising".

    $$\\begin{aligned}
    m_t &= \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\qquad
    s_t = \\beta_2 s_{t-1} + (1-\\beta_2) |g_t - m_t|^2 + \\varepsilon_{\\mathrm{root}}, \\\\
    \\text{update}_t &= \\frac{\\hat m_t}{\\sqrt{\\hat s_t} + \\varepsilon}, \\qquad
    \\hat m_t = \\frac{m_t}{1-\\beta_1^t}, \\quad \\hat s_t = \\frac{s_t}{1-\\beta_2^t}.
    \\end{aligned}$$

    ``eps_root`` is added to the stored $s_t$ at every step, as in the paper's Algorithm 2
    and in Optax. With ``nesterov=True`` the first moment is NAdam's look-ahead (see
    :func:`optref.core.scale_by_adam`). The moments are combined in float32 for float16
    and bfloat16 leaves, so the default ``eps = 1e-16``, which float16 cannot hold, still
    keeps the denominator positive. Reference: Zhuang et al., *AdaBelief Optimizer:
    Adapting Stepsizes by the Belief in Observed Gradients* (2020); Optax:
    ``optax.scale_by_belief``.
    """
    return ScaleByBelief(b1, b2, eps, eps_root, nesterov)


@alias
def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-16,
    eps_root: float | Array = 1e-16,
    *,
    nesterov: bool = False,
) -> Chain:
    """The AdaBelief optimizer: :func:`scale_by_belief`, then the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\,\\frac{\\hat m_t}{\\sqrt{\\hat s_t} + \\varepsilon}$$

    Reference: Zhuang et al. (2020); ``optax.adabelief``.
    """
    return chain(
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )
