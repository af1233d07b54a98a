"""AdaMax: Adam with the infinity norm in place of the second moment."""

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
    compute_dtype,
    debiased_momentum,
    momentum_corrections,
    moving_average,
    safe_div,
    safe_increment,
)
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like
from ._weight_decay import add_decayed_weights

__all__ = ["ScaleByAdamax", "adamax", "adamaxw", "scale_by_adamax"]


class ScaleByAdamax(LeafwiseTransformation):
    """Scale by the bias-corrected first moment over an exponentially weighted max of ``|g|``.

    Built by :func:`scale_by_adamax`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.999, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("b1", "b2", "eps")

    def __check_init__(self) -> None:
        check_range(self, "b1", self.b1, 0.0, 1.0, high_inclusive=False)
        check_range(self, "b2", self.b2, 0.0, 1.0)
        check_range(self, "eps", self.eps, 0.0)

    def init(self, params: PyTree) -> ScaleByAdamState:
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=tree_zeros_like(params),
            nu=tree_zeros_like(params),
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByAdamState, params)
        count = safe_increment(state.count)
        b1, b2, eps = self.b1, self.b2, self.eps
        corrections_mu = momentum_corrections(b1, count)

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            m, u = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            m_new = moving_average(m.astype(work), g_w, b1)
            # The infinity "moment" is real; complex states hold it with a zero imaginary part.
            u_new = jnp.maximum(
                jnp.abs(g_w) + eps.astype(real), b2.astype(real) * jnp.real(u.astype(work))
            )
            step = safe_div(debiased_momentum(m_new, g_w, b1, corrections_mu), u_new.astype(work))
            return step.astype(g.dtype), (m_new.astype(m.dtype), u_new.astype(u.dtype))

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByAdamState(count=count, mu=new[0], nu=new[1]),
            moments=(state.mu, state.nu),
        )


def scale_by_adamax(
    b1: float | Array = 0.9, b2: float | Array = 0.999, eps: float | Array = 1e-8
) -> ScaleByAdamax:
    """Rescale updates by AdaMax's exponentially weighted infinity norm.

    $$\\begin{aligned}
    m_t &= \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\qquad
    u_t = \\max\\big(\\beta_2 u_{t-1},\\ |g_t| + \\varepsilon\\big), \\\\
    \\text{update}_t &= \\frac{m_t}{(1-\\beta_1^t)\\,u_t}.
    \\end{aligned}$$

    The infinity norm needs no bias correction; $\\varepsilon$ is added to $|g_t|$ inside the
    maximum, as in Optax, so $u_t \\ge \\varepsilon$. With ``eps = 0`` and a coordinate whose
    gradients have all been zero, the update is zero rather than ``0/0``. The state is
    Adam's (``count``, ``mu``, ``nu``). Reference: Kingma & Ba, *Adam: A Method for
    Stochastic Optimization* (2015), Section 7.1; Optax: ``optax.scale_by_adamax``.
    """
    return ScaleByAdamax(b1, b2, eps)


@alias
def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
) -> Chain:
    """The AdaMax optimizer: :func:`scale_by_adamax`, then the learning rate.

    $$p_t = p_{t-1} - \\eta_t\\,\\frac{m_t}{(1-\\beta_1^t)\\,u_t}$$

    Reference: Kingma & Ba (2015), Algorithm 2; ``optax.adamax``.
    """
    return chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


@alias
def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
) -> Chain:
    """AdaMax with decoupled weight decay.

    $$p_t = p_{t-1} - \\eta_t\\Big(\\frac{m_t}{(1-\\beta_1^t)\\,u_t} + \\lambda\\,p_{t-1}\\Big)$$

    ``mask`` selects the params that decay (see :func:`add_decayed_weights`). References:
    Kingma & Ba (2015); Loshchilov & Hutter, *Decoupled Weight Decay Regularization*
    (2019); ``optax.adamaxw``.
    """
    return chain(
        scale_by_adamax(b1, b2, eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
