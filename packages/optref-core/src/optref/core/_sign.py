"""Sign descent: the elementwise sign of the gradient (signSGD) or of its momentum (Signum)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array

from ._alias import alias
from ._chain import Chain, chain
from ._ema import ema
from ._hyperparameters import ScalarOrSchedule
from ._leafwise import StatelessLeafwise
from ._scale import scale_by_learning_rate

__all__ = ["ScaleBySign", "scale_by_sign", "sign_sgd", "signum"]


class ScaleBySign(StatelessLeafwise):
    """Replace each element of the updates by its sign.

    Built by :func:`scale_by_sign`, whose docstring gives the math and the references.
    """

    def leaf(self, update: Array, param: Any, *constants: Any) -> Array:
        return jnp.sign(update)


def scale_by_sign() -> ScaleBySign:
    """The elementwise sign of the updates.

    $$u_i \\mapsto \\operatorname{sign}(u_i) \\in \\{-1, 0, 1\\}$$

    For complex updates $\\operatorname{sign}(u) = u / |u|$ (zero at zero). Exact in every
    dtype. Reference: Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex
    Problems* (2018); Optax: ``optax.scale_by_sign``.
    """
    return ScaleBySign()


@alias
def sign_sgd(learning_rate: ScalarOrSchedule) -> Chain:
    """signSGD: a step of the learning rate against the sign of each gradient element.

    $$p_t = p_{t-1} - \\eta_t\\,\\operatorname{sign}(g_t)$$

    Reference: Bernstein et al. (2018); ``optax.sign_sgd``.
    """
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


@alias
def signum(
    learning_rate: ScalarOrSchedule,
    beta: float | Array = 0.9,
    accumulator_dtype: Any = None,
) -> Chain:
    """Signum: sign descent on an exponential moving average of the gradients.

    $$m_t = \\beta\\,m_{t-1} + (1-\\beta)\\,g_t, \\qquad
    p_t = p_{t-1} - \\eta_t\\,\\operatorname{sign}(m_t)$$

    Composed as in Optax: :func:`~optref.core.ema` without debiasing (a positive factor
    does not change a sign), :func:`scale_by_sign`, the learning rate. Reference: Bernstein
    et al. (2018), Algorithm 3; ``optax.signum``.
    """
    return chain(
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )
