"""Batches of transformations that differ only in hyperparameter values: sweeps in one program.

An optref transformation is a PyTree whose numeric hyperparameters are array leaves. N
transformations with the same structure and the same non-array fields (flags, dtypes,
functions) stack into one transformation whose array leaves carry a leading axis of
length N; ``jax.vmap`` (or :func:`equinox.filter_vmap`) over that axis runs the N
optimizers side by side in one compiled program, each with its own params and state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._hyperparameters import HyperparameterError
from ._tree_check import path_str

__all__ = ["stack_transformations", "sweep"]

T = TypeVar("T")


def _describe(leaf: Any) -> str:
    if eqx.is_array(leaf):
        return f"an array {np.dtype(leaf.dtype).name}{list(leaf.shape)}"
    return repr(leaf)


def _same_leaf(first: Any, other: Any) -> bool:
    if eqx.is_array(first) or eqx.is_array(other):
        return (
            eqx.is_array(first)
            and eqx.is_array(other)
            and first.shape == other.shape
            and first.dtype == other.dtype
        )
    try:
        return bool(first == other)
    except Exception:  # an object whose == is not a truth value
        return first is other


def _children(node: Any) -> list[tuple[Any, Any]] | None:
    """``(key, child)`` pairs of a PyTree node, its static fields included (they are part
    of the tree structure); ``None`` for a leaf."""
    if isinstance(node, eqx.Module):
        return [
            (jax.tree_util.GetAttrKey(f.name), getattr(node, f.name))
            for f in dataclasses.fields(node)
        ]
    children, _ = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    if len(children) == 1 and children[0][1] is node:
        return None
    return [(path[0], child) for path, child in children]


def _first_difference(a: Any, b: Any, path: tuple[Any, ...]) -> tuple[Any, str, str] | None:
    """The first path where ``b`` differs from ``a`` in anything but array values."""
    if type(a) is not type(b):
        return path, f"a {type(a).__name__}", f"a {type(b).__name__}"
    children_a, children_b = _children(a), _children(b)
    if children_a is None or children_b is None:
        return None if _same_leaf(a, b) else (path, _describe(a), _describe(b))
    keys_a, keys_b = [k for k, _ in children_a], [k for k, _ in children_b]
    if keys_a != keys_b:
        return path, f"children {keys_a}", f"children {keys_b}"
    for (key, child_a), (_, child_b) in zip(children_a, children_b, strict=True):
        found = _first_difference(child_a, child_b, (*path, key))
        if found is not None:
            return found
    return None


def stack_transformations(transformations: Sequence[T]) -> T:
    r"""Stack N transformations into one whose array leaves have a leading axis of length N.

    $$\operatorname{stack}(T_1, \ldots, T_N) = T, \qquad
    \text{leaf}_j(T) = [\text{leaf}_j(T_1), \ldots, \text{leaf}_j(T_N)]$$

    for every array leaf $j$; every other leaf (a flag, a dtype, a function) must be
    equal across the members and is kept once. ``jax.vmap`` over the result (in axis 0
    for the transformation, its params and its state) runs member $i$ exactly as
    $T_i$ alone would run.

    Args:
        transformations: one or more transformations (any PyTrees) with the same tree
            structure, the same shapes and dtypes of array leaves, and equal non-array
            leaves.

    Returns:
        The batched transformation.

    Raises:
        ValueError: for an empty sequence, or when a member differs from the first in
            structure, in the shape or dtype of an array leaf, or in a non-array leaf;
            the message names the member and the PyTree path.
    """
    members = list(transformations)
    if not members:
        raise ValueError("stack_transformations: transformations must not be empty.")
    for index, member in enumerate(members[1:], start=1):
        difference = _first_difference(members[0], member, ())
        if difference is not None:
            path, reference, other = difference
            raise ValueError(
                f"stack_transformations: transformations[{index}] differs from "
                f"transformations[0] at {path_str(path)}: {other} vs {reference}. Only the "
                "values of array leaves may differ across a batch; structure, shapes, dtypes "
                "and non-array fields (flags, functions) must agree."
            )

    def stack(*xs: Any) -> Any:
        return jnp.stack(xs) if eqx.is_array(xs[0]) else xs[0]

    return jax.tree.map(stack, *members)


def _batch_length(name: str, values: Any) -> int:
    if isinstance(values, Sequence) and not isinstance(values, str):
        return len(values)
    shape = np.shape(values)
    if not shape:
        raise HyperparameterError(
            f"sweep: {name} must have a leading batch axis (a sequence or an array of "
            f"ndim >= 1), got {values!r}. Bind shared arguments with functools.partial."
        )
    return shape[0]


def sweep(factory: Callable[..., T], /, **batched: Any) -> T:
    r"""A batch of ``factory``'s transformations, one for each row of the batched arguments.

    $$\operatorname{sweep}(f, a=[a_1..a_N], b=[b_1..b_N]) =
    \operatorname{stack}(f(a=a_1, b=b_1), \ldots, f(a=a_N, b=b_N))$$

    (see :func:`stack_transformations`). Each member is built by the factory itself, so
    its hyperparameters are validated and converted exactly as in a single call: member
    $i$ of ``sweep(adam, learning_rate=[1e-3, 1e-2])`` holds the same arrays as
    ``adam(1e-3)``. Arguments shared by every member are bound beforehand, e.g. with
    ``functools.partial(adamw, weight_decay=0.1)`` or a ``lambda``; a schedule with
    batched parameters is built inside the factory.

    Example:
        ```python
        batch = optref.core.sweep(optref.core.adam, learning_rate=jnp.logspace(-4, -1, 16))
        states = jax.vmap(lambda tx, p: tx.init(p))(batch, batched_params)
        ```

    Args:
        factory: a callable returning a transformation (``optref.core.adam``, ...).
        **batched: the arguments that vary, each a sequence or an array whose leading
            axis has the same length $N \ge 1$. Member $i$ receives element $i$ (a
            sequence's element as it is, so Python floats stay Python floats).

    Returns:
        The transformation whose array leaves have a leading axis of length $N$.

    Raises:
        HyperparameterError: with no batched argument, an argument without a leading
            axis, batched arguments of different lengths, or a member the factory rejects
            (the message names the member and its arguments).
        ValueError: when members differ in a non-array field (see
            :func:`stack_transformations`).
    """
    name = getattr(factory, "__name__", repr(factory))
    if not batched:
        raise HyperparameterError(
            f"sweep: give at least one batched argument of {name}, e.g. learning_rate=[...]."
        )
    lengths = {key: _batch_length(key, values) for key, values in batched.items()}
    if len(set(lengths.values())) != 1:
        raise HyperparameterError(
            f"sweep: the batched arguments of {name} must have the same length, got {lengths}."
        )
    size = next(iter(lengths.values()))
    if size == 0:
        raise HyperparameterError(f"sweep: the batched arguments of {name} are empty.")
    rows: list[Mapping[str, Any]] = [
        {key: values[i] for key, values in batched.items()} for i in range(size)
    ]
    members = []
    for i, row in enumerate(rows):
        try:
            members.append(factory(**row))
        except HyperparameterError as error:
            raise HyperparameterError(f"sweep: member {i} of {name}({row}): {error}") from error
    return stack_transformations(members)
