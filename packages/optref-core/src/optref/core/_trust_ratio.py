"""Layer-wise trust ratios (LARS, LAMB): each leaf's step scaled to its params' norm."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._adam import scale_by_adam
from ._alias import alias
from ._block_norm import ScaleByPerLeafFactor
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._mask_tree import broadcast_mask
from ._momentum import trace
from ._numerics import safe_div, safe_l2_norm
from ._scale import scale_by_learning_rate
from ._weight_decay import add_decayed_weights

__all__ = ["ScaleByTrustRatio", "lamb", "lars", "scale_by_trust_ratio"]

#: A mask: a tree of bools (or a prefix of one), a function of the params, or ``None``.
MaskOrFn = Any


class ScaleByTrustRatio(ScaleByPerLeafFactor):
    """Multiply each leaf by ``trust_coefficient * ‖p‖ / (‖u‖ + eps)`` (1 if a norm is 0).

    ``mask`` (optref's addition, for :func:`lars`'s ``trust_ratio_mask``): leaves where it
    is ``False`` pass through unscaled, as under Optax's ``masked``.
    """

    min_norm: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    trust_coefficient: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    mask: MaskOrFn = None
    scalar_hyperparameters = ("min_norm", "trust_coefficient", "eps")

    def __check_init__(self) -> None:
        check_range(self, "min_norm", self.min_norm, 0.0)
        check_range(self, "trust_coefficient", self.trust_coefficient, 0.0)
        check_range(self, "eps", self.eps, 0.0)

    def _factor(self, update: Array, param: Array) -> Array:
        param_norm = safe_l2_norm(param, self.min_norm)
        update_norm = safe_l2_norm(update, self.min_norm)
        dtype = jnp.result_type(param_norm, update_norm, self.trust_coefficient)
        param_norm, update_norm = param_norm.astype(dtype), update_norm.astype(dtype)
        ratio = safe_div(
            self.trust_coefficient.astype(dtype) * param_norm,
            update_norm + self.eps.astype(dtype),
        )
        # A zero norm (a block never updated, or params at zero) keeps the step as it is.
        zero_norm = (param_norm == 0) | (update_norm == 0)
        return jnp.where(zero_norm, jnp.ones_like(ratio), ratio)

    def constants(self, updates: PyTree) -> tuple[PyTree, ...]:
        if self.mask is None:
            return ()
        return (broadcast_mask(self.mask, updates, where="lars", argument="trust_ratio_mask"),)

    def leaf(self, update: Array, param: Array, *constants: Any) -> Array:
        scaled = super().leaf(update, param)
        if not constants:
            return scaled
        (mask,) = constants
        if isinstance(mask, bool):
            return scaled if mask else update
        return jnp.where(mask, scaled, update)


def scale_by_trust_ratio(
    min_norm: float | Array = 0.0,
    trust_coefficient: float | Array = 1.0,
    eps: float | Array = 0.0,
) -> ScaleByTrustRatio:
    """Scale each leaf (layer) of the updates by its trust ratio.

    $$u_\\ell \\mapsto u_\\ell \\cdot \\begin{cases}
    \\dfrac{c\\,\\max(\\lVert p_\\ell \\rVert, n_{\\min})}{\\max(\\lVert u_\\ell \\rVert, n_{\\min})
    + \\varepsilon} & \\text{both norms} > 0 \\\\ 1 & \\text{otherwise} \\end{cases}$$

    The norms are over all elements of the leaf, in at least float32 and free of overflow
    and underflow (:func:`~optref.core.safe_l2_norm`: huge float16 or bfloat16 updates do
    not turn the ratio into zero, nor tiny ones into one). The division never sees a zero
    denominator, so gradients through the ratio are finite where a norm is zero (Optax
    divides first and selects after, which gives NaN gradients there). Note that the
    ratio is 1 at zero params (zero-initialised biases) and tends to 0 next to them: the
    map jumps there, by definition. Reference: You et
    al., *Large Batch Training of Convolutional Networks* (2017); Optax:
    ``optax.scale_by_trust_ratio``.
    """
    return ScaleByTrustRatio(min_norm, trust_coefficient, eps)


@alias
def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-6,
    eps_root: float | Array = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
) -> Chain:
    """The LAMB optimizer: Adam's step plus weight decay, scaled by the trust ratio.

    $$r_t = \\frac{\\hat m_t}{\\sqrt{\\hat v_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon}
    + \\lambda\\,p_{t-1}, \\qquad
    p_t = p_{t-1} - \\eta_t\\,\\frac{\\lVert p_{t-1} \\rVert}{\\lVert r_t \\rVert}\\,r_t
    \\quad\\text{(per leaf)}$$

    Composed as Optax composes it: :func:`~optref.core.scale_by_adam`,
    :func:`~optref.core.add_decayed_weights` (with ``mask``), :func:`scale_by_trust_ratio`,
    the learning rate. Reference: You et al., *Large Batch Optimization for Deep Learning:
    Training BERT in 76 minutes* (2020); ``optax.lamb``.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


@alias
def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: MaskOrFn = True,
    trust_coefficient: float | Array = 0.001,
    eps: float | Array = 0.0,
    trust_ratio_mask: MaskOrFn = True,
    momentum: float | Array = 0.9,
    nesterov: bool = False,
) -> Chain:
    """The LARS optimizer: weight decay, the trust ratio, the learning rate, then momentum.

    $$d_t = g_t + \\lambda\\,p_{t-1}, \\qquad
    m_t = \\mu\\,m_{t-1} - \\eta_t\\,\\frac{c\\,\\lVert p_{t-1} \\rVert}{\\lVert d_t \\rVert
    + \\varepsilon}\\,d_t \\quad\\text{(per leaf)}, \\qquad p_t = p_{t-1} + m_t$$

    (Nesterov momentum with ``nesterov=True``). ``weight_decay_mask`` selects the params
    that decay and ``trust_ratio_mask`` those whose step is scaled by the trust ratio
    (booleans, trees of booleans or functions of the params). Composed as in Optax, except
    that the masked trust ratio is :class:`ScaleByTrustRatio` with a ``mask`` rather than a
    ``masked`` wrapper (core does not depend on optref-masking); its state is empty either
    way, so the state's leaves are Optax's. Reference: You et al., *Large Batch Training
    of Convolutional Networks* (2017); ``optax.lars``.
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        ScaleByTrustRatio(trust_coefficient=trust_coefficient, eps=eps, mask=trust_ratio_mask),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov),
    )
