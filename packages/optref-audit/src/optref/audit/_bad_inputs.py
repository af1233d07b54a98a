"""Bad input, named: the malformed calls users make, and the error each must give.

For a conformance case, :func:`bad_inputs` builds the calls a user gets wrong (updates
whose structure differs from the state's, a state of another optimizer, integer params,
``None`` where an array is expected, a NaN hyperparameter, ...). :func:`check_bad_input`
says whether the error raised is the one promised: of the expected class, at trace or
construction time, starting with the name of the transformation (or of the member of a
chain) that refused the input, and naming the argument or the PyTree path at fault.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from optref.core import (
    GradientTransformation,
    HyperparameterError,
    StateMismatchError,
    TreeMismatchError,
    adam,
    sgd,
)
from optref.core._hyperparameters import transformation_name
from optref.core.conformance import Case

from ._cases import build
from ._problems import PROBLEMS, descent_gradient
from ._trajectory import extra_arguments

__all__ = ["BadInput", "bad_inputs", "check_bad_input", "outcome", "transformation_names"]


@dataclasses.dataclass(frozen=True)
class BadInput:
    """One malformed call and what it must give.

    Attributes:
        kind: the kind of mistake (``"missing key"``, ``"integer params"``, ...).
        call: makes the call; returns its result or raises.
        errors: the exception classes that may be raised.
        fragments: what the message must contain (a path, an argument, a dtype).
        accepted: whether the call may also succeed, because the input is valid for
            this transformation (``params=None`` where the params are not read).
        factory: the name of the factory called, which the message may start with
            instead of a transformation's (an alias names itself and its argument).
    """

    kind: str
    call: Callable[[], Any]
    errors: tuple[type[BaseException], ...]
    fragments: tuple[str, ...] = ()
    accepted: bool = False
    factory: str | None = None


def transformation_names() -> set[str]:
    """The names of every transformation class defined so far (``scale_by_adam``, ...).

    An error names the transformation that refused the input, which for an alias is a
    member of its chain and for a wrapper may be the transformation it wraps.
    """
    names: set[str] = set()
    stack = [GradientTransformation]
    while stack:
        cls = stack.pop()
        names.add(transformation_name(cls))
        stack.extend(cls.__subclasses__())
    return names


def _with_first_leaf(tree: Any, replace: Callable[[jax.Array], Any]) -> tuple[Any, str]:
    """``tree`` with its first leaf replaced, and that leaf's path."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    path, first = leaves[0]
    new = [replace(first)] + [leaf for _, leaf in leaves[1:]]
    return jax.tree_util.tree_unflatten(treedef, new), jax.tree_util.keystr(path)


def _other_state(tx: Any, params: Any) -> Any:
    """The state of an optimizer other than ``tx`` (a different state tree)."""
    own = jax.tree.structure(tx.init(params))
    for other in (adam(1e-3), sgd(1e-3, momentum=0.9)):
        state = other.init(params)
        if jax.tree.structure(state) != own:
            return state
    raise AssertionError("no other optimizer has a state of another kind")


# Transformations made of a user's function: whether it accepts params=None is its own.
_USER_FUNCTIONS = {"optref.core.stateless", "optref.core.stateless_with_tree_map"}
# Transformations whose arguments name the params (regex patterns on their paths): on a
# tuple of the leaves, named [0], [1], ..., no pattern matches and init refuses them.
_NAMES_PARAMS = {"optref.masking.param_groups"}


def bad_inputs(case: Case, dtype: Any = jnp.float32) -> list[BadInput]:
    """The bad inputs of ``case``'s optref transformation on its first problem."""
    problem = PROBLEMS[case.problems[0]]
    tx = build(case, "optref")
    params = problem.init(dtype)
    grads = descent_gradient(problem.loss, params)
    state = tx.init(params)

    def update(updates: Any, state: Any = state, params: Any = params) -> Callable[[], Any]:
        extra = extra_arguments(case.extra_args, problem, params, updates)
        return lambda: tx.update(updates, state, params, **extra)

    out: list[BadInput] = []
    if isinstance(grads, Mapping):
        key = sorted(grads)[0]
        missing = {k: v for k, v in grads.items() if k != key}
        out.append(BadInput("missing key", update(missing), (TreeMismatchError,), (f"['{key}']",)))
        extra_key = {**grads, "unexpected": jnp.zeros(2, dtype)}
        out.append(
            BadInput("extra key", update(extra_key), (TreeMismatchError,), ("['unexpected']",))
        )
        with_none = {**grads, key: None}
        out.append(
            BadInput(
                "None instead of an array",
                update(with_none),
                (TreeMismatchError,),
                (f"['{key}']",),
            )
        )
    reshaped, path = _with_first_leaf(grads, lambda x: jnp.zeros((*x.shape, 2), x.dtype))
    out.append(BadInput("wrong leaf shape", update(reshaped), (TreeMismatchError,), (path,)))
    integer, path = _with_first_leaf(grads, lambda x: jnp.ones(x.shape, jnp.int32))
    out.append(BadInput("integer updates", update(integer), (TypeError,), (path, "int32")))
    fixes_structure = case.optref in _NAMES_PARAMS or any(
        isinstance(v, Mapping) for v in case.kwargs.values()
    )
    if not case.extra_args and not fixes_structure:
        # A mask or a label tree, patterns on the params' names, or a loss (for value and
        # value_fn) fixes the params' structure; every other case runs on a tuple of the
        # leaves too, with the updates given as a list.
        leaves = tuple(jax.tree.leaves(params))
        as_list = list(jax.tree.leaves(grads))
        out.append(
            BadInput(
                "list instead of a tuple",
                update(as_list, tx.init(leaves), leaves),
                (TreeMismatchError,),
                ("list", "tuple"),
            )
        )
    out.append(
        BadInput(
            "state of another optimizer",
            update(grads, _other_state(tx, params)),
            # A wrapper without a state of its own (flatten) passes the state to the
            # transformation it wraps, which finds it does not fit.
            (StateMismatchError, TreeMismatchError),
            ("state",),
        )
    )
    for kind, leaf_dtype in (("integer params", jnp.int32), ("boolean params", jnp.bool_)):
        bad_params, path = _with_first_leaf(params, lambda x, d=leaf_dtype: jnp.ones(x.shape, d))
        out.append(
            BadInput(
                kind,
                lambda p=bad_params: tx.init(p),
                (TypeError,),
                (path, jnp.dtype(leaf_dtype).name),
            )
        )
    wide = jax.tree.map(lambda x: x.astype(jnp.float64), params)
    out.append(
        BadInput(
            "state built for other dtypes",
            update(jax.tree.map(lambda x: x.astype(jnp.float64), grads), state, wide),
            (TreeMismatchError,),
            ("dtype",),
            accepted=True,
        )
    )
    if case.optref not in _USER_FUNCTIONS:
        out.append(
            BadInput(
                "params=None",
                lambda: tx.update(
                    grads, state, None, **extra_arguments(case.extra_args, problem, params, grads)
                ),
                (ValueError, TypeError),
                ("needs params",),
                accepted=True,
            )
        )
    # The message names the argument that was given the value: for an alias, the alias's
    # own (sgd's momentum, followed by its member's name for it, trace's decay).
    for name, value in case.kwargs.items():
        if isinstance(value, float) and not isinstance(value, bool):
            out.append(
                BadInput(
                    f"NaN {name}",
                    lambda name=name: build(case, "optref", **{name: math.nan}),
                    (HyperparameterError,),
                    ("must", "got nan"),
                    factory=case.optref.rsplit(".", 1)[-1],
                )
            )
    return out


def outcome(bad: BadInput) -> tuple[str, str]:
    """``(exception class name, message)``, or ``("accepted", "")`` if the call succeeds."""
    try:
        jax.block_until_ready(bad.call())
    except Exception as error:
        return type(error).__name__, str(error)
    return "accepted", ""


def check_bad_input(bad: BadInput) -> str | None:
    """What is wrong with the error ``bad`` gives (``None`` if it is the promised one)."""
    names = transformation_names() | ({bad.factory} if bad.factory else set())
    try:
        jax.block_until_ready(bad.call())
    except bad.errors as error:
        message = str(error)
        match = re.match(r"^(\w+): ", message)
        if match is None or match.group(1) not in names:
            return f"{bad.kind}: the message does not start with a transformation's name: {message}"
        lowered = message.lower()
        absent = [f for f in bad.fragments if f.lower() not in lowered]
        if absent:
            return f"{bad.kind}: the message lacks {absent}: {message}"
        return None
    except Exception as error:
        return f"{bad.kind}: raised {type(error).__name__} instead of {bad.errors}: {error}"
    if bad.accepted:
        return None
    return f"{bad.kind}: accepted without an error"
