"""Differentiable, low-precision-safe scalar and elementwise numerics.

Every function here is safe to differentiate: where a branch is not taken, its
argument is replaced by a harmless value *before* the dangerous operation (the
"double-where" pattern), so no NaN reaches the gradient through the untaken branch.

The square root, the division and the norm take their derivatives from that form and
compute their values in a shorter one (:func:`differentiated_as`): the double-where's first
select changes no value, only the derivative, and every select costs a step's compile
time on each leaf. Values and derivatives are the double-where form's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

__all__ = [
    "abs_sq",
    "accumulator_ratio",
    "adaptive_ratio",
    "bias_correction_factor",
    "compute_dtype",
    "debiased_momentum",
    "momentum_corrections",
    "moving_average",
    "safe_div",
    "safe_increment",
    "safe_int32_increment",
    "safe_l2_norm",
    "safe_norm",
    "safe_rms",
    "safe_root_mean_squares",
    "safe_sqrt",
]

F = TypeVar("F", bound=Callable[..., Array])


def compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """The dtype in which optref does elementwise arithmetic for leaves of ``dtype``.

    Low-precision floats (float16, bfloat16 and their complex counterparts) are
    promoted to at least float32 for the arithmetic, and the result is cast back to the
    leaf's dtype. float32 and float64 are used as they are.

    $$\\operatorname{compute\\_dtype}(d) = \\operatorname{promote}(d, \\mathrm{float32})$$
    """
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return dtype
    return jnp.promote_types(dtype, jnp.float32)


def scalar_dtype(value: ArrayLike) -> jnp.dtype:
    """The dtype in which optref computes with a scalar hyperparameter: its own floating
    dtype, at least float32 (a weakly typed float64 stays float64)."""
    dtype = jnp.asarray(value).dtype
    if not jnp.issubdtype(dtype, jnp.inexact):
        return jnp.dtype(jnp.float32)
    return compute_dtype(dtype)


def differentiated_as(reference: Callable[..., Array]) -> Callable[[F], F]:
    """Give a function ``reference``'s derivatives: its value is its own body's.

    $$\\frac{\\partial f}{\\partial x} := \\frac{\\partial\\,\\mathrm{reference}}{\\partial x},
    \\qquad f(x) = \\mathrm{body}(x) = \\mathrm{reference}(x)$$

    An internal helper of optref's elementwise numerics (not exported). The decorated body
    must compute the same values as ``reference``, with fewer operations: one ``select``
    where ``reference`` needs the double-where pattern's two or more, whose first only
    keeps NaN out of the derivative of the branch not taken. Under :func:`jax.jvp`,
    :func:`jax.grad` and their compositions, the value and the derivatives are
    ``reference``'s, to the bit (a :func:`jax.custom_jvp` whose rule is the ``jvp`` of
    ``reference``); elsewhere the step compiles to the shorter program. Every use has a test
    that compares the two, values and derivatives, on random bit patterns
    (``tests/test_safe_numerics.py``).
    """

    def decorate(value: F) -> F:
        function = jax.custom_jvp(value)
        function.defjvp(lambda primals, tangents: jax.jvp(reference, primals, tangents))
        return cast(F, function)

    return decorate


def _safe_div_reference(numerator: Array, denominator: Array, fallback: ArrayLike) -> Array:
    is_zero = denominator == 0
    safe_denominator = jnp.where(is_zero, jnp.ones_like(denominator), denominator)
    return jnp.where(is_zero, fallback, numerator / safe_denominator)


@differentiated_as(_safe_div_reference)
def _safe_div(numerator: Array, denominator: Array, fallback: ArrayLike) -> Array:
    return jnp.where(denominator == 0, fallback, numerator / denominator)


def safe_div(numerator: ArrayLike, denominator: ArrayLike, fallback: ArrayLike = 0.0) -> Array:
    """``numerator / denominator`` where the denominator is nonzero, else ``fallback``.

    $$\\operatorname{safe\\_div}(a, b) = \\begin{cases} a / b & b \\ne 0 \\\\
    \\text{fallback} & b = 0 \\end{cases}$$

    The derivatives are taken as if the division were done on a denominator in which zeros
    are replaced by ones, so the gradient through the untaken branch is zero rather than
    NaN; the value itself is computed with a single ``select``.
    """
    return _safe_div(jnp.asarray(numerator), jnp.asarray(denominator), fallback)


def _safe_sqrt_reference(x: Array) -> Array:
    positive = x > 0
    safe_x = jnp.where(positive, x, jnp.ones_like(x))
    return jnp.where(positive, jnp.sqrt(safe_x), jnp.where(jnp.isnan(x), x, jnp.zeros_like(x)))


@differentiated_as(_safe_sqrt_reference)
def _safe_sqrt(x: Array) -> Array:
    # A NaN fails ``x <= 0`` and keeps its root, NaN; -0 gives +0, as the reference does.
    # The root goes through a select, as in the reference: XLA rewrites ``a / sqrt(b)``
    # as ``a * rsqrt(b)``, which XLA:CPU rounds less closely than the two operations.
    return jnp.where(x <= 0, jnp.zeros_like(x), jnp.sqrt(x))


def safe_sqrt(x: ArrayLike) -> Array:
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient at zero.

    $$\\operatorname{safe\\_sqrt}(x) = \\sqrt{\\max(x, 0)}, \\qquad
    \\frac{d}{dx}\\operatorname{safe\\_sqrt}(0) := 0$$

    The derivative of the square root is infinite at zero; here it is defined as zero
    there (the subgradient that keeps a norm differentiable at the origin). A NaN stays
    NaN, so that a NaN gradient is not turned into a silent zero step. The value is one
    ``select`` of the root; the derivatives are those of the double-where form, which
    takes the root of 1 wherever ``x <= 0``.
    """
    return _safe_sqrt(jnp.asarray(x))


def _norm(x: Array, ord: int | str | None, axis: int | tuple[int, ...] | None) -> Array:
    """``jnp.linalg.norm`` of the flattened ``x`` (``axis=None``) or along ``axis``, with
    the reduced axes kept."""
    if axis is None:
        return jnp.linalg.norm(x.ravel(), ord=ord).reshape((1,) * x.ndim)
    return jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)


def _safe_norm_reference(
    x: Array, min_norm: ArrayLike, ord: int | str | None, axis: int | tuple[int, ...] | None
) -> Array:
    above = _norm(x, ord, axis) > min_norm
    safe_x = jnp.where(above, x, jnp.ones_like(x))
    return jnp.where(above, _norm(safe_x, ord, axis), min_norm)


def safe_norm(
    x: ArrayLike,
    min_norm: ArrayLike = 0.0,
    ord: int | str | None = None,
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
) -> Array:
    """``max(‖x‖, min_norm)`` with a gradient that is zero, not NaN, where ``‖x‖ <= min_norm``.

    $$\\operatorname{safe\\_norm}(x) = \\max(\\lVert x \\rVert, m)$$

    Without ``axis``, the norm is that of the flattened array, with ``ord`` as in
    :func:`jax.numpy.linalg.norm` for a vector. With ``axis`` (an int, or two for a
    matrix norm), it is :func:`jax.numpy.linalg.norm` along it, one norm per slice, and
    ``keepdims`` keeps the reduced axes with length one. The value takes one norm of
    ``x``; the derivatives are those of the double-where form, which takes a second norm,
    of ones, where the first is at most ``min_norm``. Reference: ``optax.safe_norm``.
    """

    @differentiated_as(lambda x, min_norm: _safe_norm_reference(x, min_norm, ord, axis))
    def value(x: Array, min_norm: ArrayLike) -> Array:
        norm = _norm(x, ord, axis)
        return jnp.where(norm > min_norm, norm, min_norm)

    x = jnp.asarray(x)
    norm = value(x, min_norm)
    if keepdims:
        return norm
    if axis is None:
        return norm.reshape(())
    return jnp.squeeze(norm, axis=axis)


def _expm1(y: Array) -> Array:
    """``exp(y) - 1`` by Kahan's formula ``(u - 1) y / log(u)`` with ``u = exp(y)``.

    The rounding errors of ``u - 1`` and ``log(u)`` cancel in the ratio; for
    ``y`` in ``[-ln 2, 0)`` this is within 2.2 ulp in float32 and 2 ulp in float64, where
    XLA's ``expm1`` is off by up to 4 and 3 ulp. Where ``u`` rounds to one, ``y`` is the
    answer. Higham, *Accuracy and Stability of Numerical Algorithms* (2002), §1.14.1.
    """
    u = jnp.exp(y)
    rounds_to_one = u == 1
    log_u = jnp.log(jnp.where(rounds_to_one, 2.0, u))
    return jnp.where(rounds_to_one, y, (u - 1) * y / log_u)


def bias_correction_factor(decay: ArrayLike, count: ArrayLike) -> Array:
    """Adam's bias-correction factor ``1 - decay**count``, accurate for every decay in [0, 1].

    $$1 - \\beta^t = \\begin{cases}
    -\\operatorname{expm1}(y) & y > -\\ln 2 \\\\
    1 - \\exp(y) & y \\le -\\ln 2
    \\end{cases}, \\qquad
    y = t\\ln\\beta = \\begin{cases}
    t\\operatorname{log1p}(\\beta - 1) & \\beta \\ge 3/4 \\\\
    t\\ln\\beta & \\beta < 3/4
    \\end{cases}$$

    Subtracting ``decay**count`` from one loses every significant digit when the power
    is close to one (``decay`` close to one and ``count`` small, the first steps of
    Adam with ``b2 = 0.999`` in float32 or bfloat16); ``expm1`` keeps them (computed by
    Kahan's formula, more accurate than XLA's). Where the power is at most one half the
    subtraction is exact to rounding and ``1 - exp`` is used instead. The logarithm is
    ``log1p(decay - 1)`` (``decay - 1`` is exact for ``decay >= 1/2``) only for
    ``decay >= 3/4``: XLA's float64 ``log1p`` is off by up to 128 ulp on arguments in
    ``[-0.5, -0.25]``, where the plain logarithm is exact to rounding. Against rational
    arithmetic, over decays in [0, 1) and counts 0 to 1000, the error is at most 2.1 ulp
    in float64 and 2.6 ulp in float32. At ``count = 1`` the result is ``1 - decay`` as
    rounded in the decay's dtype, the weight that :func:`moving_average` gives the first
    value, so that a debiased first moment is exactly the first gradient. A zero decay
    gives ``1`` for ``count >= 1``, with a finite gradient.

    Kingma & Ba, *Adam: A Method for Stochastic Optimization* (2015), Algorithm 1.
    The result is in the floating dtype of ``decay`` (at least float32).
    """
    decay = jnp.asarray(decay)
    decay = decay.astype(scalar_dtype(decay))
    dtype = decay.dtype
    t = jnp.asarray(count).astype(dtype)
    near_one = decay >= 0.75
    positive = decay > 0
    # Double-where: each logarithm sees a harmless argument where its branch is not taken.
    log_decay = jnp.where(
        near_one,
        jnp.log1p(jnp.where(near_one, decay, 1.0) - 1),
        jnp.log(jnp.where(near_one | ~positive, 0.5, decay)),
    )
    y = t * log_decay
    small_power = y <= -jnp.log(jnp.asarray(2.0, dtype))
    correction = jnp.where(small_power, 1 - jnp.exp(y), -_expm1(y))
    # At the first step the correction is the complement 1 - decay that a moving average's
    # first step weighs the value by, so the two cancel exactly: m_1 / (1 - b) = g_1.
    correction = jnp.where(t == 1, 1 - decay, correction)
    correction = jnp.where(positive, correction, jnp.where(t > 0, 1.0, 0.0).astype(dtype))
    # Read by every leaf's kernel: computed once per step, not copied into each of them.
    return computed_once(correction)


def computed_once(x: ArrayLike) -> Array:
    """``x`` itself, as a value that XLA computes once rather than in every kernel that
    reads it.

    $$x \\mapsto x / 1$$

    XLA:CPU copies a cheap scalar computation (additions, comparisons, selects) into each
    kernel that reads its result; a scalar that every leaf reads (a sum over the leaves, a
    schedule's value) is then compiled once per leaf. Dividing by a one known only at run
    time ends the computation in a division, which XLA does not copy. The division by one
    is exact for every value, infinities, NaN and signed zeros included, and its
    derivative is one. A bool (an "all finite" over the leaves) goes through the same
    division as a float32 zero or one and is compared back. Complex and integer ``x`` are
    returned as they are. Reference: XLA's instruction fusion, which duplicates producers
    that are not expensive into each of their consumers (``xla/service/instruction_fusion.cc``).
    """
    x = jnp.asarray(x)
    if x.dtype == jnp.bool_:
        return computed_once(x.astype(jnp.float32)) != 0
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return x
    one = ((x == x) | (x != x)).astype(x.dtype)
    return x / one


def safe_increment(count: ArrayLike) -> Array:
    """``count + 1``, saturating at the largest value of ``count``'s integer dtype.

    A step counter in int32 would wrap to a negative number after 2³¹ - 1 steps; this
    stops at the maximum instead, as Optax's counters do.
    """
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        maximum = jnp.iinfo(count.dtype).max
        return jnp.where(count < maximum, count + 1, count)
    return count + 1


def momentum_corrections(
    b1: ArrayLike, count: ArrayLike, nesterov: bool = False
) -> tuple[Array, Array | None]:
    """The scalar bias corrections of Adam's first moment, computed once per step.

    $$c_t = 1-\\beta_1^t, \\qquad c_{t+1} = 1-\\beta_1^{t+1}\\ \\text{(Nesterov only)}$$

    Both are :func:`bias_correction_factor` values for ``count`` $= t$ (the incremented step
    count); the second is ``None`` without Nesterov momentum. They are computed outside
    the per-leaf step, so a tree of many leaves traces them once. Reference: Kingma & Ba
    (2015); Dozat, *Incorporating Nesterov Momentum into Adam* (2016).
    """
    correction = bias_correction_factor(b1, count)
    if not nesterov:
        return correction, None
    return correction, bias_correction_factor(b1, safe_increment(count))


def debiased_momentum(
    mu: Array, g: Array, b1: ArrayLike, corrections: tuple[Array, Array | None]
) -> Array:
    """Adam's bias-corrected first moment, or its Nesterov (NAdam) look-ahead form.

    $$\\hat m_t = \\frac{m_t}{1-\\beta_1^t} \\quad\\text{or, with Nesterov,}\\quad
    \\hat m_t = \\beta_1\\frac{m_t}{1-\\beta_1^{t+1}} + (1-\\beta_1)\\frac{g_t}{1-\\beta_1^t}$$

    ``mu`` and ``g`` are arrays already in the compute dtype; ``corrections`` are the
    scalars of :func:`momentum_corrections` (Nesterov's form where the second is not
    ``None``), cast to ``mu``'s dtype for the division. References: Kingma & Ba (2015);
    Dozat, *Incorporating Nesterov Momentum into Adam* (2016).
    """
    dtype = mu.dtype
    correction, correction_next = corrections
    if correction_next is None:
        return mu / correction.astype(dtype)
    return moving_average(
        mu / correction_next.astype(dtype), g.astype(dtype) / correction.astype(dtype), b1
    )


def moving_average(average: Array, value: Array, decay: ArrayLike) -> Array:
    """One step of an exponential moving average, elementwise.

    $$\\bar x \\mapsto \\beta\\,\\bar x + (1-\\beta)\\,x$$

    ``average`` and ``value`` are arrays in the compute dtype (real or complex). The
    complement $1-\\beta$ is formed in the hyperparameter's own dtype
    (:func:`scalar_dtype`) before both scalars are rounded to the arrays' real dtype:
    ``1 - float32(0.999)`` would keep only four significant digits.
    """
    decay = jnp.asarray(decay)
    decay = decay.astype(scalar_dtype(decay))
    real = jnp.finfo(jnp.result_type(average, value)).dtype
    return (1 - decay).astype(real) * value + decay.astype(real) * average


def adaptive_ratio(
    numerator: Array, second_moment: Array, eps: ArrayLike, eps_root: ArrayLike = 0.0
) -> Array:
    """The adaptive step of the Adam family: a moment over the root of a second moment.

    $$r = \\frac{m}{\\sqrt{v + \\varepsilon_{\\mathrm{root}}} + \\varepsilon}$$

    Computed in ``numerator``'s dtype. The root is :func:`safe_sqrt`, whose derivative at
    zero is zero: for moving averages of squares, $v = 0$ only where every gradient so far
    was zero, and there $dv = 0$ too, so this is the correct derivative rather than the
    ``0 * inf = NaN`` of :func:`jax.numpy.sqrt`. The division is :func:`safe_div`, which
    gives zero where the denominator is zero
    ($v = \\varepsilon = \\varepsilon_{\\mathrm{root}} = 0$, where $m$ is zero too) instead
    of ``0/0``.
    """
    dtype = jnp.real(second_moment).dtype
    v = jnp.real(second_moment) + jnp.asarray(eps_root).astype(dtype)
    denominator = safe_sqrt(v) + jnp.asarray(eps).astype(dtype)
    return safe_div(numerator, denominator.astype(numerator.dtype))


def _accumulator_ratio_reference(numerator: Array, accumulator: Array, eps: Array) -> Array:
    empty = accumulator <= 0  # false for NaN, whose root is NaN
    root = safe_sqrt(jnp.where(empty, jnp.ones_like(accumulator), accumulator + eps))
    return jnp.where(empty, numerator * 0, numerator / root)


@differentiated_as(_accumulator_ratio_reference)
def _accumulator_ratio(numerator: Array, accumulator: Array, eps: Array) -> Array:
    # Where the accumulator is empty the divisor is infinite: numerator / inf is the
    # reference's numerator * 0 for every numerator (a signed zero, NaN for inf and NaN).
    # The root reaches the division through the select, so XLA does not rewrite the two
    # into a less accurate rsqrt (see safe_sqrt).
    divisor = jnp.where(accumulator <= 0, jnp.inf, jnp.sqrt(accumulator + eps))
    return numerator / divisor


def accumulator_ratio(numerator: Array, accumulator: Array, eps: ArrayLike) -> Array:
    """The adaptive step of Adagrad and SM3: a gradient over the root of an accumulator of
    squares, zero where nothing has accumulated.

    $$r = \\begin{cases} g / \\sqrt{s + \\varepsilon} & s > 0 \\\\
    0 \\cdot g & s \\le 0 \\end{cases}$$

    ``numerator`` and ``accumulator`` are arrays in the compute dtype, the accumulator real
    and nonnegative; ``eps`` is rounded to the accumulator's dtype. Where $s = 0$ (every
    gradient so far zero, and no initial value) the step is zero, rather than the
    ``0 / sqrt(eps)`` that is also zero but whose derivative in $s$ is not defined when
    $\\varepsilon = 0$. A NaN or infinite gradient makes the step NaN, as in Optax. A NaN
    gradient leaves a NaN accumulator, which keeps that element's later steps NaN rather
    than silently zero (Optax's later steps are zero). Computed in one ``select``; the
    derivatives are those of the double-where form, which takes the root of 1 where
    $s \\le 0$. Reference: Duchi, Hazan & Singer (2011), *Adaptive Subgradient Methods
    for Online Learning and Stochastic Optimization*; Anil, Gupta, Koren & Singer (2019),
    *Memory-Efficient Adaptive Optimization*.
    """
    accumulator = jnp.asarray(accumulator)
    return _accumulator_ratio(
        jnp.asarray(numerator), accumulator, jnp.asarray(eps).astype(accumulator.dtype)
    )


def _power_of_two_near(largest: Array) -> tuple[Array, Array]:
    """``(2**e, 2**-e)`` with ``e`` the exponent :func:`jax.numpy.frexp` gives ``largest``.

    ``largest`` is a non-negative float32 or float64 scalar; ``e`` is taken as 1 where it
    is zero, infinite or NaN, and is clipped to three quarters of the dtype's exponent
    range, so that both powers are normal numbers. Read from and written to the IEEE 754
    bits directly: for a normal ``largest`` its biased exponent field minus ``bias - 1``
    is frexp's exponent, and a subnormal one (field zero, frexp's exponent at most
    ``1 - bias``) is clipped to the same bound either way. The same values as ``frexp``
    and ``ldexp``, in a third of the operations: this is compiled once for every leaf of
    every block-norm transformation.
    """
    info = jnp.finfo(largest.dtype)
    bits = jnp.dtype(f"int{info.bits}")
    bias = info.maxexp - 1
    usable = (largest > 0) & jnp.isfinite(largest)
    field = jax.lax.bitcast_convert_type(largest, bits) >> info.nmant
    limit = info.maxexp * 3 // 4
    exponent = jnp.clip(jnp.where(usable, field - (bias - 1), 1), -limit, limit)

    def power(e: Array) -> Array:
        return jax.lax.bitcast_convert_type((e + bias).astype(bits) << info.nmant, largest.dtype)

    return power(exponent), power(-exponent)


def _scaled_sum_of_squares(x: Array) -> tuple[Array, Array]:
    """``(s, Σ|x_i / s|²)`` with ``s`` a power of two near ``max |x|``.

    ``x`` is already in the compute dtype. Scaling by a power of two is exact, so the sum
    of the scaled squares is the sum of the squares scaled exactly, unless that sum would
    overflow or underflow, which the scaling prevents (a LAPACK ``nrm2``-style guard).
    The exponent is kept within three quarters of the dtype's range, so that ``s`` and
    ``1/s`` are both normal numbers (a subnormal ``1/s`` would be flushed to zero). ``s``
    carries no gradient: the norm is homogeneous in ``x``, so its derivative does not
    depend on ``s``.
    """
    magnitude = jnp.abs(x)
    if x.size:
        largest = jax.lax.stop_gradient(jnp.max(magnitude))
    else:
        largest = jnp.zeros([], magnitude.dtype)
    scale, inverse = _power_of_two_near(largest)
    return scale, jnp.sum(_squares(x * inverse.astype(x.dtype)))


def _squares(x: Array) -> Array:
    """``|x|**2`` elementwise, squared by ``integer_pow``: its derivative, ``2 x``, is one
    rounding, where that of ``x * x`` is a sum of two products that XLA may or may not
    contract into a fused multiply-add."""
    return jnp.real(x) ** 2 + jnp.imag(x) ** 2 if jnp.iscomplexobj(x) else x**2


# Leaves with at least this many elements try the unscaled sum of squares first.
_PLAIN_SUM_MIN_SIZE = 2**16


@jax.custom_batching.custom_vmap
def _in_every_row(flag: Array) -> Array:
    """``flag`` itself; under :func:`jax.vmap`, whether it holds in every row of the
    batch, as one unbatched bool."""
    return flag


@_in_every_row.def_vmap
def _in_every_row_batched(
    axis_size: int, in_batched: list[bool], flag: Array
) -> tuple[Array, bool]:
    del axis_size
    return (jnp.all(flag) if in_batched[0] else flag), False


def _sum_of_squares(x: ArrayLike) -> tuple[Array, Array]:
    """``(s, Σ|x_i / s|²)``, in the compute dtype, free of overflow and underflow.

    $$\\sum_i |x_i|^2 = s^2 \\sum_i |x_i / s|^2$$

    The scaled sum (``_scaled_sum_of_squares``) takes two passes over ``x``: its largest
    magnitude, then the scaled squares. On the CPU, leaves of at least 65,536 elements
    take the unscaled sum first, in one pass (``_unscaled_sum_first``), and are scaled
    only where it overflowed or underflowed. Smaller leaves, and leaves on other
    platforms, are always scaled: on the CPU the conditional costs more, to compile and
    to run, than the pass it saves on small leaves (``docs/examples/norm_passes.py``
    measures both); XLA:GPU reads a conditional's predicate back to the host, a
    synchronisation per leaf and step (XLA's ``ConditionalThunk``), where a pass over a
    leaf takes microseconds.
    """
    x = jnp.asarray(x)
    x = x.astype(compute_dtype(x.dtype))
    if x.size < _PLAIN_SUM_MIN_SIZE:
        return _scaled_sum_of_squares(x)
    return jax.lax.platform_dependent(x, cpu=_unscaled_sum_first, default=_scaled_sum_of_squares)


def _unscaled_sum_first(x: Array) -> tuple[Array, Array]:
    """``(1, Σ|x_i|²)`` where that sum is finite and at least $n\\,\\mathrm{tiny}/\\varepsilon$,
    else the scaled sum, under :func:`jax.lax.cond`.

    A finite sum of non-negative terms overflowed nowhere, and what the subnormal squares
    of an $n$-element sum can lose, at most $n\\,\\mathrm{tiny}\\,\\varepsilon$, is then
    below $\\varepsilon^2$ of it. Where no square, scaled or not, is subnormal, the two
    sums are the same bits: scaling by a power of two is exact. Under :func:`jax.vmap`
    the rows of a batch take one branch together, the scaled one where any row needs it
    (``_in_every_row``): a conditional whose predicate differs between rows would be
    computed as a select of both branches, three passes.
    """
    plain = jnp.sum(_squares(x))
    info = jnp.finfo(plain.dtype)
    floor = x.size * float(info.tiny) / float(info.eps)
    usable = _in_every_row(jnp.isfinite(plain) & (plain >= floor))
    return jax.lax.cond(
        usable, lambda x: (jnp.ones([], plain.dtype), plain), _scaled_sum_of_squares, x
    )


def safe_l2_norm(x: ArrayLike, min_norm: ArrayLike = 0.0) -> Array:
    """``max(‖x‖₂, min_norm)`` over all elements, free of overflow, underflow and NaN gradients.

    $$\\operatorname{safe\\_l2\\_norm}(x) = \\max\\Big(\\Big(\\sum_i |x_i|^2\\Big)^{1/2}, m\\Big)$$

    Computed in :func:`compute_dtype` of ``x`` (float32 for float16 and bfloat16). Where
    the squares of huge or tiny elements would overflow or flush to zero, they are scaled
    by a power of two first; where they would not, the result is bit-identical to the
    unscaled norm, which on the CPU leaves of at least 65,536 elements compute in one
    pass over them. The gradient is zero where the norm is at most ``min_norm`` (or
    zero), never NaN. Real for complex ``x``. The Optax counterpart is
    ``optax.safe_norm``.
    """
    scale, total = _sum_of_squares(x)
    norm = scale * safe_sqrt(total)
    min_norm = jnp.asarray(min_norm).astype(norm.dtype)
    return jnp.where(norm > min_norm, norm, min_norm)


def safe_rms(x: ArrayLike, min_rms: ArrayLike = 0.0) -> Array:
    """``max(rms(x), min_rms)``: the root mean square of the elements, safely.

    $$\\operatorname{safe\\_rms}(x) =
    \\max\\Big(\\Big(\\frac{1}{n}\\sum_i |x_i|^2\\Big)^{1/2}, m\\Big)$$

    Overflow- and underflow-free, differentiable and computed as :func:`safe_l2_norm`.
    The Optax counterpart is ``optax.safe_root_mean_squares``.
    """
    scale, total = _sum_of_squares(x)
    rms = scale * safe_sqrt(total / jnp.asarray(max(jnp.size(x), 1), total.dtype))
    min_rms = jnp.asarray(min_rms).astype(rms.dtype)
    return jnp.where(rms > min_rms, rms, min_rms)


def abs_sq(x: ArrayLike) -> Array:
    """The squared modulus ``|x|**2`` elementwise, real for complex ``x``.

    $$|x|^2 = \\operatorname{Re}(x)^2 + \\operatorname{Im}(x)^2$$

    For real ``x`` this is ``x * x``. Computed in ``x``'s dtype (cast to the compute
    dtype first where that matters). The Optax counterpart is ``optax.abs_sq``.
    """
    x = jnp.asarray(x)
    if jnp.iscomplexobj(x):
        return jnp.real(x) ** 2 + jnp.imag(x) ** 2
    return x * x


#: Optax's name for :func:`safe_rms` (``optax.safe_root_mean_squares``).
safe_root_mean_squares = safe_rms
#: Optax's name for :func:`safe_increment` (``optax.safe_int32_increment``), which
#: saturates at the largest value of any integer dtype, int32's included.
safe_int32_increment = safe_increment
