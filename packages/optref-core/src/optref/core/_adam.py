"""Adam and its variants: the scaling by bias-corrected first and second moments."""

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
    debiased_momentum,
    momentum_corrections,
    moving_average,
    safe_increment,
)
from ._scale import scale_by_learning_rate
from ._tree import tree_zeros_like
from ._typecheck import typechecker
from ._weight_decay import add_decayed_weights

__all__ = [
    "ScaleByAdam",
    "ScaleByAdamState",
    "adam",
    "adamw",
    "nadam",
    "nadamw",
    "scale_by_adam",
]


@jaxtyped(typechecker=typechecker)
class ScaleByAdamState(eqx.Module):
    """Adam's step count and first (``mu``) and second (``nu``) moment estimates."""

    count: Int[Array, ""]
    mu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like(follows_dtype=False)  # pyright: ignore[reportUndefinedVariable]
    nu: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


def check_moment_ranges(transformation: Any) -> None:
    """Check the hyperparameters that every Adam-family transformation shares.

    $$\\beta_1, \\beta_2 \\in [0, 1), \\qquad \\varepsilon, \\varepsilon_{\\mathrm{root}} \\ge 0$$

    ``transformation`` has the fields ``b1``, ``b2``, ``eps`` and ``eps_root``; a value out
    of range raises an error naming the transformation and the argument. Reference: Kingma
    & Ba, *Adam: A Method for Stochastic Optimization* (2015).
    """
    check_range(transformation, "b1", transformation.b1, 0.0, 1.0, high_inclusive=False)
    check_range(transformation, "b2", transformation.b2, 0.0, 1.0, high_inclusive=False)
    check_range(transformation, "eps", transformation.eps, 0.0)
    check_range(transformation, "eps_root", transformation.eps_root, 0.0)


class ScaleByAdam(LeafwiseTransformation):
    """Scale by Adam's bias-corrected moments: ``m̂ / (sqrt(v̂ + eps_root) + eps)``.

    Built by :func:`scale_by_adam`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=0.999, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    eps_root: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    mu_dtype: Any = eqx.field(static=True, default=None)
    nesterov: bool = eqx.field(static=True, default=False)
    scalar_hyperparameters = ("b1", "b2", "eps", "eps_root")

    def __check_init__(self) -> None:
        check_moment_ranges(self)

    def init(self, params: PyTree) -> ScaleByAdamState:
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=tree_zeros_like(params, dtype=self.mu_dtype),
            nu=tree_zeros_like(params),
        )

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleByAdamState, params)
        count = safe_increment(state.count)
        b1, b2, eps, eps_root, nesterov = self.b1, self.b2, self.eps, self.eps_root, self.nesterov
        # The corrections are scalars computed once, without cancellation, in the
        # hyperparameters' dtype; the elementwise step is done in the compute dtype.
        correction_nu = bias_correction_factor(b2, count)
        corrections_mu = momentum_corrections(b1, count, nesterov)

        def leaf(g: Array, p: Any, moments: tuple[Array, Array], constants: tuple) -> Any:
            m, v = moments
            work = compute_dtype(jnp.result_type(g.dtype, m.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            m_new = moving_average(m.astype(work), g_w, b1)
            v_new = moving_average(jnp.real(v.astype(work)), abs_sq(g_w), b2)
            # The step is taken from the moments before they are rounded to the state's
            # dtype: a float16 second moment (1 - b2) g^2 is subnormal for |g| < 0.25.
            m_hat = debiased_momentum(m_new, g_w, b1, corrections_mu)
            step = adaptive_ratio(m_hat, v_new / correction_nu.astype(real), eps, eps_root)
            return step.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        return LeafwiseStep(
            leaf,
            lambda new: ScaleByAdamState(count=count, mu=new[0], nu=new[1]),
            moments=(state.mu, state.nu),
        )


def scale_by_adam(
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> ScaleByAdam:
    """Rescale updates by Adam's bias-corrected moment estimates.

    $$\\begin{aligned}
    m_t &= \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\qquad
    v_t = \\beta_2 v_{t-1} + (1-\\beta_2) |g_t|^2, \\\\
    \\hat m_t &= \\frac{m_t}{1-\\beta_1^t}, \\qquad
    \\hat v_t = \\frac{v_t}{1-\\beta_2^t}, \\qquad
    u_t = \\frac{\\hat m_t}{\\sqrt{\\hat v_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon}.
    \\end{aligned}$$

    With ``nesterov=True`` (NAdam), $\\hat m_t = \\beta_1 m_t / (1-\\beta_1^{t+1}) +
    (1-\\beta_1) g_t / (1-\\beta_1^t)$.

    The bias corrections $1-\\beta^t$ are computed without cancellation
    (:func:`~optref.core.bias_correction_factor`). float16 and bfloat16 moments are combined in
    float32, and the step is taken from the new moments before they are rounded to the
    state's dtype: a float16 second moment $(1-\\beta_2) g^2$ is subnormal for
    $|g| < 0.25$, and a step from the rounded one is off by 33 float16 epsilons on the
    audit's MLP at step 0 (0.2 from the unrounded one). A zero gradient gives a zero
    update, not 0/0.

    **Differentiating through the update.** The root is
    :func:`~optref.core.safe_sqrt`, whose derivative at $\\hat v = 0$ is zero: there the
    gradient coordinate has been zero at every step so far and $d\\hat v = 0$ too, so the
    derivative is exact, where ``jnp.sqrt`` would give $0 \\cdot \\infty = $ NaN (as
    Optax's Adam does with ``eps_root = 0``). ``eps_root > 0`` (for example ``1e-8``,
    meta-learning, MAML) also moves the root away from zero, as in Optax.

    ``mu_dtype`` stores the first moment in another dtype (``None``: the params').
    References: Kingma & Ba, *Adam: A Method for Stochastic Optimization* (2015); Dozat,
    *Incorporating Nesterov Momentum into Adam* (2016). Optax: ``optax.scale_by_adam``.
    """
    return ScaleByAdam(b1, b2, eps, eps_root, mu_dtype, nesterov)


@alias
def adam(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> Chain:
    """The Adam optimizer: :func:`scale_by_adam` then :func:`scale_by_learning_rate`.

    $$p_{t} = p_{t-1} - \\eta_t\\,\\frac{\\hat m_t}
    {\\sqrt{\\hat v_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon}$$

    See :func:`scale_by_adam` for the moments and for ``eps_root``. Reference: Kingma &
    Ba (2015); ``optax.adam``.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


@alias
def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> Chain:
    """NAdam: :func:`adam` with Nesterov momentum (``nesterov=True``, the default here).

    $$p_{t} = p_{t-1} - \\eta_t\\,\\frac{\\beta_1 \\hat m_{t+1} + (1-\\beta_1)\\,g_t /
    (1-\\beta_1^t)}{\\sqrt{\\hat v_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon},
    \\qquad \\hat m_{t+1} = \\frac{m_t}{1-\\beta_1^{t+1}}$$

    Reference: Dozat, *Incorporating Nesterov Momentum into Adam* (2016); ``optax.nadam``.
    """
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)


@alias
def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
) -> Chain:
    """AdamW: Adam with decoupled weight decay.

    $$p_{t} = p_{t-1} - \\eta_t\\Big(\\frac{\\hat m_t}{\\sqrt{\\hat v_t +
    \\varepsilon_{\\mathrm{root}}} + \\varepsilon} + \\lambda\\,p_{t-1}\\Big)$$

    ``mask`` selects the params that decay (see :func:`add_decayed_weights`).
    Reference: Loshchilov & Hutter, *Decoupled Weight Decay Regularization* (2019);
    ``optax.adamw``.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@alias
def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
) -> Chain:
    """NAdamW: :func:`adamw` with Nesterov momentum (``nesterov=True``, the default here).

    $$p_{t} = p_{t-1} - \\eta_t\\Big(\\frac{\\beta_1 \\hat m_{t+1} + (1-\\beta_1)\\,g_t /
    (1-\\beta_1^t)}{\\sqrt{\\hat v_t + \\varepsilon_{\\mathrm{root}}} + \\varepsilon}
    + \\lambda\\,p_{t-1}\\Big), \\qquad \\hat m_{t+1} = \\frac{m_t}{1-\\beta_1^{t+1}}$$

    References: Dozat (2016); Loshchilov & Hutter, *Decoupled Weight Decay
    Regularization* (2019); ``optax.nadamw``.
    """
    return adamw(
        learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=nesterov
    )
