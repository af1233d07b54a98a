"""Tree arithmetic shared by every transformation.

Params, updates and state moments are arbitrary PyTrees; ``None`` leaves (the holes
that ``eqx.filter`` leaves in a model) are empty subtrees and pass through every
function here untouched.

Scalars (hyperparameters, bias corrections, norms) are computed in their own, wider
dtype and cast to each leaf's dtype at the last moment. Elementwise arithmetic on
float16 and bfloat16 leaves is done in float32 and the result cast back
(:func:`optref.core.compute_dtype`), so low-precision leaves lose no more than one
rounding per stored value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from ._numerics import bias_correction_factor, compute_dtype, computed_once, safe_sqrt, scalar_dtype

__all__ = [
    "bias_correction",
    "tree_add",
    "tree_add_scaled",
    "tree_bias_correction",
    "tree_cast",
    "tree_conj",
    "tree_full_like",
    "tree_l2_norm",
    "tree_map_compute",
    "tree_map_unzip",
    "tree_norm",
    "tree_ones_like",
    "tree_real",
    "tree_scale",
    "tree_sub",
    "tree_sum",
    "tree_update_moment",
    "tree_update_moment_per_elem_norm",
    "tree_vdot",
    "tree_where",
    "tree_zeros_like",
    "update_moment",
    "update_moment_per_elem_norm",
    "zeros_reduced_like",
]


def as_array(leaf: Any) -> Any:
    """A Python number leaf (``{'t': 1.0}``) or a NumPy one as the JAX array it computes as
    (:func:`jax.numpy.asarray`: a Python float weakly typed, a NumPy float64 float32 when
    64-bit mode is off); JAX arrays, tracers, ``None`` and booleans as they are. Optax's
    transformations take such leaves through ``jax.numpy``; optref's read their dtypes, so
    ``init`` and the leafwise pass convert them first."""
    if isinstance(leaf, int | float | complex) and not isinstance(leaf, bool):
        return jnp.asarray(leaf)
    if isinstance(leaf, np.ndarray | np.generic):
        return jnp.asarray(leaf)
    return leaf


def _leaves(tree: PyTree) -> list[Array]:
    return jax.tree.leaves(tree)


def tree_map_compute(fn: Callable[..., Array], tree: PyTree, *rest: PyTree) -> PyTree:
    """Map ``fn`` over leaves, computing in :func:`compute_dtype` of the first tree's leaf.

    Every argument leaf is cast to the compute dtype of the first tree's leaf, ``fn`` is
    applied, and the result is cast back to that leaf's dtype.
    """

    def leaf_fn(x: Array, *ys: Array) -> Array:
        dtype = jnp.asarray(x).dtype
        work = compute_dtype(dtype)
        out = fn(jnp.asarray(x).astype(work), *(jnp.asarray(y).astype(work) for y in ys))
        return out.astype(dtype)

    return jax.tree.map(leaf_fn, tree, *rest)


def _full_like_sharded(x: ArrayLike, fill_value: ArrayLike, dtype: Any) -> Array:
    """``fill_value`` in the shape of ``x``, computed from ``x`` so that it is laid out as
    ``x`` is.

    Under ``jax.jit``, ``jnp.full_like(x, v)`` is a constant that does not depend on ``x``,
    and the compiler places it on one device whatever the sharding of ``x`` (Optax's
    ``init`` puts its moments there). A select whose operand is ``x`` (never chosen, so
    NaN or infinite params give the fill value too) makes the sharding propagate from
    ``x`` to the result.
    """
    x = jnp.asarray(x)
    never = jnp.zeros(x.shape, dtype=bool)
    out_dtype = x.dtype if dtype is None else jnp.dtype(dtype)
    return jnp.where(never, x, jnp.asarray(fill_value, out_dtype)).astype(out_dtype)


def tree_zeros_like(tree: PyTree, dtype: Any = None) -> PyTree:
    """Zeros with the structure and shapes of ``tree`` (in ``dtype`` if given), laid out
    (sharded) as the leaves of ``tree`` are, also under ``jax.jit``."""
    return jax.tree.map(lambda x: _full_like_sharded(x, 0, dtype), tree)


def tree_ones_like(tree: PyTree, dtype: Any = None) -> PyTree:
    """Ones with the structure and shapes of ``tree`` (in ``dtype`` if given), laid out
    (sharded) as the leaves of ``tree`` are, also under ``jax.jit``."""
    return jax.tree.map(lambda x: _full_like_sharded(x, 1, dtype), tree)


def tree_full_like(tree: PyTree, fill_value: ArrayLike, dtype: Any = None) -> PyTree:
    """``fill_value`` with the structure and shapes of ``tree`` (in ``dtype`` if given),
    laid out (sharded) as the leaves of ``tree`` are, also under ``jax.jit``."""
    return jax.tree.map(lambda x: _full_like_sharded(x, fill_value, dtype), tree)


def zeros_reduced_like(x: ArrayLike, axes: tuple[int, ...], dtype: Any = None) -> Array:
    """Zeros in the shape of ``x`` with ``axes`` removed (in ``dtype`` if given), computed
    as a reduction of ``x`` so that, under ``jax.jit``, they are laid out as a reduction
    of ``x`` is: sharded as ``x`` along the axes they keep, replicated along the others.

    $$z = 0 \\in \\mathbb{R}^{\\operatorname{shape}(x) \\setminus \\text{axes}}$$

    The statistics of a factored or per-axis second moment (Adafactor's row and column
    factors, SM3's accumulators) are such reductions of the squared gradient.
    """
    return jnp.sum(_full_like_sharded(x, 0, dtype), axis=axes)


def tree_cast(tree: PyTree, dtype: Any) -> PyTree:
    """Cast every floating leaf of ``tree`` to ``dtype``; ``None`` keeps the leaves' dtypes."""
    if dtype is None:
        return tree
    return jax.tree.map(lambda x: jnp.asarray(x).astype(dtype), tree)


def tree_real(tree: PyTree) -> PyTree:
    """The real part of every leaf."""
    return jax.tree.map(jnp.real, tree)


def tree_conj(tree: PyTree) -> PyTree:
    """The complex conjugate of every leaf."""
    return jax.tree.map(jnp.conj, tree)


def tree_scale(scalar: ArrayLike, tree: PyTree) -> PyTree:
    """``scalar * tree``; the scalar is cast to each leaf's dtype.

    $$(c\\,x)_i = c\\,x_i$$
    """
    scalar = jnp.asarray(scalar)
    return jax.tree.map(lambda x: x * scalar.astype(x.dtype), tree)


def tree_add(tree_x: PyTree, tree_y: PyTree, *other_trees: PyTree) -> PyTree:
    """The sum of two or more trees of the same structure, leafwise.

    $$z_\\ell = ((x_\\ell + y_\\ell) + o^{1}_\\ell) + \\cdots$$

    Added from left to right, each term rounded to ``tree_x``'s dtypes first; the result
    has ``tree_x``'s dtypes. Reference: ``optax.tree_utils.tree_add``.
    """
    return jax.tree.map(
        lambda x, *rest: functools.reduce(lambda a, b: a + jnp.asarray(b).astype(x.dtype), rest, x),
        tree_x,
        tree_y,
        *other_trees,
    )


def tree_sub(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """The difference of two trees of the same structure, leafwise.

    $$z_\\ell = x_\\ell - y_\\ell$$

    ``tree_y`` is rounded to ``tree_x``'s dtypes first; the result has ``tree_x``'s dtypes.
    Reference: ``optax.tree_utils.tree_sub``.
    """
    return jax.tree.map(lambda x, y: x - jnp.asarray(y).astype(x.dtype), tree_x, tree_y)


def tree_add_scaled(a: PyTree, scalar: ArrayLike, b: PyTree) -> PyTree:
    """``a + scalar * b`` leafwise, computed in the compute dtype of ``a``'s leaves."""
    scalar = jnp.asarray(scalar)
    return tree_map_compute(lambda x, y: x + scalar.astype(x.dtype) * y, a, b)


def tree_where(condition: ArrayLike, tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """``tree_x`` where the scalar ``condition`` holds, else ``tree_y``, leafwise.

    $$z_\\ell = \\begin{cases} x_\\ell & c \\\\ y_\\ell & \\lnot c \\end{cases}$$

    Reference: ``optax.tree_utils.tree_where``.
    """
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


def _pairwise(partials: list[Array]) -> Array:
    """``(p_1 + p_2) + (p_3 + p_4) + ...``: adjacent pairs, level by level."""
    while len(partials) > 1:
        pairs = [a + b for a, b in zip(partials[::2], partials[1::2], strict=False)]
        partials = pairs + partials[len(pairs) * 2 :]
    return partials[0]


def _sum_over_leaves(partials: list[Array], pairwise: bool = False) -> Array:
    """``((p_1 + p_2) + p_3) + ...``, the per-leaf partial sums added in order, or, with
    ``pairwise``, in adjacent pairs level by level.

    The chain of additions grows with the number of leaves, and every leaf may read the
    result (a step size, a predicate), so it is passed through :func:`computed_once`; a
    single leaf's sum, which has no chain, is left as it is.
    """
    total = _pairwise(partials) if pairwise else sum(partials[1:], partials[0])
    return total if len(partials) == 1 else computed_once(total)


def tree_sum(tree: PyTree, associative_reduction: bool = False) -> Array:
    """The sum of every element of every leaf.

    $$\\sum_{\\ell} \\sum_i x_{\\ell,i}$$

    Each leaf is summed on its own (:func:`jax.numpy.sum`); the leaves' sums are added in
    the order of the leaves, or, with ``associative_reduction``, in adjacent pairs level by
    level (a tree of additions of depth $\\log_2 L$ instead of a chain of $L - 1$, whose
    rounding error grows with the depth). The two orders round differently. Reference:
    ``optax.tree_utils.tree_sum``.
    """
    leaves = _leaves(tree)
    if not leaves:
        return jnp.zeros([])
    return _sum_over_leaves([jnp.sum(x) for x in leaves], pairwise=associative_reduction)


def tree_vdot(tree_x: PyTree, tree_y: PyTree) -> Array:
    """The inner product over every element of every leaf, conjugating ``tree_x``.

    $$\\langle x, y \\rangle = \\sum_{\\ell} \\sum_i \\overline{x_{\\ell,i}}\\, y_{\\ell,i}$$

    Reference: ``optax.tree_utils.tree_vdot``.
    """
    products = jax.tree.map(lambda x, y: jnp.vdot(x, y), tree_x, tree_y)
    return tree_sum(products)


def _squared_norm_leaf(x: Array) -> Array:
    work = compute_dtype(x.dtype)
    x = x.astype(work)
    if jnp.iscomplexobj(x):
        return jnp.sum(jnp.real(x) ** 2 + jnp.imag(x) ** 2)
    return jnp.sum(x**2)


def tree_l2_norm(tree: PyTree, squared: bool = False) -> Array:
    """The Euclidean norm of all the elements of ``tree`` together.

    $$\\lVert x \\rVert_2 = \\Big(\\sum_{\\ell}\\sum_i |x_{\\ell,i}|^2\\Big)^{1/2}$$

    Computed in at least float32; real for complex leaves. ``squared=True`` returns the
    square without the root. The root is :func:`optref.core.safe_sqrt`, so the gradient
    at the zero tree is zero rather than NaN.
    """
    leaves = _leaves(tree)
    if not leaves:
        return jnp.zeros([])
    total = _sum_over_leaves([_squared_norm_leaf(x) for x in leaves])
    return total if squared else safe_sqrt(total)


def tree_norm(tree: PyTree, ord: int | str | float | None = None, squared: bool = False) -> Array:
    """The norm of all the elements of ``tree`` together, as one vector.

    $$\\lVert x \\rVert_1 = \\sum_{\\ell,i} |x_{\\ell,i}|, \\qquad
    \\lVert x \\rVert_2 = \\Big(\\sum_{\\ell,i} |x_{\\ell,i}|^2\\Big)^{1/2}, \\qquad
    \\lVert x \\rVert_\\infty = \\max_{\\ell,i} |x_{\\ell,i}|$$

    ``ord`` is 1, 2 (or ``None``, the default: 2, as in :func:`tree_l2_norm`) or
    ``inf``; ``squared`` returns the norm's square. Reference:
    ``optax.tree_utils.tree_norm``.
    """
    if ord in (2, None):
        return tree_l2_norm(tree, squared=squared)
    leaves = _leaves(tree)
    if not leaves:
        return jnp.zeros([])
    if ord == 1:
        value = tree_sum(jax.tree.map(lambda x: jnp.sum(jnp.abs(x)), tree))
    elif ord in ("inf", jnp.inf):
        value = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in leaves]))
    else:
        raise ValueError(f"tree_norm: ord must be 1, 2 or inf, got {ord!r}.")
    return value**2 if squared else value


def _decay_pair(decay: ArrayLike) -> tuple[Array, Array]:
    """``(β, 1 - β)``, the complement computed in β's own (at least float32) dtype.

    Computing ``1 - β`` after rounding β to a low-precision leaf dtype would cancel most
    of its digits (``1 - bf16(0.999)``); computing it first, in the hyperparameter's
    dtype, and rounding the result keeps it as accurate as the bias correction it is
    divided by.
    """
    decay = jnp.asarray(decay)
    decay = decay.astype(scalar_dtype(decay))
    return decay, 1 - decay


def moment_update(decay: ArrayLike, order: int) -> Callable[[Array, Array], Array]:
    """The leaf function of :func:`tree_update_moment`: ``(g, m) -> β m + (1 - β) g**k``.

    $$m_t = \\beta\\,m_{t-1} + (1 - \\beta)\\,g_t^{k}$$

    The scalars are formed once, here; the returned function computes in the compute
    dtype of the leaves and returns the moment's dtype.
    """
    decay, complement = _decay_pair(decay)

    def leaf(g: Array, m: Array) -> Array:
        work = compute_dtype(jnp.result_type(m.dtype, g.dtype))
        d, c = decay.astype(work), complement.astype(work)
        out = c * (g.astype(work) ** order) + d * m.astype(work)
        return out.astype(m.dtype)

    return leaf


def tree_update_moment(updates: PyTree, moments: PyTree, decay: ArrayLike, order: int) -> PyTree:
    """The exponential moving average of the ``order``-th power of the updates.

    $$m_t = \\beta\\,m_{t-1} + (1 - \\beta)\\,g_t^{k}$$

    Computed in the compute dtype of the moment's leaves, stored in the moment's dtype.
    """
    return jax.tree.map(moment_update(decay, order), updates, moments)


def _abs_pow(g: Array, order: int) -> Array:
    if jnp.iscomplexobj(g):
        squared = jnp.real(g) ** 2 + jnp.imag(g) ** 2
        if order == 2:
            return squared
        return squared ** (order / 2)
    if order % 2 == 0:
        return g**order
    return jnp.abs(g) ** order


def moment_update_per_elem_norm(decay: ArrayLike, order: int) -> Callable[[Array, Array], Array]:
    """The leaf function of :func:`tree_update_moment_per_elem_norm`.

    $$v_t = \\beta\\,v_{t-1} + (1 - \\beta)\\,|g_t|^{k}$$
    """
    decay, complement = _decay_pair(decay)

    def leaf(g: Array, m: Array) -> Array:
        work = compute_dtype(jnp.result_type(m.dtype, g.dtype))
        d, c = decay.astype(work), complement.astype(work)
        power = _abs_pow(g.astype(compute_dtype(g.dtype)), order).astype(work)
        return (c * power + d * m.astype(work)).astype(m.dtype)

    return leaf


def tree_update_moment_per_elem_norm(
    updates: PyTree, moments: PyTree, decay: ArrayLike, order: int
) -> PyTree:
    """The exponential moving average of ``|g|**order`` (real for complex updates).

    $$v_t = \\beta\\,v_{t-1} + (1 - \\beta)\\,|g_t|^{k}$$

    The element-wise norm of Optax's documentation, for every order. Optax's function
    (``optax.tree_utils.tree_update_moment_per_elem_norm``) takes the absolute value of
    complex updates only: for real ones and an odd order it averages $g^k$, negative where
    $g$ is; its optimizers use the order 2, where the two agree.
    """
    return jax.tree.map(moment_update_per_elem_norm(decay, order), updates, moments)


def tree_bias_correction(moment: PyTree, decay: ArrayLike, count: ArrayLike) -> PyTree:
    """Divide a moment by its bias correction ``1 - decay**count``, computed without cancellation.

    $$\\hat m_t = \\frac{m_t}{1 - \\beta^t}$$

    The correction is computed in the wide dtype of :func:`optref.core.bias_correction_factor`;
    the division is done in the compute dtype of each leaf. Kingma & Ba (2015).
    """
    correction = bias_correction_factor(decay, count)

    def leaf(m: Array) -> Array:
        work = compute_dtype(m.dtype)
        return (m.astype(work) / correction.astype(work)).astype(m.dtype)

    return jax.tree.map(leaf, moment)


#: Optax's top-level name for :func:`tree_bias_correction` (``optax.bias_correction``):
#: the same function. The scalar factor is :func:`optref.core.bias_correction_factor`.
bias_correction = tree_bias_correction
#: Optax's top-level name for :func:`tree_update_moment` (``optax.update_moment``).
update_moment = tree_update_moment
#: Optax's top-level name for :func:`tree_update_moment_per_elem_norm`
#: (``optax.update_moment_per_elem_norm``).
update_moment_per_elem_norm = tree_update_moment_per_elem_norm


def tree_map_unzip(
    fn: Callable[..., tuple[PyTree, ...]], n_outputs: int, tree: PyTree, *rest: PyTree
) -> tuple[PyTree, ...]:
    """Map ``fn``, which returns ``n_outputs`` arrays, over leaves; return ``n_outputs`` trees.

    $$(f(x_\\ell, y_\\ell, \\ldots))_\\ell \\mapsto
    \\big((f_1(x_\\ell, \\ldots))_\\ell, \\ldots, (f_n(x_\\ell, \\ldots))_\\ell\\big)$$

    This lets one fused leafwise function compute an update and the next moments together,
    in the compute dtype, and hand each back as its own tree. The trees in ``rest`` must
    have ``tree``'s structure; ``None`` leaves of ``tree`` stay ``None`` in every output.
    """
    leaves, treedef = jax.tree.flatten(tree)
    others = [treedef.flatten_up_to(other) for other in rest]
    outputs = [fn(*args) for args in zip(leaves, *others, strict=True)]
    return tuple(
        treedef.unflatten([output[index] for output in outputs]) for index in range(n_outputs)
    )
