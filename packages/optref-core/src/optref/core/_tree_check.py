"""Trace-time checks that a tree fits another: structure, shapes and dtypes, by path.

These run in Python on shapes and dtypes only, so under ``jax.jit`` they run once at
trace time and add nothing to the compiled step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

__all__ = ["TreeMismatchError", "check_inexact", "check_real", "check_tree_fits", "path_str"]


class TreeMismatchError(ValueError):
    """A tree (updates, state, mask, labels) does not fit the tree it must match."""


def path_str(path: tuple[Any, ...]) -> str:
    """A key path as Python indexing, e.g. ``['head']['b']`` or ``.layers[0].weight``."""
    return jax.tree_util.keystr(path) or "<root>"


def _with_paths(tree: PyTree) -> list[tuple[tuple[Any, ...], Any]]:
    return jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_none)[0]


def _describe(leaf: Any) -> str:
    if leaf is None:
        return "None"
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{np.dtype(dtype).name}{list(shape)}"
    return type(leaf).__name__


def _is_none(node: Any) -> bool:
    return node is None


def _is_leaf(node: Any) -> bool:
    # A node without children (a MaskedNode, an empty tuple) is a container, not a leaf:
    # a tree that has one where the other has a dict of them differs in kind.
    if node is None:
        return True
    structure = jax.tree.structure(node)
    return jax.tree_util.treedef_is_leaf(structure) and structure.num_leaves == 1


def _children(node: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """The children of a container, one level down, with their keys."""
    return jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]


def _first_node_difference(reference: PyTree, tree: PyTree) -> tuple[str, str, str] | None:
    """The path and the two node types of the first container that differs in kind.

    Two trees can have the same leaf paths and still differ: ``[0]`` indexes a list and a
    tuple alike, and two modules of different classes can have the same field names.
    """
    stack: list[tuple[tuple[Any, ...], Any, Any]] = [((), reference, tree)]
    while stack:
        path, ref_node, node = stack.pop()
        if _is_leaf(ref_node) or _is_leaf(node):
            continue
        ref_def, node_def = jax.tree.structure(ref_node), jax.tree.structure(node)
        if type(ref_node) is not type(node) or ref_def.node_data() != node_def.node_data():
            return path_str(path), type(ref_node).__name__, type(node).__name__
        pairs = zip(_children(ref_node), _children(node), strict=True)
        stack.extend(
            ((*path, *key), ref, child) for (key, ref), (_, child) in reversed(list(pairs))
        )
    return None


def check_tree_fits(
    reference: PyTree,
    tree: PyTree,
    *,
    where: str,
    reference_name: str,
    tree_name: str,
    check_dtype: bool = False,
) -> None:
    """Raise :class:`TreeMismatchError` if ``tree`` differs from ``reference``.

    The structure (including where ``None`` stands), every leaf's shape and, with
    ``check_dtype``, every leaf's dtype, as JAX computes in it (a NumPy float64 is float32
    when 64-bit mode is off), must be the same. The message names ``where``
    (the transformation), both trees and the first PyTree path at which they differ.
    """
    ref_leaves = _with_paths(reference)
    leaves = _with_paths(tree)
    ref_paths = [path_str(p) for p, _ in ref_leaves]
    paths = [path_str(p) for p, _ in leaves]
    if ref_paths != paths:
        only_ref = [p for p in ref_paths if p not in paths]
        only_tree = [p for p in paths if p not in ref_paths]
        detail = []
        if only_ref:
            detail.append(f"{reference_name} has {', '.join(only_ref[:5])} which {tree_name} lacks")
        if only_tree:
            detail.append(
                f"{tree_name} has {', '.join(only_tree[:5])} which {reference_name} lacks"
            )
        if not detail:
            detail.append(f"the order of the leaves differs ({ref_paths[:5]} vs {paths[:5]})")
        raise TreeMismatchError(
            f"{where}: {tree_name} does not have the structure of {reference_name}: "
            + "; ".join(detail)
            + "."
        )
    same_structure = jax.tree.structure(reference, is_leaf=_is_none) == jax.tree.structure(
        tree, is_leaf=_is_none
    )
    difference = None if same_structure else _first_node_difference(reference, tree)
    if difference is not None:
        at, ref_kind, kind = difference
        same = "" if ref_kind != kind else " with different static fields"
        raise TreeMismatchError(
            f"{where}: at {at}, {tree_name} is a {kind} but {reference_name} is a "
            f"{ref_kind}{same}: the containers must be of the same kind, not only hold "
            "the same leaves."
        )
    for (path, ref_leaf), (_, leaf) in zip(ref_leaves, leaves, strict=True):
        if (ref_leaf is None) != (leaf is None):
            raise TreeMismatchError(
                f"{where}: at {path_str(path)}, {tree_name} is {_describe(leaf)} but "
                f"{reference_name} is {_describe(ref_leaf)}."
            )
        if ref_leaf is None:
            continue
        ref_shape = getattr(ref_leaf, "shape", None)
        shape = getattr(leaf, "shape", None)
        if ref_shape is not None and shape is not None and tuple(ref_shape) != tuple(shape):
            raise TreeMismatchError(
                f"{where}: at {path_str(path)}, {tree_name} has shape {tuple(shape)} but "
                f"{reference_name} has shape {tuple(ref_shape)}."
            )
        if check_dtype:
            ref_dtype = _canonical_dtype(ref_leaf)
            dtype = _canonical_dtype(leaf)
            if ref_dtype is not None and dtype is not None and ref_dtype != dtype:
                raise TreeMismatchError(
                    f"{where}: at {path_str(path)}, {tree_name} has dtype "
                    f"{np.dtype(dtype).name} but {reference_name} has dtype "
                    f"{np.dtype(ref_dtype).name}."
                )


def _canonical_dtype(leaf: Any) -> np.dtype | None:
    """The dtype JAX computes ``leaf`` in: a NumPy float64 leaf is float32 when 64-bit mode
    is off, as the state :func:`jax.numpy.asarray` built from it is."""
    dtype = getattr(leaf, "dtype", None)
    return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


def check_real(tree: PyTree, *, where: str, tree_name: str = "params") -> None:
    """Raise :class:`TypeError` naming ``where`` and the path of the first complex leaf.

    For transformations whose math needs an ordering (signs, minima, nonnegativity) and
    so has no meaning for complex numbers. Runs at trace time only.
    """
    for path, leaf in _with_paths(tree):
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and np.issubdtype(np.dtype(dtype), np.complexfloating):
            raise TypeError(
                f"{where}: complex {tree_name} are not supported (the transformation "
                f"compares signs or magnitudes), got {np.dtype(dtype).name} at "
                f"{path_str(path)}."
            )


def check_inexact(tree: PyTree, *, where: str, tree_name: str = "params") -> None:
    """Raise :class:`TypeError` naming ``where`` and the path of the first integer or
    boolean array (a JAX or NumPy array, or a NumPy scalar).

    Gradient-based updates have no meaning for integer or boolean arrays. Leaves that are
    not arrays (the functions and Python numbers of an unfiltered Equinox model, whose
    updates are ``None``) are left to the transformation. Runs at trace time only.
    """
    for path, leaf in _with_paths(tree):
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or jnp.issubdtype(dtype, jnp.inexact):
            continue
        try:
            kind = _describe(leaf)
        except TypeError:  # a dtype NumPy does not name (a PRNG key)
            kind = str(dtype)
        hint = (
            " Leave integer and boolean leaves out of the params, e.g. with "
            "eqx.filter(model, eqx.is_inexact_array)."
            if tree_name == "params"
            else ""
        )
        raise TypeError(
            f"{where}: every leaf of {tree_name} must be a floating-point or complex array, "
            f"got {kind} at {path_str(path)}.{hint}"
        )
