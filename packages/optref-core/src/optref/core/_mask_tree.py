"""Resolve a mask or a label tree (a full tree, a prefix of one, or a callable) against a tree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jaxtyping import PyTree

from ._tree_check import TreeMismatchError, path_str

__all__ = ["broadcast_mask", "broadcast_prefix", "is_params_placeholder", "is_tree_function"]


def is_params_placeholder(params: Any) -> bool:
    """Whether ``params`` is the stand-in that ``optax.tree_utils.tree_map_params`` passes.

    $$\\operatorname{is\\_params\\_placeholder}(p) \\iff
    \\operatorname{type}(p) = \\texttt{optax.\\_ParamsPlaceholder}$$

    ``tree_map_params`` finds where a state holds copies of the params by calling
    ``init`` with a ``_ParamsPlaceholder``, a PyTree node without leaves, and looking for
    it in the state. No mask or label tree fits it, so the transformations that take a
    mask (``add_decayed_weights``, the wrappers of ``optref.masking``) do not check it
    against the placeholder and pass the placeholder on unmasked, as Optax's ``masked``
    does. It is recognised by its class's name and module, so optref does not import
    Optax; real params are never of that class, and their structure is checked as
    always. Reference: ``optax.tree_utils.tree_map_params``.
    """
    cls = type(params)
    return cls.__name__ == "_ParamsPlaceholder" and cls.__module__.partition(".")[0] == "optax"


def is_tree_function(value: Any) -> bool:
    """Whether ``value`` is a function of the params rather than a tree (a mask, labels).

    As in Optax, a tree whose leaves are all callables is a function; in addition, the
    object itself must be callable. So a plain function or a callable module with no
    array leaves is a function, while a tree of bools shaped like an Equinox model (a
    callable ``eqx.nn.MLP`` whose leaves are bools) is a tree.
    """
    if isinstance(value, bool) or not callable(value):
        return False
    return all(callable(leaf) for leaf in jax.tree.leaves(value))


def _covered(path: tuple[Any, ...], prefixes: list[tuple[Any, ...]]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in prefixes)


def broadcast_prefix(
    prefix: PyTree | Callable[[PyTree], PyTree],
    tree: PyTree,
    *,
    where: str,
    argument: str,
    check_leaf: Callable[[Any], bool] | None = None,
    expected: str = "",
) -> PyTree:
    """A tree with the structure of ``tree`` whose leaves are ``prefix``'s values, broadcast.

    ``prefix`` is a tree with the structure of ``tree`` or a prefix of it (a value at an
    inner node of ``tree`` applies to every leaf below it), or a function of ``tree``
    that returns one (see :func:`is_tree_function`). ``None`` leaves of ``tree`` stay
    ``None``. Each value must pass ``check_leaf`` (described by ``expected``).

    Raises :class:`~optref.core.TreeMismatchError` naming ``where``, ``argument`` and the
    paths at which the prefix and the tree differ.
    """
    if is_tree_function(prefix):
        prefix = prefix(tree)
    prefix_leaves, prefix_def = jax.tree_util.tree_flatten_with_path(prefix)
    try:
        subtrees = prefix_def.flatten_up_to(tree)
    except (ValueError, TypeError) as error:
        prefix_paths = [p for p, _ in prefix_leaves]
        tree_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
        extra = [path_str(p) for p in prefix_paths if not any(q[: len(p)] == p for q in tree_paths)]
        uncovered = [path_str(p) for p in tree_paths if not _covered(p, prefix_paths)]
        detail = []
        if extra:
            detail.append(f"{argument} has {', '.join(extra[:5])} which the params lack")
        if uncovered:
            detail.append(
                f"the params have {', '.join(uncovered[:5])} which {argument} does not cover"
            )
        shown = f" ({'; '.join(detail)})" if detail else ""
        raise TreeMismatchError(
            f"{where}: {argument} is neither the params' structure nor a prefix of it"
            f"{shown}. {argument.capitalize()} structure: {prefix_def}; params structure: "
            f"{jax.tree.structure(tree)}."
        ) from error
    if check_leaf is not None:
        for path, value in prefix_leaves:
            if not check_leaf(value):
                raise TreeMismatchError(
                    f"{where}: {argument} must hold {expected}, got {value!r} at {path_str(path)}."
                )
    broadcast = [
        jax.tree.map(lambda _, v=value: v, sub)
        for (_, value), sub in zip(prefix_leaves, subtrees, strict=True)
    ]
    return prefix_def.unflatten(broadcast)


def _is_bool(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return isinstance(value, bool) or (dtype is not None and np.dtype(dtype) == np.bool_)


def broadcast_mask(
    mask: PyTree | Callable[[PyTree], PyTree], tree: PyTree, *, where: str, argument: str = "mask"
) -> PyTree:
    """A tree of bools with the structure of ``tree`` from a mask, a mask prefix or a callable.

    A callable is called with ``tree``. A bool at an inner node of ``tree`` applies to
    every leaf below it. ``None`` leaves of ``tree`` stay ``None``. Raises
    :class:`~optref.core.TreeMismatchError` naming ``where``, ``argument`` and the path at
    which the mask does not fit. See :func:`broadcast_prefix`.
    """
    return broadcast_prefix(
        mask, tree, where=where, argument=argument, check_leaf=_is_bool, expected="booleans"
    )
