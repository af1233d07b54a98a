"""Error metrics that cancellation cannot blow up."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["leaf_relative_error", "tree_relative_error", "units_of_epsilon"]


def _as_numpy(x: Any) -> np.ndarray:
    return np.asarray(jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float64)))


def leaf_relative_error(actual: Any, expected: Any) -> float:
    """``max |a - e| / rms(e)``: the error relative to the leaf's scale, not per element.

    Relative to the root mean square of the expected leaf (or of the actual one where that
    is larger), so an element that cancels to nearly zero does not make a huge relative
    error of a rounding-sized difference. Integers and booleans compare exactly (0 or inf).
    """
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return float("inf")
    if a.dtype.kind in "biu" or e.dtype.kind in "biu":
        return 0.0 if np.array_equal(a, e) else float("inf")
    a, e = _as_numpy(actual), _as_numpy(expected)
    if a.size == 0:
        return 0.0
    finite = np.isfinite(a) & np.isfinite(e)
    # The same NaN or infinity on both sides is agreement (robustness is checked apart).
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (a == e)
    if not np.all(finite | same_nonfinite):
        return float("inf")
    if not np.any(finite):
        return 0.0
    diff = np.where(finite, np.abs(np.where(finite, a, 0) - np.where(finite, e, 0)), 0.0)
    a_f, e_f = a[finite], e[finite]
    with np.errstate(over="ignore"):
        scale = max(
            float(np.sqrt(np.mean(np.abs(e_f) ** 2))), float(np.sqrt(np.mean(np.abs(a_f) ** 2)))
        )
    if scale == 0.0:
        return 0.0 if np.max(diff) == 0 else float("inf")
    return float(np.max(diff) / scale)


def tree_relative_error(actual: Any, expected: Any) -> float:
    """The largest :func:`leaf_relative_error` over the leaves of two trees."""
    a_leaves, e_leaves = jax.tree.leaves(actual), jax.tree.leaves(expected)
    if len(a_leaves) != len(e_leaves):
        return float("inf")
    errors = [leaf_relative_error(a, e) for a, e in zip(a_leaves, e_leaves, strict=True)]
    return max(errors, default=0.0)


def units_of_epsilon(actual: Any, expected: Any, dtype: Any) -> float:
    """``rms(a - e) / rms(e)`` over a whole tree, in units of ``dtype``'s machine epsilon."""
    a_leaves = [_as_numpy(x).ravel() for x in jax.tree.leaves(actual)]
    e_leaves = [_as_numpy(x).ravel() for x in jax.tree.leaves(expected)]
    if not a_leaves:
        return 0.0
    a, e = np.concatenate(a_leaves), np.concatenate(e_leaves)
    if not np.all(np.isfinite(a)):
        return float("inf")
    scale = float(np.sqrt(np.mean(np.abs(e) ** 2)))
    err = float(np.sqrt(np.mean(np.abs(a - e) ** 2)))
    if scale == 0.0:
        return 0.0 if err == 0.0 else float("inf")
    return err / scale / float(jnp.finfo(jnp.dtype(dtype)).eps)
