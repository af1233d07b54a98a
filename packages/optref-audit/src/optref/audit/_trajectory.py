"""Running a transformation (of either library) along a problem, step by step."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from ._problems import PROBLEMS, Problem, descent_gradient
from ._together import call_together

__all__ = [
    "Run",
    "Trajectory",
    "extra_arguments",
    "flatten_state",
    "run_forced",
    "run_trajectories",
    "run_trajectory",
    "step_params",
    "update_once",
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


@dataclasses.dataclass(frozen=True)
class Run:
    """One trajectory to run: ``tx`` from ``params`` on ``problem``.

    ``step_scale`` multiplies the updates before they are applied; ``extra_args`` names
    the extra arguments of ``update`` the case asks for (``value``, ``grad``, ``value_fn``).
    """

    tx: Any
    problem: Problem
    params: PyTree
    step_scale: float = 1.0
    extra_args: tuple[str, ...] = ()


def update_once(
    tx: Any, grads: PyTree, state: PyTree, params: PyTree, extra: dict, value_fn: Any
) -> tuple:
    """``tx.update(grads, state, params, **extra)``, with ``value_fn`` among the extra
    arguments where it is not ``None`` (a function is static: it cannot be in ``extra``,
    which holds arrays)."""
    if value_fn is not None:
        extra = {**extra, "value_fn": value_fn}
    return tx.update(grads, state, params, **extra)


def _step(
    tx: Any,
    params: PyTree,
    state: PyTree,
    grads: PyTree,
    extra: dict,
    value_fn: Any,
    step_scale: float,
) -> tuple:
    updates, state = update_once(tx, grads, state, params, extra, value_fn)
    return step_params(params, updates, step_scale), state, updates


def _extra(run: Run, params: PyTree, grads: PyTree) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if "value" in run.extra_args:
        extra["value"] = _compiled_value(run.problem.name)(params)
    if "grad" in run.extra_args:
        extra["grad"] = grads
    return extra


def run_trajectories(
    runs: Sequence[Run], steps: int, *, fast_compile: bool = False
) -> list[Trajectory | Exception]:
    """Run every one of ``runs`` for ``steps`` steps, side by side (compiled with
    :data:`~optref.audit._together.FAST_COMPILE` where ``fast_compile``).

    At each step the updates of all runs are one compiled program
    (:func:`~optref.audit._together.call_together`), the same program at every step; the
    transformations are arguments of it, not closed-over constants, so their
    hyperparameters stay data, as in a user's jitted step. The problems' gradients are
    compiled once per problem and shared by every run. A run whose transformation raises
    is that exception, and the others go on.
    """
    out: list[Trajectory | Exception] = [Trajectory([], [], [], []) for _ in runs]
    params = [run.params for run in runs]
    states: list[Any] = [None] * len(runs)
    for i, run in enumerate(runs):
        try:
            states[i] = run.tx.init(run.params)
        except Exception as error:
            out[i] = error
    for _ in range(steps):
        live = [i for i, o in enumerate(out) if isinstance(o, Trajectory)]
        grads = {i: _compiled_gradient(runs[i].problem.name)(params[i]) for i in live}
        calls = []
        for i in live:
            run = runs[i]
            value_fn = run.problem.loss if "value_fn" in run.extra_args else None
            extra = _extra(run, params[i], grads[i])
            calls.append(
                (_step, (run.tx, params[i], states[i], grads[i], extra, value_fn, run.step_scale))
            )
        host_params = jax.device_get([params[i] for i in live])
        host_grads = jax.device_get([grads[i] for i in live])
        results = call_together(calls, fast_compile=fast_compile)
        for i, result, p, g in zip(live, results, host_params, host_grads, strict=True):
            if isinstance(result, Exception):
                out[i] = result
                continue
            params[i], states[i], updates = result
            trajectory = out[i]
            assert isinstance(trajectory, Trajectory)
            trajectory.params.append(p)
            trajectory.grads.append(g)
            trajectory.updates.append(jax.device_get(updates))
            trajectory.states.append(jax.device_get(states[i]))
    return out


def run_trajectory(
    tx: Any,
    problem: Problem,
    params: PyTree,
    steps: int,
    *,
    step_scale: float = 1.0,
    extra_args: tuple[str, ...] = (),
) -> Trajectory:
    """Run ``tx`` (an optref or an Optax transformation) for ``steps`` steps from ``params``:
    :func:`run_trajectories` for one run, raising what the transformation raises."""
    (result,) = run_trajectories([Run(tx, problem, params, step_scale, extra_args)], steps)
    if isinstance(result, Exception):
        raise result
    return result


@functools.cache
def _compiled_gradient(name: str) -> Any:
    return jax.jit(functools.partial(descent_gradient, PROBLEMS[name].loss))


@functools.cache
def _compiled_value(name: str) -> Any:
    return jax.jit(PROBLEMS[name].loss)


def run_forced(
    forced: Sequence[tuple[Any, Run, Trajectory]], *, fast_compile: bool = False
) -> list[Trajectory | Exception]:
    """Run each ``tx`` of ``forced = [(tx, reference, trajectory), ...]`` on the params and
    gradients of ``trajectory`` (a run of ``reference``) instead of its own, all in one
    compiled program per step (the trajectories have the same length; with
    :data:`~optref.audit._together.FAST_COMPILE` where ``fast_compile``).

    Each step gets the same inputs the reference run got, so the libraries are compared
    on identical inputs: rounding differences cannot feed back through the params into
    the gradients and grow. A transformation whose ``init`` or ``update`` raises is that
    exception (nothing else is caught: the runner's own errors propagate); an empty
    trajectory is a ``ValueError``.
    """
    if any(not trajectory.params for _, _, trajectory in forced):
        raise ValueError("run_forced: a trajectory to follow has no steps")
    out: list[Trajectory | Exception] = [Trajectory([], [], [], []) for _ in forced]
    states: list[Any] = [None] * len(forced)
    for i, (tx, _, trajectory) in enumerate(forced):
        first_params = trajectory.params[0]
        try:  # around the transformation's call alone: what it raises is its own
            states[i] = tx.init(first_params)
        except Exception as error:
            out[i] = error
    for step in range(len(forced[0][2].params) if forced else 0):
        live = [i for i, o in enumerate(out) if isinstance(o, Trajectory)]
        calls = []
        for i in live:
            tx, reference, trajectory = forced[i]
            params, grads = trajectory.params[step], trajectory.grads[step]
            value_fn = reference.problem.loss if "value_fn" in reference.extra_args else None
            extra = _extra(reference, params, grads)
            calls.append((update_once, (tx, grads, states[i], params, extra, value_fn)))
        for i, result in zip(live, call_together(calls, fast_compile=fast_compile), strict=True):
            if isinstance(result, Exception):
                out[i] = result
                continue
            updates, states[i] = result
            run = out[i]
            assert isinstance(run, Trajectory)
            run.params.append(forced[i][2].params[step])
            run.grads.append(forced[i][2].grads[step])
            run.updates.append(jax.device_get(updates))
            run.states.append(jax.device_get(states[i]))
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
