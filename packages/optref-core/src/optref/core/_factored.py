"""Adafactor: scaling by a factored (row and column) estimate of the squared gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Inexact, Int, PyTree, jaxtyped

from ._alias import alias
from ._base import GradientTransformation, check_state
from ._block_clipping import clip_by_block_rms
from ._block_norm import scale_by_param_block_rms
from ._chain import Chain, chain
from ._ema import ema
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import (
    abs_sq,
    compute_dtype,
    differentiated_as,
    safe_div,
    safe_increment,
    safe_sqrt,
)
from ._scale import scale, scale_by_learning_rate
from ._tree import tree_map_unzip, tree_zeros_like, zeros_reduced_like
from ._typecheck import typechecker
from ._weight_decay import add_decayed_weights

__all__ = [
    "FactoredState",
    "ScaleByFactoredRms",
    "adafactor",
    "decay_rate_pow",
    "scale_by_factored_rms",
]


def decay_rate_pow(step: ArrayLike, exponent: ArrayLike = 0.8) -> Array:
    """Adafactor's second-moment decay schedule, $\\hat\\beta_{2,t} = 1 - (t+1)^{-c}$.

    $$\\hat\\beta_{2}(t) = 1 - (t + 1)^{-c}, \\qquad t = 0, 1, \\ldots$$

    So the first step uses the squared gradient alone, and the average lengthens as
    $t^{c}$. Computed in the dtype of ``exponent`` (at least float32: float64 when it is
    float64). Optax's default computes it in float32 whatever the hyperparameters' dtype,
    which perturbs float64 runs at the 1e-8 level. Reference: Shazeer & Stern (2018),
    section 7.1.
    """
    exponent = jnp.asarray(exponent)
    dtype = compute_dtype(jnp.result_type(exponent.dtype, jnp.float32))
    t = jnp.asarray(step).astype(dtype) + 1
    return 1 - t ** (-exponent.astype(dtype))


def _factored_dims(
    shape: tuple[int, ...], factored: bool, min_dim_size_to_factor: int
) -> tuple[int, int] | None:
    """The (second largest, largest) axes to factor over, or ``None`` to keep a full moment.

    Ties are broken as :func:`numpy.argsort` breaks them, as in Optax, so both libraries
    factor the same axes.
    """
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _rsqrt_or_zero_reference(x: Array) -> Array:
    usable = (x > 0) & jnp.isfinite(x)
    return jnp.where(usable, 1 / safe_sqrt(jnp.where(usable, x, 1)), 0)


@differentiated_as(_rsqrt_or_zero_reference)
def _rsqrt_or_zero(x: Array) -> Array:
    """``x**-0.5``, and zero where ``x`` is zero, infinite or NaN (a step of zero).

    The value is one over the root, or over infinity where ``x`` is not positive: the
    root of ``+inf`` is infinite too, so one select gives all the zeros. The derivatives
    are those of the double-where form.
    """
    return 1 / jnp.where(x > 0, jnp.sqrt(x), jnp.full_like(x, jnp.inf))


@jaxtyped(typechecker=typechecker)
class FactoredState(eqx.Module):
    """The step count and the second-moment statistics.

    For a factored parameter, ``v_row`` and ``v_col`` are its moving averages of squared
    gradients averaged over the largest and the second largest axis, and ``v`` is a
    placeholder of shape ``(1,)``; for any other parameter, ``v`` is the full moving
    average and ``v_row``, ``v_col`` are the placeholders. The layout is Optax's.
    """

    count: Int[Array, ""]
    v_row: PyTree[Inexact[Array, "..."], " P"]  # pyright: ignore[reportUndefinedVariable]
    v_col: PyTree[Inexact[Array, "..."], " P"]  # pyright: ignore[reportUndefinedVariable]
    v: PyTree[Inexact[Array, "..."], " P"]  # pyright: ignore[reportUndefinedVariable]


class ScaleByFactoredRms(LeafwiseTransformation):
    """Adafactor's scaling by a factored second moment.

    Built by :func:`scale_by_factored_rms`, whose docstring gives the math and the references.
    """

    factored: bool = eqx.field(static=True, default=True)
    decay_rate: Array = eqx.field(default=0.8, converter=as_scalar_hyperparameter)
    step_offset: Any = 0
    min_dim_size_to_factor: int = eqx.field(static=True, default=128)
    epsilon: Array = eqx.field(default=1e-30, converter=as_scalar_hyperparameter)
    decay_rate_fn: Callable[[Array, Array], ArrayLike] = decay_rate_pow
    scalar_hyperparameters = ("decay_rate", "epsilon")

    def __check_init__(self) -> None:
        check_range(self, "decay_rate", self.decay_rate, 0.0)
        check_range(self, "epsilon", self.epsilon, 0.0)
        if not isinstance(self.min_dim_size_to_factor, int | np.integer):
            raise TypeError(
                "scale_by_factored_rms: min_dim_size_to_factor must be an int, got "
                f"{self.min_dim_size_to_factor!r}."
            )
        if not callable(self.decay_rate_fn):
            raise TypeError(
                "scale_by_factored_rms: decay_rate_fn must be a callable (step, decay_rate) "
                f"-> value, got {self.decay_rate_fn!r}."
            )

    def init(self, params: PyTree) -> FactoredState:
        def leaf(p: Array) -> tuple[Array, Array, Array]:
            placeholder = jnp.zeros((1,), p.dtype)
            dims = _factored_dims(p.shape, self.factored, self.min_dim_size_to_factor)
            if dims is None:
                return placeholder, placeholder, tree_zeros_like(p)
            second, first = dims
            # Reductions of p: each factor is laid out as p is along the axes it keeps.
            return zeros_reduced_like(p, (first,)), zeros_reduced_like(p, (second,)), placeholder

        v_row, v_col, v = tree_map_unzip(leaf, 3, params)
        return FactoredState(jnp.zeros([], jnp.int32), v_row, v_col, v)

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, FactoredState, params)
        decay = jnp.asarray(
            self.decay_rate_fn(state.count - jnp.asarray(self.step_offset), self.decay_rate)
        )
        eps = self.epsilon

        def leaf(
            g: Array, p: Any, moments: tuple[Array, Array, Array], constants: tuple
        ) -> tuple[Array, tuple[Array, Array, Array]]:
            v_row, v_col, v = moments
            work = compute_dtype(jnp.result_type(g.dtype, v.dtype))
            real = jnp.finfo(work).dtype
            g_w = g.astype(work)
            d = decay.astype(real)
            squares = abs_sq(g_w) + eps.astype(real)
            placeholder = jnp.zeros((1,), v.dtype)
            dims = _factored_dims(g.shape, self.factored, self.min_dim_size_to_factor)
            if dims is None:
                new_v = d * jnp.real(v.astype(work)) + (1 - d) * squares
                scaled = g_w * _rsqrt_or_zero(new_v)
                return scaled.astype(g.dtype), (placeholder, placeholder, new_v.astype(v.dtype))
            second, first = dims
            new_row = d * jnp.real(v_row.astype(work)) + (1 - d) * jnp.mean(squares, axis=first)
            new_col = d * jnp.real(v_col.astype(work)) + (1 - d) * jnp.mean(squares, axis=second)
            # The row statistics are normalised by their mean, so the outer product
            # row x col / mean(row) estimates the full second moment.
            reduced = second - 1 if second > first else second
            row_mean = jnp.mean(new_row, axis=reduced, keepdims=True)
            row_factor = _rsqrt_or_zero(safe_div(new_row, row_mean))
            col_factor = _rsqrt_or_zero(new_col)
            scaled = (
                g_w
                * jnp.expand_dims(row_factor, axis=first)
                * jnp.expand_dims(col_factor, axis=second)
            )
            new_moments = (new_row.astype(v_row.dtype), new_col.astype(v_col.dtype), placeholder)
            return scaled.astype(g.dtype), new_moments

        count = safe_increment(state.count)
        return LeafwiseStep(
            leaf,
            lambda new: FactoredState(count, *new),
            moments=(state.v_row, state.v_col, state.v),
        )


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: float | Array = 0.8,
    step_offset: int | Array = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: float | Array = 1e-30,
    decay_rate_fn: Callable[[Array, Array], ArrayLike] = decay_rate_pow,
) -> ScaleByFactoredRms:
    """Scale by a factored estimate of the root mean square of the gradients (Adafactor).

    With $\\hat\\beta_t$ = ``decay_rate_fn(t - step_offset, decay_rate)`` and
    $G_t = |g_t|^2 + \\varepsilon_1$: for a parameter whose two largest axes both have at
    least ``min_dim_size_to_factor`` elements (a matrix $n \\times m$, say, rows along the
    first of them),

    $$\\begin{aligned}
    R_t &= \\hat\\beta_t R_{t-1} + (1-\\hat\\beta_t)\\,G_t \\mathbf{1}_m / m, \\qquad
    C_t = \\hat\\beta_t C_{t-1} + (1-\\hat\\beta_t)\\,\\mathbf{1}_n^\\top G_t / n, \\\\
    u_t &= g_t \\,/\\, \\sqrt{\\frac{R_t C_t}{\\operatorname{mean}(R_t)}};
    \\end{aligned}$$

    for any other parameter, $V_t = \\hat\\beta_t V_{t-1} + (1-\\hat\\beta_t) G_t$ and
    $u_t = g_t / \\sqrt{V_t}$. The memory is $O(n + m)$ instead of $O(nm)$.

    Computed in at least float32 and stored in the params' dtype; the update is taken
    from the statistics before they are rounded to that dtype, so ``epsilon = 1e-30``
    keeps a zero gradient from giving 0/0 in float16. A statistic that is zero or has
    overflowed gives a zero step. The default ``decay_rate_fn`` (:func:`decay_rate_pow`)
    computes in the hyperparameters' dtype, where Optax's computes in float32.

    Reference: Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory
    Cost* (2018). Optax: ``optax.scale_by_factored_rms``.
    """
    return ScaleByFactoredRms(
        factored, decay_rate, step_offset, min_dim_size_to_factor, epsilon, decay_rate_fn
    )


@alias
def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: float | Array = 0.8,
    decay_offset: int | Array = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | Array | None = 1.0,
    momentum: float | Array | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: float | Array = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
) -> Chain:
    """The Adafactor optimizer, composed as in Optax.

    The chain is :func:`scale_by_factored_rms`; :func:`clip_by_block_rms` (unless
    ``clipping_threshold`` is ``None``); ``learning_rate`` (unless ``None``; without the
    sign flip); :func:`scale_by_param_block_rms` (if ``multiply_by_parameter_scale``);
    :func:`ema` without debiasing, stored in ``dtype_momentum`` (if ``momentum``);
    :func:`add_decayed_weights` (if ``weight_decay_rate``); and ``scale(-1)``:

    $$p_t = p_{t-1} - \\operatorname{decay}\\Big(\\operatorname{ema}\\big(\\eta_t
    \\max(\\operatorname{rms}(p_{t-1}), 10^{-3})\\,
    \\operatorname{clip}_{\\mathrm{rms}}(u_t)\\big)\\Big)$$

    with $u_t$ the factored scaling above. Reference: Shazeer & Stern (2018);
    ``optax.adafactor``.
    """
    members: list[GradientTransformation] = [
        scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)
    ]
    if clipping_threshold is not None:
        members.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        members.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        members.append(scale_by_param_block_rms())
    if momentum is not None:
        members.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        members.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
    members.append(scale(-1))
    return chain(*members)
