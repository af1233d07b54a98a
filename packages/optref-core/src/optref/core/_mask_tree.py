"""Resolve a mask (a tree of bools, a prefix of one, or a callable) against the params."""

from __future__ import annotations

from collections.abc import Callable

import jax
from jaxtyping import PyTree

from ._tree_check import TreeMismatchError, path_str

__all__ = ["broadcast_mask"]


def broadcast_mask(
    mask: PyTree | Callable[[PyTree], PyTree], tree: PyTree, *, where: str, argument: str = "mask"
) -> PyTree:
    """A tree of bools with the structure of ``tree`` from a mask, a mask prefix or a callable.

    A callable is called with ``tree``. A bool at an inner node of ``tree`` applies to
    every leaf below it. ``None`` leaves of ``tree`` stay ``None``. Raises
    :class:`~optref.core.TreeMismatchError` naming ``where``, ``argument`` and the path at
    which the mask does not fit.
    """
    if callable(mask) and not isinstance(mask, bool):
        mask = mask(tree)
    mask_leaves, mask_def = jax.tree_util.tree_flatten_with_path(mask)
    try:
        subtrees = mask_def.flatten_up_to(tree)
    except (ValueError, TypeError) as error:
        paths = {path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}
        missing = [path_str(p) for p, _ in mask_leaves if path_str(p) not in paths]
        detail = f" (no such path in the params: {', '.join(missing[:5])})" if missing else ""
        raise TreeMismatchError(
            f"{where}: {argument} is neither the params' structure nor a prefix of it"
            f"{detail}. Mask structure: {mask_def}; params structure: "
            f"{jax.tree.structure(tree)}."
        ) from error
    for (path, value), _ in zip(mask_leaves, subtrees, strict=True):
        if not isinstance(value, bool) and getattr(value, "dtype", None) != bool:
            raise TreeMismatchError(
                f"{where}: {argument} must hold booleans, got {value!r} at {path_str(path)}."
            )
    broadcast = [jax.tree.map(lambda _, v=value: v, sub) for (_, value), sub in zip(
        mask_leaves, subtrees, strict=True
    )]
    return mask_def.unflatten(broadcast)
