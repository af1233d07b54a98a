"""Running a transformation (of either library) along a problem, step by step."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from ._problems import PROBLEMS, Problem, descent_gradient

__all__ = [
    "Trajectory",
    "extra_arguments",
    "flatten_state",
    "jitted_step",
    "jitted_update",
    "run_forced",
    "run_trajectory",
    "step_params",
]


@dataclasses.dataclass
class Trajectory:
    """What a run produced: at each step the params before it, the gradient fed in, the
    updates returned and the state after it (all copied to the host)."""

    params: list[PyTree]
    grads: list[PyTree]
    updates: list[PyTree]
    states: list[PyTree]


def extra_arguments(
    names: tuple[str, ...], problem: Problem, params: PyTree, grads: PyTree
) -> dict:
    """The extra keyword arguments of ``update`` that a case asks for."""
    extra: dict[str, Any] = {}
    if "value" in names:
        extra["value"] = problem.loss(params)
    if "grad" in names:
        extra["grad"] = grads
    if "value_fn" in names:
        extra["value_fn"] = problem.loss
    return extra


def step_params(params: PyTree, updates: PyTree, step_scale: float) -> PyTree:
    """``params + step_scale * updates``, each leaf kept in its dtype."""
    return jax.tree.map(
        lambda p, u: (p + jnp.asarray(step_scale, jnp.real(p).dtype) * u.astype(p.dtype)).astype(
            p.dtype
        ),
        params,
        updates,
    )


def _step(
    tx: Any,
    params: PyTree,
    state: PyTree,
    grads: PyTree,
    extra: dict,
    value_fn: Any,
    step_scale: float,
) -> tuple:
    if value_fn is not None:
        extra = {**extra, "value_fn": value_fn}
    updates, state = tx.update(grads, state, params, **extra)
    return step_params(params, updates, step_scale), state, updates


def _update(tx: Any, grads: PyTree, state: PyTree, params: PyTree, extra: dict, value_fn: Any):
    if value_fn is not None:
        extra = {**extra, "value_fn": value_fn}
    return tx.update(grads, state, params, **extra)


# Compiled once per module: the transformation is an argument, not a closed-over constant,
# so its hyperparameters stay data, as in a user's jitted step (XLA cannot fold them into
# the arithmetic), and every run of the same transformation on the same shapes reuses one
# compilation (a case's checks run its transformations many times). ``init`` runs op by
# op: its few operations are compiled once per shape for every case together.
jitted_step = eqx.filter_jit(_step)
jitted_update = eqx.filter_jit(_update)


def run_trajectory(
    tx: Any,
    problem: Problem,
    params: PyTree,
    steps: int,
    *,
    step_scale: float = 1.0,
    extra_args: tuple[str, ...] = (),
) -> Trajectory:
    """Run ``tx`` (an optref or an Optax transformation) for ``steps`` steps from ``params``.

    The problem's gradient is compiled once per problem and shared by every run; the
    transformation's step once per transformation and shapes.
    """
    value_fn = problem.loss if "value_fn" in extra_args else None
    gradient = _compiled_gradient(problem.name)
    value = _compiled_value(problem.name)
    state = tx.init(params)
    out = Trajectory([], [], [], [])
    for _ in range(steps):
        out.params.append(jax.device_get(params))
        grads = gradient(params)
        extra: dict[str, Any] = {}
        if "value" in extra_args:
            extra["value"] = value(params)
        if "grad" in extra_args:
            extra["grad"] = grads
        params, state, updates = jitted_step(tx, params, state, grads, extra, value_fn, step_scale)
        out.grads.append(jax.device_get(grads))
        out.updates.append(jax.device_get(updates))
        out.states.append(jax.device_get(state))
    return out


@functools.cache
def _compiled_gradient(name: str) -> Any:
    return jax.jit(functools.partial(descent_gradient, PROBLEMS[name].loss))


@functools.cache
def _compiled_value(name: str) -> Any:
    return jax.jit(PROBLEMS[name].loss)


def run_forced(
    tx: Any, problem: Problem, reference: Trajectory, *, extra_args: tuple[str, ...] = ()
) -> Trajectory:
    """Run ``tx`` on the params and gradients of ``reference`` instead of its own.

    Each step gets the same inputs the reference run got, so the two libraries are
    compared on identical inputs: rounding differences cannot feed back through the
    params into the gradients and grow.
    """
    value_fn = problem.loss if "value_fn" in extra_args else None
    value = _compiled_value(problem.name)
    state = tx.init(reference.params[0])
    out = Trajectory([], [], [], [])
    for params, grads in zip(reference.params, reference.grads, strict=True):
        extra: dict[str, Any] = {}
        if "value" in extra_args:
            extra["value"] = value(params)
        if "grad" in extra_args:
            extra["grad"] = grads
        updates, state = jitted_update(tx, grads, state, params, extra, value_fn)
        out.params.append(params)
        out.grads.append(grads)
        out.updates.append(jax.device_get(updates))
        out.states.append(jax.device_get(state))
    return out


def flatten_state(state: PyTree) -> dict[str, np.ndarray]:
    """The leaves of a state keyed by path (``[0].mu['w']``), the same for both libraries:
    optref's state modules and Optax's state tuples both flatten to attribute keys."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(path): np.asarray(_key_data(leaf)) for path, leaf in leaves}


def _key_data(leaf: Any) -> Any:
    """A typed PRNG key as its raw data (keys have no NumPy form); other leaves as they are."""
    if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(leaf)
    return leaf
