"""Reading and replacing values in optimizer states by name: ``tree_get``, ``tree_set``.

A state is a tree of state modules, NamedTuples, tuples (``chain``), dicts
(``named_chain``, ``state.hyperparams``) and arrays. A *name* matches

- a field of a state module or NamedTuple (``count``, ``mu``, ``inner_state``, ...),
- a key of a dict (``state.hyperparams['learning_rate']``, a ``named_chain`` member),
- the class name of a state module or NamedTuple (``'ScaleByAdamState'``),

wherever it stands, however deeply the states of wrappers nest. Paths are JAX key paths
(``[0].hyperparams['learning_rate']``), the ones ``jax.tree_util.keystr`` prints and the
conformance runner compares states by.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, TypeAlias

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import DictKey, GetAttrKey, SequenceKey, keystr
from jaxtyping import PyTree

from ._tree_check import path_str

__all__ = [
    "KeyPath",
    "PathFilter",
    "TreeKeyError",
    "tree_get",
    "tree_get_all",
    "tree_get_all_with_path",
    "tree_set",
]

KeyPath: TypeAlias = tuple[Any, ...]
"""A PyTree key path, as ``jax.tree_util.tree_flatten_with_path`` returns it: a tuple of
``DictKey``, ``GetAttrKey``, ``SequenceKey`` and ``FlattenedIndexKey`` entries."""
PathFilter: TypeAlias = Callable[[KeyPath, Any], bool] | str | re.Pattern[str] | None
"""A path filter: a callable ``(path, value) -> bool`` (as in Optax); a string, matched
literally against whole entries of the path (see :func:`tree_get`); or a compiled
regular expression, searched in the path as ``keystr`` prints it."""


class TreeKeyError(KeyError):
    """A name is missing from a tree, or found at several paths where one was wanted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclasses.dataclass(frozen=True)
class _Child:
    entry: Any
    value: Any
    name: Any  # the name the child is found by, or None (tuple elements)
    search_keys: bool  # whether the child's own dict keys are names


def _is_named_tuple(node: Any) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def _is_record(node: Any) -> bool:
    return isinstance(node, eqx.Module) or _is_named_tuple(node)


def _children(node: Any, search_keys: bool) -> list[_Child]:
    if isinstance(node, eqx.Module):
        return [
            _Child(
                GetAttrKey(f.name),
                getattr(node, f.name),
                f.name,
                f.metadata.get("search_keys", True),
            )
            for f in dataclasses.fields(node)
        ]
    if _is_named_tuple(node):
        return [_Child(GetAttrKey(f), getattr(node, f), f, True) for f in node._fields]
    if isinstance(node, dict):
        return [_Child(DictKey(k), v, k if search_keys else None, True) for k, v in node.items()]
    if isinstance(node, list | tuple):
        return [_Child(SequenceKey(i), v, None, True) for i, v in enumerate(node)]
    return []


def _matches(child: _Child, key: str) -> bool:
    if child.name is not None and child.name == key:
        return True
    return _is_record(child.value) and type(child.value).__name__ == key


def _entry_name(entry: Any) -> Any:
    if isinstance(entry, DictKey):
        return entry.key
    if isinstance(entry, GetAttrKey):
        return entry.name
    return None


def _path_matches(text: str, path: KeyPath) -> bool:
    """Whether the string filter ``text`` names a part of ``path``, literally.

    $$\\operatorname{match}(s, \\pi) \\iff \\exists\\, i \\le j:\\
    s = \\operatorname{keystr}(\\pi_i \\ldots \\pi_j) \\ \\lor\\
    \\exists\\, i: s = \\operatorname{name}(\\pi_i)$$

    ``text`` matches when it is one or several consecutive whole entries of the path as
    :func:`jax.tree_util.keystr` prints them (``"['decoder']"``, ``"[1]"``,
    ``"[0].hyperparams"``), or the bare name of one entry, a dict key or a field
    (``"decoder"``, ``"inner_state"``). Nothing in it is a pattern: ``"['decoder']"`` does
    not match ``['encoder']``, and ``"[1]"`` does not match ``[10]``. For a pattern, pass a
    compiled regular expression (``re.compile(r"^\\[1\\]")``, the first level only).
    """
    if any(_entry_name(entry) == text for entry in path):
        return True
    entries = [keystr((entry,)) for entry in path]
    for start in range(len(entries)):
        joined = ""
        for entry in entries[start:]:
            joined += entry
            if joined == text:
                return True
            if len(joined) >= len(text):
                break
    return False


def _accepts(filtering: PathFilter, path: KeyPath, value: Any) -> bool:
    if filtering is None:
        return True
    if isinstance(filtering, str):
        return _path_matches(filtering, path)
    if isinstance(filtering, re.Pattern):
        return filtering.search(path_str(path)) is not None
    return bool(filtering(path, value))


def _find(node: Any, key: str, path: KeyPath, search_keys: bool) -> list[tuple[KeyPath, Any]]:
    found = []
    for child in _children(node, search_keys):
        child_path = (*path, child.entry)
        if _matches(child, key):
            found.append((child_path, child.value))
        found.extend(_find(child.value, key, child_path, child.search_keys))
    return found


def tree_get_all_with_path(
    tree: PyTree, key: str, filtering: PathFilter = None
) -> list[tuple[KeyPath, Any]]:
    """Every ``(path, value)`` in ``tree`` whose field name, dict key or class name is ``key``.

    $$\\{(\\pi, v) : \\text{the last entry of } \\pi \\text{ is named } k,\\
    \\text{filter}(\\pi, v)\\}$$

    The paths are tuples of JAX key entries, in depth-first order. Reference:
    ``optax.tree_utils.tree_get_all_with_path`` (whose paths name the NamedTuples too).
    """
    found = []
    if _is_record(tree) and type(tree).__name__ == key:
        found.append(((), tree))
    found.extend(_find(tree, key, (), True))
    return [(path, value) for path, value in found if _accepts(filtering, path, value)]


def tree_get_all(tree: PyTree, key: str, filtering: PathFilter = None) -> dict[str, Any]:
    """Every value named ``key`` in ``tree``, keyed by its path string.

    $$\\{\\operatorname{keystr}(\\pi) \\mapsto v\\}$$

    For example ``{"[0].hyperparams['learning_rate']": 0.1, "[1].hyperparams[...]": ...}``
    for a chain of two injected optimizers. ``filtering`` keeps some of them (see
    :func:`tree_get`). Reference: ``optax.tree_utils.tree_get_all_with_path``.
    """
    return {path_str(p): v for p, v in tree_get_all_with_path(tree, key, filtering)}


def tree_get(tree: PyTree, key: str, default: Any = None, filtering: PathFilter = None) -> Any:
    """The one value named ``key`` in ``tree`` (a hyperparameter, a state field, a state).

    $$\\operatorname{tree\\_get}(T, k) = v \\quad \\text{for the unique } (\\pi, v)
    \\text{ named } k \\text{ in } T$$

    ``key`` is found as a key of an injected state's ``hyperparams`` (and any dict), a field
    of a state module or NamedTuple, or a state's class name, through ``chain`` (tuples),
    ``named_chain`` (dicts), injection and every wrapper's state. Returns ``default`` when
    ``key`` is absent. When it occurs at several paths, raises :class:`TreeKeyError`
    listing every path; ``filtering`` then chooses: a callable ``(path, value) -> bool``
    (as in Optax), a string matched literally against whole entries of the path
    (``filtering="[1]"``, ``filtering="['head']"`` or ``"head"``), or a compiled regular
    expression searched in the path string (``filtering=re.compile(r"^\\[1\\]")``).

    A string filter is never a pattern. It matches a path when it is one or several
    consecutive whole entries of the path as :func:`jax.tree_util.keystr` prints them
    (``"['decoder']"``, ``"[1]"``, ``"[0].hyperparams"``), or the bare name of one entry,
    a dict key or a field (``"decoder"``, ``"inner_state"``): ``"['decoder']"`` does not
    match ``['encoder']``, and ``"[1]"`` does not match ``[10]``.

    Reference: ``optax.tree_utils.tree_get``.
    """
    found = tree_get_all_with_path(tree, key, filtering)
    if not found:
        return default
    if len(found) > 1:
        paths = "\n".join(f"  {path_str(p)}" for p, _ in found)
        raise TreeKeyError(
            f"tree_get: {key!r} occurs at {len(found)} paths:\n{paths}\n"
            "Choose one with filtering= (whole entries of the path such as '[1]' or "
            "\"['head']\", a compiled regex, or a callable (path, value) -> bool), or read "
            "them all with tree_get_all."
        )
    return found[0][1]


def _rebuild(node: Any, children: list[_Child], values: list[Any]) -> Any:
    if all(v is c.value for c, v in zip(children, values, strict=True)):
        return node
    if isinstance(node, eqx.Module):
        # As equinox rebuilds a module when it unflattens one: fields set on a new instance.
        new = object.__new__(type(node))
        for child, value in zip(children, values, strict=True):
            object.__setattr__(new, child.name, value)
        return new
    if _is_named_tuple(node):
        return type(node)(*values)
    if isinstance(node, dict):
        items = [(c.entry.key, v) for c, v in zip(children, values, strict=True)]
        return type(node)(items)
    return type(node)(values)


def _as_leaf_like(new: Any, old: Any, key: str, path: KeyPath) -> Any:
    """``new`` as an array of ``old``'s dtype and shape where ``old`` is an array.

    A Python number in place of an array would change the jit signature (a weakly typed
    scalar), so a jitted step taking the state would compile again.
    """
    if not isinstance(old, jax.Array | np.ndarray) or not isinstance(
        new, int | float | complex | np.generic | np.ndarray | jax.Array
    ):
        return new
    new_array = jnp.asarray(new)
    where = f"tree_set: {key}={new!r} at {path_str(path)}"
    if new_array.shape != old.shape:
        raise ValueError(
            f"{where} has shape {new_array.shape}, but the value it replaces has shape "
            f"{old.shape}; the new value must have the old one's shape."
        )
    if not jnp.can_cast(new_array.dtype, old.dtype, casting="same_kind") and not (
        isinstance(new, int | float | complex) and _python_scalar_fits(new, old.dtype)
    ):
        raise ValueError(
            f"{where} is {new_array.dtype.name}, which cannot stand for the "
            f"{np.dtype(old.dtype).name} value it replaces."
        )
    return new_array.astype(old.dtype)


def _python_scalar_fits(value: int | float | complex, dtype: Any) -> bool:
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return True
    if jnp.issubdtype(dtype, jnp.floating):
        return not isinstance(value, complex)
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _replace(
    node: Any, path: KeyPath, search_keys: bool, filtering: PathFilter, changes: dict[str, Any]
) -> Any:
    children = _children(node, search_keys)
    values = []
    for child in children:
        child_path = (*path, child.entry)
        names = [child.name] if child.name is not None else []
        if _is_record(child.value):
            names.append(type(child.value).__name__)
        chosen = next(
            (
                n
                for n in names
                if isinstance(n, str)
                and n in changes
                and _accepts(filtering, child_path, child.value)
            ),
            None,
        )
        if chosen is not None:
            values.append(_as_leaf_like(changes[chosen], child.value, chosen, child_path))
        else:
            values.append(_replace(child.value, child_path, child.search_keys, filtering, changes))
    return _rebuild(node, children, values)


def tree_set(tree: PyTree, filtering: PathFilter = None, /, **kwargs: Any) -> PyTree:
    """A new tree with every value named by a keyword replaced by the keyword's value.

    $$\\operatorname{tree\\_set}(T, k{=}x)\\colon\\ v \\mapsto x \\ \\text{at every path
    named } k \\text{ that passes the filter}$$

    ``tree_set(state, learning_rate=1e-4)`` sets the learning rate of an injected state,
    and the next ``update`` uses it. Names are found as in :func:`tree_get`; every path
    that matches and passes ``filtering`` is replaced (as in Optax), so ``filtering``
    (a callable, a literal string or a compiled regex, as in :func:`tree_get`) restricts
    the change to one group. The tree is not modified: state modules are rebuilt, as
    :func:`equinox.tree_at` does. Where the replaced value is an array, the new value
    becomes an array of the same dtype and shape (``learning_rate=1e-4`` is stored as the
    old leaf's float32 scalar), so a jitted step taking the state does not compile again;
    a value of another shape, or one the dtype cannot hold (``count=2.5``), is a
    ``ValueError`` naming the keyword and the path. Raises :class:`TreeKeyError` naming a
    keyword that matches nothing. Reference: ``optax.tree_utils.tree_set``.
    """
    for key in kwargs:
        if not tree_get_all_with_path(tree, key, filtering):
            which = " that passes the filter" if filtering is not None else ""
            raise TreeKeyError(f"tree_set: no value named {key!r}{which} in the tree.")
    if _is_record(tree) and type(tree).__name__ in kwargs and _accepts(filtering, (), tree):
        return kwargs[type(tree).__name__]
    return _replace(tree, (), True, filtering, kwargs)
