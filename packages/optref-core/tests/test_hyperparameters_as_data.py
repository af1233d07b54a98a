"""Hyperparameters as data: no recompiles, sweeps with vmap, gradients through K steps.

Every transformation case of ``optref.core.conformance`` is checked. The cheap check
(building with other hyperparameter values keeps the jit cache key) runs for every case in
the default session; the checks that compile a training step, its vmap and its gradient
run for a few representative cases by default and for every case under ``-m slow``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc
from optref.core.conformance import (
    CASES,
    Case,
    build,
    build_argument,
    central_difference,
    resolve_name,
)

jax.config.update("jax_enable_x64", True)

STEPS = 3
BATCH = 3
#: Factors applied to every float hyperparameter of a case: the members of a sweep.
FACTORS = (1.0, 0.5, 0.8)

TRANSFORMATION_CASES = [case for case in CASES if case.kind == "transformation"]
#: Run in the default session by the checks that compile; the rest are marked slow.
REPRESENTATIVE = {"core.adamw", "core.inject_hyperparams-adamw"}


def _params(problem: str = "quadratic") -> Any:
    """Small float64 params with the tree structure of a conformance problem (the masks
    in the cases are written for these structures)."""
    rng = np.random.default_rng(0)

    def draw(*shape: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape))

    if problem == "mlp":
        return {"hidden": {"w": draw(3, 4), "b": draw(4)}, "head": {"w": draw(4, 1), "b": draw(1)}}
    if problem == "rosenbrock":
        return draw(4)
    return {"w": draw(5), "b": draw()}


def _loss(params: Any) -> jax.Array:
    """A smooth, non-quadratic loss of any tree: sum of c (x - 1)^2 / 2 + log(1 + x^2), with
    curvatures c from 1 to 4 (its gradient grows no faster than the quadratic's, so no
    case's step size makes it blow up in a few steps)."""
    total = jnp.zeros(())
    for leaf in jax.tree.leaves(params):
        c = jnp.linspace(1.0, 4.0, leaf.size).reshape(leaf.shape)
        total = total + jnp.sum(0.5 * c * (leaf - 1.0) ** 2 + jnp.log1p(leaf**2))
    return total


def _trainer(
    step_scale: float = 1.0, extra_args: tuple[str, ...] = ()
) -> Callable[[Any, Any], tuple[jax.Array, Any]]:
    """``train(tx, params) -> (final loss, final params)`` after ``STEPS`` steps of ``tx``:
    ``params + step_scale * updates``, with the ``update`` keyword arguments named."""

    def train(tx: Any, params: Any) -> tuple[jax.Array, Any]:
        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(_loss)(params)
            extra = {"value": value} if "value" in extra_args else {}
            updates, state = tx.update(grads, state, params, **extra)
            params = jax.tree.map(lambda p, u: p + step_scale * u, params, updates)
            return (params, state), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), length=STEPS)
        return _loss(params), params

    return train


def _float_arguments(case: Case) -> dict[str, float]:
    """The case's float-valued arguments: its own and the factory's float defaults."""
    parameters = inspect.signature(resolve_name(case.optref)).parameters
    values = {
        name: p.default
        for name, p in parameters.items()
        if isinstance(p.default, float) and name not in case.kwargs
    }
    values.update({k: v for k, v in case.kwargs.items() if isinstance(v, float)})
    return values


_SHARED: dict[str, dict[str, Any]] = {}


def _shared_arguments(case: Case) -> dict[str, Any]:
    """The case's other arguments, built once: a schedule or mask function is a static
    leaf, so it must be the same object in every variant (a new closure is a new key)."""
    if case.name not in _SHARED:
        floats = _float_arguments(case)
        _SHARED[case.name] = {
            k: build_argument(v, "optref") for k, v in case.kwargs.items() if k not in floats
        }
    return _SHARED[case.name]


def _build(case: Case, **overrides: Any) -> Any:
    """The case's transformation, with its shared arguments and ``overrides``."""
    return build(case, **{**_shared_arguments(case), **overrides})


def _scaled(value: float, factor: float) -> float:
    """``value`` moved by ``factor`` toward zero if ``|value| <= 1``, away from it
    otherwise, so it stays in its range (betas in [0, 1], thresholds and growth factors
    above 1)."""
    return value * factor if abs(value) <= 1 else value / factor


def _variant(case: Case, factor: float) -> Any:
    """The case's transformation with every float argument moved by ``factor``."""
    return _build(case, **{k: _scaled(v, factor) for k, v in _float_arguments(case).items()})


def _case_trainer(case: Case) -> Callable[[Any, Any], tuple[jax.Array, Any]]:
    return _trainer(case.step_scale, case.extra_args)


def _member_params(index: int, problem: str = "quadratic") -> Any:
    return jax.tree.map(lambda p: p + 0.1 * index, _params(problem))


def _counted(fn: Callable) -> tuple[Callable, list[int]]:
    """``fn`` and a list whose length counts the traces of ``fn`` (one per compilation)."""
    traces: list[int] = []

    @functools.wraps(fn)
    def counted(*args):
        traces.append(1)
        return fn(*args)

    return counted, traces


#: The most a vmapped member may differ from its separate run, in units of float64's
#: epsilon times the leaf's largest magnitude (measured over every other case: at most
#: 9.3, for core.scale_by_stddev-bias_correction). XLA:CPU vectorises the batched
#: program's elementwise loops differently (vector width, remainder loop, FMA contraction)
#: and its vector and scalar code for pow round differently; with
#: ``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2`` some of them vanish (adamw, rmsprop).
SWEEP_ULPS = 16


def _assert_same_run(batched: Any, separate: Any, label: str):
    """A vmapped member's (loss, params) equal its separate run's, to ``SWEEP_ULPS`` ulps
    of the leaf's largest magnitude."""
    relative = SWEEP_ULPS * np.finfo(np.float64).eps
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(separate), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        bound = relative * max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
        assert np.all(np.abs(a - b) <= bound), (label, float(np.max(np.abs(a - b))), bound)


def _all_leaves_arrays(tree: Any) -> bool:
    return all(eqx.is_array(leaf) for leaf in jax.tree.leaves(tree))


def _compiled_params(case: Case, representative: set[str] = REPRESENTATIVE):
    if case.name in representative:
        return case
    return pytest.param(case, marks=pytest.mark.slow)


def _case_id(case: Case) -> str:
    return case.name


# --- No recompiles --------------------------------------------------------------------


@pytest.mark.parametrize("case", TRANSFORMATION_CASES, ids=_case_id)
def test_other_values_keep_the_jit_cache_key(case):
    """Every float argument becomes an array leaf: transformations built with other values
    have the same static part and the same leaf shapes and dtypes, so ``eqx.filter_jit``
    traces a function of them once."""
    probe, traces = _counted(lambda tx: jnp.zeros(()))
    probe = eqx.filter_jit(probe)
    arguments = _float_arguments(case)
    variants = [_variant(case, factor) for factor in FACTORS]
    # Each float argument changed alone, too: none of them may be a static field.
    variants += [_build(case, **{name: _scaled(v, 0.5)}) for name, v in arguments.items()]
    for tx in variants:
        probe(tx)
    assert len(traces) == 1, (case.name, sorted(arguments))


@pytest.mark.parametrize("case", [_compiled_params(c) for c in TRANSFORMATION_CASES], ids=_case_id)
def test_training_step_compiles_once_and_sweep_matches_separate_runs(case):
    """One ``eqx.filter_jit`` (and, where every leaf is an array, one ``jax.jit``) trace
    for runs with different learning rates, betas and weight decays; then the vmapped
    sweep of those optimizers, each with its own params, gives the separate runs' numbers
    (bit for bit, or within ``SWEEP_ULPS``: see :func:`_assert_same_run`)."""
    train, traces = _counted(_case_trainer(case))
    filter_jitted = eqx.filter_jit(train)
    variants = [_variant(case, factor) for factor in FACTORS]
    params = [_member_params(i, case.problems[0]) for i in range(BATCH)]
    separate = [filter_jitted(tx, p) for tx, p in zip(variants, params, strict=True)]
    assert len(traces) == 1
    if _all_leaves_arrays(variants[0]):
        jitted = jax.jit(train)
        for tx, p, (loss, _) in zip(variants, params, separate, strict=True):
            np.testing.assert_array_equal(jitted(tx, p)[0], loss)
        assert len(traces) == 2

    arguments = _float_arguments(case)
    batch = (
        oc.sweep(
            functools.partial(_build, case),
            **{name: [_scaled(value, f) for f in FACTORS] for name, value in arguments.items()},
        )
        if arguments
        else oc.stack_transformations(variants)
    )
    stacked_params = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    batched = eqx.filter_jit(eqx.filter_vmap(train))(batch, stacked_params)
    for i, run in enumerate(separate):
        member = jax.tree.map(lambda x: x[i], batched)
        _assert_same_run(member, run, f"{case.name}[{i}]")


def test_tree_at_changes_a_hyperparameter_between_steps():
    """``eqx.tree_at`` with an array of the leaf's dtype replaces a hyperparameter between
    two steps of one compiled step: the second step is the one a fresh ``adam(new_lr)``
    takes from the same state, and nothing recompiles. A Python float put in its place
    would be a static leaf, a new cache key."""
    step, traces = _counted(lambda tx, g, s: tx.update(g, s))
    step = eqx.filter_jit(step)
    params = _params()
    grads = jax.grad(_loss)(params)
    tx = oc.adam(1e-2)
    _, state = step(tx, grads, tx.init(params))
    where = lambda t: t.transformations[-1].learning_rate  # noqa: E731
    faster = eqx.tree_at(where, tx, jnp.asarray(3e-2, where(tx).dtype))
    updates, _ = step(faster, grads, state)
    expected, _ = step(oc.adam(3e-2), grads, state)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(traces) == 1
    step(eqx.tree_at(where, tx, 3e-2), grads, state)
    assert len(traces) == 2


# --- Gradients with respect to hyperparameters ----------------------------------------

#: The agreement asked of the extrapolated central difference beyond its truncation and
#: rounding estimates (see ``optref.core.conformance.CentralDifference.tolerance``).
FD_RTOL = 1e-6
#: The most the differences' own error estimate may be, relative to the derivative: a check
#: that could not tell a derivative from one 0.1% off is not a check. (A derivative far
#: below max|f| / distance-to-range-end, as a tiny eps has, is under the rounding of f.)
FD_RESOLUTION = 1e-3


def _assert_central_difference(
    gradient: Any, f: Callable[[Any], jax.Array], x: jax.Array, label: str
) -> None:
    """``gradient`` (df/dx at ``x``) is finite, not zero (a hyperparameter whose derivative
    is zero at the point, e.g. an inactive clamp, would make the comparison vacuous) and
    equals the Richardson-extrapolated central difference of ``f`` at ``x``, whose step is
    relative to the distance from ``x`` to the end of its range (``b2 = 0.999`` is stepped
    by 1e-7), to ``FD_RTOL`` plus the differences' truncation and rounding estimates,
    which must themselves be below ``FD_RESOLUTION`` of the derivative."""
    assert np.isfinite(gradient), (label, gradient)
    assert gradient != 0, (label, "the derivative is zero at this point")
    difference = central_difference(f, x)
    resolution = difference.error_estimate / abs(float(gradient))
    assert resolution <= FD_RESOLUTION, (label, "the differences cannot resolve it", resolution)
    assert difference.agrees(float(gradient), FD_RTOL), (
        label,
        float(gradient),
        difference.extrapolated,
        difference.tolerance(float(gradient), FD_RTOL),
    )


def _leaf_of(case: Case, values: dict[str, jax.Array], name: str) -> str | None:
    """The path of the leaf of the case's transformation that holds the argument ``name``
    itself: the one leaf that changes when it does, equal to its value before and after.
    ``None`` where the factory derives leaves from it instead (``sm3`` stores
    ``-learning_rate``, whose gradient is the argument's with the sign flipped)."""

    def leaves(tx: Any) -> dict[str, Any]:
        flat = jax.tree_util.tree_flatten_with_path(tx)[0]
        return {jax.tree_util.keystr(path): leaf for path, leaf in flat if eqx.is_array(leaf)}

    moved = {**values, name: jnp.asarray(_scaled(float(values[name]), 0.5))}
    before, after = leaves(_build(case, **values)), leaves(_build(case, **moved))
    changed = [p for p in before if not bool(jnp.array_equal(before[p], after[p]))]
    if len(changed) != 1:
        return None
    path = changed[0]
    holds_the_argument = bool(jnp.all(before[path] == values[name])) and bool(
        jnp.all(after[path] == moved[name])
    )
    return path if holds_the_argument else None


def _check_hypergradient(case: Case, train: Callable, params: Any, names: tuple[str, ...]):
    defaults = _float_arguments(case)
    values = {name: jnp.asarray(defaults[name]) for name in names}

    @jax.jit
    def loss_and_grad(hyper: dict[str, jax.Array]):
        return jax.value_and_grad(lambda h: train(_build(case, **h), params)[0])(hyper)

    _, grads = loss_and_grad(values)
    # The same gradient reaches the transformation's own leaves, where an argument is
    # stored as one leaf (some factories derive leaves from it: see _leaf_of).
    by_leaf = eqx.filter_jit(eqx.filter_grad(lambda t: train(t, params)[0]))(_build(case, **values))
    gradients = {
        jax.tree_util.keystr(path): g
        for path, g in jax.tree_util.tree_flatten_with_path(by_leaf)[0]
    }
    for name in names:
        path = _leaf_of(case, values, name)
        if path is not None:
            assert gradients[path] == grads[name], (case.name, name, path)

        def f(x: jax.Array, name: str = name) -> jax.Array:
            return loss_and_grad({**values, name: x})[0]

        _assert_central_difference(grads[name], f, values[name], f"{case.name}: {name}")


DIFFERENTIABLE_CASES = [c for c in TRANSFORMATION_CASES if c.hyperparameters]


@pytest.mark.parametrize(
    "case", [_compiled_params(c, {"core.adamw"}) for c in DIFFERENTIABLE_CASES], ids=_case_id
)
def test_hypergradient_through_steps_matches_central_differences(case):
    """d(loss after K steps)/d(hyperparameter), for the case's differentiable
    hyperparameters, is finite and equals central differences in float64."""
    _check_hypergradient(case, _case_trainer(case), _params(case.problems[0]), case.hyperparameters)


# --- Combinators: chain and inject_hyperparams ----------------------------------------


def _chained_sgd(learning_rate, momentum, weight_decay, max_norm):
    """Clipping, weight decay and injected SGD with momentum: every hyperparameter acts
    on the update (the gradient norm exceeds ``max_norm``, so clipping is active)."""
    return oc.chain(
        oc.clip_by_global_norm(max_norm),
        oc.add_decayed_weights(weight_decay),
        oc.inject_hyperparams(oc.sgd)(learning_rate=learning_rate, momentum=momentum),
    )


def test_sweep_and_hypergradient_through_chain_and_injection():
    """A sweep of ``chain(clip_by_global_norm, add_decayed_weights,
    inject_hyperparams(sgd))`` over four hyperparameters gives the separate runs' numbers,
    and its hypergradients match central differences; the injected hyperparameters read
    back from the batched state."""
    train = _trainer()
    values = {
        "learning_rate": [0.01, 0.03, 0.1],
        "momentum": [0.0, 0.5, 0.9],
        "weight_decay": [0.0, 0.05, 0.1],
        "max_norm": [0.5, 1.0, 2.0],
    }
    batch = oc.sweep(_chained_sgd, **values)
    params = [_member_params(i) for i in range(BATCH)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    batched = eqx.filter_jit(eqx.filter_vmap(train))(batch, stacked)
    states = eqx.filter_vmap(lambda tx, p: tx.init(p))(batch, stacked)
    np.testing.assert_array_equal(
        oc.tree_get(states, "learning_rate"), jnp.asarray(values["learning_rate"])
    )
    jitted = eqx.filter_jit(train)
    for i in range(BATCH):
        member = _chained_sgd(**{k: v[i] for k, v in values.items()})
        run = jitted(member, params[i])
        _assert_same_run(jax.tree.map(lambda x: x[i], batched), run, f"chain[{i}]")

    at = {k: jnp.asarray(v[1]) for k, v in values.items()}
    value_and_grad = jax.jit(jax.value_and_grad(lambda h: train(_chained_sgd(**h), params[0])[0]))
    grads = value_and_grad(at)[1]
    for name in at:

        def f(x: jax.Array, name: str = name) -> jax.Array:
            return value_and_grad({**at, name: x})[0]

        _assert_central_difference(grads[name], f, at[name], name)


# --- The sweep helper's errors ----------------------------------------------------------


def test_sweep_rejects_bad_batches_with_the_argument_named():
    with pytest.raises(oc.HyperparameterError, match="sweep: learning_rate must have a leading"):
        oc.sweep(oc.adam, learning_rate=0.1)
    with pytest.raises(oc.HyperparameterError, match="same length"):
        oc.sweep(oc.adam, learning_rate=[0.1, 0.2], b1=[0.9])
    with pytest.raises(oc.HyperparameterError, match="at least one batched argument"):
        oc.sweep(oc.adam)
    with pytest.raises(oc.HyperparameterError, match=r"member 1 of adam.*b1 must be in"):
        oc.sweep(oc.adam, learning_rate=[0.1, 0.2], b1=[0.9, 1.5])


def test_stack_rejects_members_that_differ_beyond_values():
    with pytest.raises(ValueError, match=r"transformations\[1\] differs .* at .*nesterov"):
        oc.sweep(oc.sgd, learning_rate=[0.1, 0.2], momentum=[0.9, 0.9], nesterov=[False, True])
    with pytest.raises(ValueError, match=r"at .transformations\[0\]: a Identity vs a ScaleBy"):
        oc.stack_transformations([oc.adam(0.1), oc.sgd(0.1)])
    with pytest.raises(ValueError, match=r"at .transformations\[1\].mask\['w'\]: False vs True"):
        oc.stack_transformations([oc.lamb(0.1, mask={"w": True}), oc.lamb(0.1, mask={"w": False})])
    with pytest.raises(ValueError, match=r"float32\[\] vs an array float64\[\]"):
        oc.stack_transformations([oc.adam(0.1), oc.adam(jnp.asarray(0.1, jnp.float32))])
    with pytest.raises(ValueError, match="must not be empty"):
        oc.stack_transformations([])
