"""Converting optimizer states between optref and Optax, so a run can switch library.

optref states mirror Optax's: the same field names in the same order, chains as tuples,
named chains as dicts. So the conversion is generic: build the target library's state
*abstractly* (``jax.eval_shape`` of its ``init``) as a template, and fill each of its
leaves with the source state's leaf at the same key path (``[0].mu['w']``). The
containers (Optax NamedTuples or optref modules) come from the template; the numbers
from the source. A leaf that one side has and the other lacks is an error that names
the transformation it belongs to.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.tree_util import DictKey, GetAttrKey, SequenceKey
from jaxtyping import PyTree

from optref.core import Chain, GradientTransformation, NamedChain, StateMismatchError
from optref.core._base import params_like_fields

from ._counterparts import NoCounterpartError, optax_counterpart
from ._describe import (
    _inner_transformations,
    _transformation_fields,
    describe_params,
    describe_state,
    describe_transformation,
    optax_name,
)

__all__ = ["StateConversionError", "state_from_optax", "state_to_optax"]


class StateConversionError(StateMismatchError):
    """A state cannot be converted: it belongs to another optimizer or other params, or
    a leaf of it has no counterpart in the other library."""


def state_to_optax(tx: GradientTransformation, state: PyTree, params: PyTree | None = None) -> Any:
    """The Optax state that ``tx``'s Optax counterpart would hold, from ``tx``'s state.

    $$s^{\\mathrm{optax}} = \\operatorname{fill}\\big(\\operatorname{eval\\_shape}(
    \\mathrm{counterpart}(T).\\mathrm{init}, p),\\ s^{\\mathrm{optref}}\\big)$$

    The result is a genuine Optax state (NamedTuples, tuples, dicts): pass it to
    ``optax_counterpart(tx).update`` (or to the same optimizer built with Optax) to go on
    with Optax, and read it with ``optax.tree_utils.tree_get``. Every leaf is the same
    quantity as the optref leaf at the same key path, cast to the dtype Optax gives it.

    ``params`` (optional) are the params the state was built for; without them they are
    found in the state itself (the subtree from which ``tx.init`` rebuilds the state's
    layout), which works whenever the state holds a params-shaped field.

    Raises :class:`StateConversionError` for a state of another optimizer or of other
    params (naming both) and :class:`NoCounterpartError` naming a member of ``tx`` that
    has no Optax counterpart. Reference: the state layouts of Optax's transformations.
    """
    where = f"state_to_optax({describe_transformation(tx)})"
    opt = _counterpart(tx, where)
    params = _params_for(
        tx.init,
        state,
        params,
        where=where,
        owner=describe_transformation(tx),
        library="optref",
        preferred=_preferred_paths(state),
        target_init=opt.init,
    )
    template = _abstract_init(opt.init, params, where, f"the Optax counterpart {optax_name(opt)}")
    return _transplant(state, template, tx, where, "optref state", "Optax state")


def state_from_optax(
    tx: GradientTransformation, optax_state: PyTree, params: PyTree | None = None
) -> Any:
    """``tx``'s state, from the state of its Optax counterpart.

    $$s^{\\mathrm{optref}} = \\operatorname{fill}\\big(\\operatorname{eval\\_shape}(
    T.\\mathrm{init}, p),\\ s^{\\mathrm{optax}}\\big)$$

    ``optax_state`` is a state of the Optax optimizer that computes what ``tx`` does
    (``optax.adam(1e-3)`` for ``optref.core.adam(1e-3)``, ``optax.chain(...)`` for a
    chain, ...). The result is ``tx``'s own state type, ready for ``tx.update``. See
    :func:`state_to_optax` for ``params`` and the errors.
    """
    where = f"state_from_optax({describe_transformation(tx)})"
    opt = _counterpart(tx, where)
    params = _params_for(
        opt.init,
        optax_state,
        params,
        where=where,
        owner=f"its Optax counterpart {optax_name(opt)}",
        library="Optax",
        preferred=_preferred_paths_of(tx) if params is None else [],
        target_init=tx.init,
    )
    template = _abstract_init(tx.init, params, where, describe_transformation(tx))
    return _transplant(optax_state, template, tx, where, "Optax state", "optref state")


def _counterpart(tx: GradientTransformation, where: str) -> Any:
    if not isinstance(tx, GradientTransformation):
        raise TypeError(
            f"{where}: tx must be an optref GradientTransformation, got {type(tx).__name__}."
        )
    try:
        return optax_counterpart(tx)
    except NoCounterpartError as error:
        raise NoCounterpartError(f"{where}: {error}") from None


def _eval_init(init: Callable[[PyTree], Any], params: PyTree) -> Any:
    """``jax.eval_shape(init, params)``, with ``init`` wrapped in a new function: JAX's cache
    of traced functions would compare a module's bound ``init`` with an earlier one, and a
    module compares its array fields, which inside ``jit`` gives a traced bool."""
    return jax.eval_shape(lambda p: init(p), params)


def _abstract_init(init: Callable[[PyTree], Any], params: PyTree, where: str, what: str) -> Any:
    try:
        return _eval_init(init, params)
    except StateMismatchError:
        raise
    except Exception as error:
        raise StateConversionError(
            f"{where}: {what}.init failed on params {describe_params(params)}: {error}"
        ) from error


def _signature(tree: PyTree) -> tuple[Any, tuple[Any, ...], tuple[Any, ...]]:
    leaves, treedef = jax.tree.flatten(tree)
    shapes = tuple(tuple(np.shape(x)) for x in leaves)
    dtypes = tuple(jnp.result_type(x) if hasattr(x, "dtype") else type(x) for x in leaves)
    return treedef, shapes, dtypes


def _subtrees(tree: PyTree, path: str = "") -> Iterator[tuple[str, PyTree]]:
    """``(key path, subtree)`` for every subtree of ``tree``, parents before children."""
    yield path, tree
    if tree is None or jax.tree_util.treedef_is_leaf(jax.tree.structure(tree)):
        return
    children = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is not tree)[0]
    for key, child in children:
        yield from _subtrees(child, path + jax.tree_util.keystr(key))


def _params_like_paths(state: PyTree, path: str = "") -> Iterator[tuple[str, bool]]:
    """The key paths of the params-shaped fields of an optref state, with ``follows_dtype``.

    optref declares them with :func:`optref.core.params_like`; they are where the params
    are found first (a state converts in one trace instead of a search).
    """
    if isinstance(state, eqx.Module):
        params_like = params_like_fields(state)
        for field in dataclasses.fields(state):
            here = f"{path}.{field.name}"
            if field in params_like:
                yield here, field.metadata.get("follows_dtype", True)
            else:
                yield from _params_like_paths(getattr(state, field.name), here)
    elif isinstance(state, tuple | list):
        for index, value in enumerate(state):
            yield from _params_like_paths(value, f"{path}[{index}]")
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _params_like_paths(value, f"{path}[{key!r}]")


def _preferred_paths(state: PyTree) -> list[str]:
    found = list(_params_like_paths(state))
    return [p for p, follows in found if follows] + [p for p, follows in found if not follows]


#: What :func:`_infer_params` returns when no subtree of the state is the params.
NOT_FOUND: Any = object()
#: What it returns when several do, and the converted state would depend on which.
AMBIGUOUS: Any = object()

_PROBES = (None, jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), jnp.float64))


def _hole_types() -> tuple[type, ...]:
    """The placeholders that masks leave in a params-shaped field (Optax's and optref's)."""
    masking = sys.modules.get("optref.masking")
    own = getattr(masking, "MaskedNode", None)
    return (optax.MaskedNode,) if own is None else (optax.MaskedNode, own)


def _has_holes(tree: PyTree) -> bool:
    """Whether ``tree`` is a masked part of the params rather than the params."""
    holes = _hole_types()
    nodes = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, holes))
    return any(isinstance(x, holes) for x in nodes)


def _abstract(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


def _reproduces(init: Callable[[PyTree], Any], candidate: PyTree, target: Any) -> int:
    """2 if ``init(candidate)`` has the layout and dtypes of ``target``, 1 if only the
    layout and shapes, 0 otherwise."""
    try:
        built = _signature(_eval_init(init, candidate))
    except Exception:
        return 0
    if built[:2] != target[:2]:
        return 0
    return 2 if built[2] == target[2] else 1


def _infer_params(
    init: Callable[[PyTree], Any],
    state: PyTree,
    preferred: list[str],
    target_init: Callable[[PyTree], Any],
) -> PyTree:
    """The params (abstract) for which ``init`` builds a state of ``state``'s layout.

    First the subtrees at the ``preferred`` key paths (the fields that optref declares
    params-shaped): the first that rebuilds the state is the params. Otherwise every
    subtree of the state, and ``None`` and scalars (for states that hold nothing
    params-shaped), is tried; those that rebuild the state (with its dtypes, if any
    does) are the possible params. If they would give different converted states
    (``target_init``'s), the state does not tell: :data:`AMBIGUOUS`. :data:`NOT_FOUND`
    when no candidate rebuilds the state.
    """
    target = _signature(state)
    subtrees = dict(_subtrees(state))
    candidates = [
        _abstract(subtrees[p]) for p in preferred if p in subtrees and not _has_holes(subtrees[p])
    ]
    for exact in (2, 1):
        for candidate in candidates:
            if _reproduces(init, candidate, target) >= exact:
                return candidate
    seen: set[Any] = set()
    matches: dict[int, list[Any]] = {1: [], 2: []}
    for candidate in [*subtrees.values(), *_PROBES]:
        leaves = jax.tree.leaves(candidate)
        if not all(hasattr(x, "shape") and hasattr(x, "dtype") for x in leaves):
            continue
        if _has_holes(candidate):
            continue
        candidate = _abstract(candidate)
        key = _signature(candidate)
        if key in seen:
            continue
        seen.add(key)
        quality = _reproduces(init, candidate, target)
        if quality:
            matches[quality].append(candidate)
    found = matches[2] or matches[1]
    if not found:
        return NOT_FOUND
    outcomes = set()
    for candidate in found:
        try:
            outcomes.add(_signature(_eval_init(target_init, candidate)))
        except Exception:
            continue
    return found[0] if len(outcomes) <= 1 else AMBIGUOUS


def _preferred_paths_of(tx: GradientTransformation) -> list[str]:
    """The params-shaped fields of ``tx``'s state, from its state for a scalar param."""
    try:
        layout = _eval_init(tx.init, jax.ShapeDtypeStruct((), jnp.float32))
    except Exception:
        return []
    return _preferred_paths(layout)


def _params_for(
    init: Callable[[PyTree], Any],
    state: PyTree,
    params: PyTree | None,
    *,
    where: str,
    owner: str,
    library: str,
    preferred: list[str],
    target_init: Callable[[PyTree], Any],
) -> PyTree:
    """The params to build the template from, after checking that ``state`` fits them.

    Without ``params``, they are inferred from the state; when the state holds nothing
    params-shaped and the other library's state depends on the params (their dtype, for
    injected hyperparameters), they cannot be, and the error asks for them.
    """
    if params is not None:
        try:
            expected = _eval_init(init, params)
        except Exception as error:
            raise StateConversionError(
                f"{where}: {owner}.init failed on the params given "
                f"({describe_params(params)}): {error}"
            ) from error
        if _signature(expected)[:2] == _signature(state)[:2]:
            return params
        inferred = _infer_params(init, state, preferred, target_init)
        if inferred is not NOT_FOUND and inferred is not AMBIGUOUS and inferred is not None:
            raise StateConversionError(
                f"{where}: the {library} state was built for params {describe_params(inferred)}, "
                f"not for the params given, {describe_params(params)}."
            )
        raise StateConversionError(
            f"{where}: the {library} state is not a state of {owner}: for these params "
            f"{owner} has the state {describe_state(expected)}, got {describe_state(state)}. "
            "Was it built by another optimizer?"
        )
    inferred = _infer_params(init, state, preferred, target_init)
    if inferred is NOT_FOUND:
        layout = _layout_of(init, state)
        if layout == describe_state(state):
            raise StateConversionError(
                f"{where}: the {library} state {layout} has the layout of {owner}'s, but no "
                "field of it is shaped like the whole params (as in Adafactor's factored "
                "moments and in masked and partitioned states), so they cannot be inferred "
                "from it: pass params=."
            )
        whose = f" (whose state is {layout})" if layout is not None else ""
        raise StateConversionError(
            f"{where}: the {library} state {describe_state(state)} is not a state of {owner}"
            f"{whose}: no params give {owner} a state of this layout. Was it built by another "
            "optimizer? (If no field of the state is shaped like the whole params, as in "
            "masked and partitioned states, pass params=.)"
        )
    if inferred is AMBIGUOUS:
        raise StateConversionError(
            f"{where}: the {library} state {describe_state(state)} holds no field shaped like "
            "the params, and the converted state depends on them (their dtype or structure): "
            "pass params=."
        )
    return inferred


def _layout_of(init: Callable[[PyTree], Any], state: PyTree) -> str | None:
    """The layout of ``init``'s state (:func:`describe_state`), for an error message;
    ``None`` if ``init`` fails on the probes (a leaf of ``state``, ``None``)."""
    leaves = [x for x in jax.tree.leaves(state) if hasattr(x, "shape") and hasattr(x, "dtype")]
    for params in [*leaves[:1], None]:
        try:
            return describe_state(_eval_init(init, params))
        except Exception:
            continue
    return None


def _child(node: Any, key: Any) -> GradientTransformation | None:
    """The member of the transformation ``node`` whose state is under ``key``, if any."""
    if isinstance(node, Chain) and isinstance(key, SequenceKey):
        return node.transformations[key.idx]
    if isinstance(node, NamedChain) and isinstance(key, DictKey) and key.key in node.names:
        return node.transformations[node.names.index(key.key)]
    if not isinstance(node, GradientTransformation):
        return None
    members = [
        (label, member)
        for _, value in _transformation_fields(node)
        for label, member in _inner_transformations(value)
    ]
    if isinstance(key, DictKey):
        chosen = [m for label, m in members if label == f"{key.key}="]
        return chosen[0] if chosen else None
    if isinstance(key, GetAttrKey) and len(members) == 1:
        return members[0][1]  # a wrapper's inner_state
    return None


def _owner(tx: GradientTransformation, path: tuple[Any, ...]) -> str:
    """The member of ``tx`` that owns the state leaf at ``path``, named with its position."""
    node: Any = tx
    position, node_position = "", ""
    for key in path:
        position += jax.tree_util.keystr((key,))
        child = _child(node, key)
        if child is not None:
            node, node_position = child, position
    if node is tx:
        return describe_transformation(tx)
    return f"{describe_transformation(node)} (at {node_position} in {describe_transformation(tx)})"


def _transplant(
    source: PyTree,
    template: PyTree,
    tx: GradientTransformation,
    where: str,
    source_name: str,
    target_name: str,
) -> Any:
    """``template``'s containers filled with ``source``'s leaves, matched by key path."""
    source_leaves, _ = jax.tree_util.tree_flatten_with_path(source)
    template_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    values = {jax.tree_util.keystr(p): leaf for p, leaf in source_leaves}
    source_paths = {jax.tree_util.keystr(p): p for p, _ in source_leaves}
    target_paths = {jax.tree_util.keystr(p): p for p, _ in template_leaves}
    for paths, other, has, lacks in (
        (target_paths, source_paths, target_name, source_name),
        (source_paths, target_paths, source_name, target_name),
    ):
        only = [k for k in paths if k not in other]
        if only:
            raise StateConversionError(
                f"{where}: {_owner(tx, paths[only[0]])}: the {has} has {only[0]}, which the "
                f"{lacks} lacks (no counterpart for it)"
                + (f" (nor for {', '.join(only[1:4])})" if len(only) > 1 else "")
                + f". {source_name}: {describe_state(source)}; {target_name}: "
                f"{describe_state(template)}."
            )
    leaves = []
    for path, reference in template_leaves:
        key = jax.tree_util.keystr(path)
        value = values[key]
        shape, target_shape = tuple(np.shape(value)), tuple(reference.shape)
        if shape != target_shape:
            raise StateConversionError(
                f"{where}: {_owner(tx, path)}: at {key} the {source_name} has shape {shape} "
                f"but the {target_name} has shape {target_shape}."
            )
        dtype, target_dtype = jnp.result_type(value), reference.dtype
        if dtype != target_dtype:
            if not np.can_cast(dtype, target_dtype, casting="same_kind"):
                raise StateConversionError(
                    f"{where}: {_owner(tx, path)}: at {key} the {source_name} has dtype "
                    f"{np.dtype(dtype).name}, which does not convert to the {target_name}'s "
                    f"{np.dtype(target_dtype).name} without losing its kind."
                )
            value = jnp.asarray(value).astype(target_dtype)
        leaves.append(value)
    return jax.tree_util.tree_unflatten(treedef, leaves)
