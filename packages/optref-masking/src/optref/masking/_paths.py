"""Parameter names: the canonical dotted form of a PyTree key path.

A parameter's name is its key path written the way one reads an attribute chain:
attributes of a module and string keys of a dict both become ``.name``, positions in a
list or tuple (and non-string dict keys) become ``[i]``, and the leading dot is dropped.
So the same name reads the same whether the model is an Equinox module or a dict:

- ``model.encoder.layers[0].weight`` (Equinox) -> ``encoder.layers[0].weight``
- ``params['encoder']['w']`` (dict) -> ``encoder.w``
- ``params[1]['b']`` (tuple of dicts) -> ``[1].b``
"""

from __future__ import annotations

from typing import Any

import jax
from jaxtyping import PyTree

__all__ = ["named_leaves", "path_name"]


def _entry(key: Any) -> str:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return f".{key.name}"
    if isinstance(key, jax.tree_util.DictKey):
        return f".{key.key}" if isinstance(key.key, str) else f"[{key.key!r}]"
    if isinstance(key, jax.tree_util.SequenceKey):
        return f"[{key.idx}]"
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return f"[{key.key}]"
    return f"[{key!s}]"


def path_name(path: tuple[Any, ...]) -> str:
    """The canonical dotted name of a key path, e.g. ``encoder.layers[0].weight``.

    $$\\text{name} = \\operatorname{concat}_i \\begin{cases} .k_i & k_i \\text{ an
    attribute or a string key} \\\\ [k_i] & \\text{otherwise} \\end{cases}
    \\text{ without the leading dot}$$

    The root (a params tree that is a single array) is named ``""``.
    """
    return "".join(_entry(key) for key in path).removeprefix(".")


def named_leaves(tree: PyTree) -> list[tuple[str, Any]]:
    """The ``(name, leaf)`` pairs of ``tree`` in flattening order; ``None`` leaves are absent."""
    return [(path_name(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]
