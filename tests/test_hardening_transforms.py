"""JAX transformations of every transformation of the catalogue, by property tests.

Hypothesis draws PyTrees (nested dicts, tuples, Equinox modules, empty trees, scalars,
zero-size arrays) of float32, float64 and bfloat16 leaves. For each: ``jit`` and eager
steps agree to a few units in the last place (XLA fuses multiply-adds under ``jit``, see
``FUSION_ULPS``), and so do ``vmap`` over a batch of independent optimizers (stacked
params and states) and a loop over them, and ``lax.scan`` over steps and a Python loop
of the same step; the updates have the params' structure and dtypes. Two runs of the
same program give the same bits (determinism, the random transformations included).

The default session draws a few trees; ``-m slow`` draws many more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optref.audit import build
from optref.core.conformance import CASES

STEPS = 3
BATCH = 3
# Under jit, XLA:CPU contracts a product and a sum into one fused multiply-add (a
# moving average (1 - b) g + b m is rounded once, not twice); eager dispatch rounds each
# operation, and a vmapped or scanned program is fused differently from the single
# step. So jit and eager steps, a vmapped member and its own run, and a scan and its
# loop agree to within this many units in the last place (each leaf in its own dtype);
# the same program run twice agrees bit for bit.
FUSION_ULPS = 8.0


class Block(eqx.Module):
    """An Equinox module of two array fields and a static one, as a model would have."""

    weight: Any
    bias: Any
    name: str = eqx.field(static=True, default="block")


@dataclasses.dataclass(frozen=True)
class LeafSpec:
    """The shape and dtype of a leaf to draw (not a PyTree node: a leaf of the spec)."""

    shape: tuple[int, ...]
    dtype: Any


DTYPES = st.sampled_from([jnp.float32, jnp.float64, jnp.bfloat16])
SHAPES = st.sampled_from([(), (0,), (3,), (2, 3), (1, 0, 2)])


@st.composite
def trees(draw: st.DrawFn, depth: int = 2) -> Any:
    """A PyTree of :class:`LeafSpec` leaves, to be filled with numbers by :func:`_fill`."""
    leaf = st.builds(LeafSpec, SHAPES, DTYPES)
    if depth == 0:
        return draw(leaf)
    child = trees(depth=depth - 1)
    kind = draw(st.sampled_from(["leaf", "dict", "tuple", "module", "empty"]))
    if kind == "leaf":
        return draw(leaf)
    if kind == "dict":
        keys = draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=3, unique=True))
        return {k: draw(child) for k in keys}
    if kind == "tuple":
        return tuple(draw(st.lists(child, min_size=1, max_size=3)))
    if kind == "module":
        return Block(draw(child), draw(child))
    return draw(st.sampled_from([{}, ()]))


def _fill(spec: Any, seed: int) -> Any:
    """Params for a tree of :class:`LeafSpec`: smooth values away from zero."""
    specs, treedef = jax.tree.flatten(spec)
    rng = np.random.default_rng(seed)
    leaves = [jnp.asarray(rng.uniform(0.5, 1.5, x.shape), x.dtype) for x in specs]
    return jax.tree.unflatten(treedef, leaves)


def _loss(params: Any) -> jax.Array:
    return sum(
        (0.5 * jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(params)),
        start=jnp.zeros((), jnp.float32),
    )


def _step(case: Any):
    """One step ``(tx, params, state) -> (params, state, updates)`` on :func:`_loss`."""

    def step(tx: Any, params: Any, state: Any) -> tuple[Any, Any, Any]:
        grads = jax.grad(_loss)(params)
        extra: dict[str, Any] = {}
        if "value" in case.extra_args:
            extra["value"] = _loss(params)
        if "grad" in case.extra_args:
            extra["grad"] = grads
        if "value_fn" in case.extra_args:
            extra["value_fn"] = _loss
        updates, state = tx.update(grads, state, params, **extra)
        scale = case.step_scale
        params = jax.tree.map(lambda p, u: (p + scale * u).astype(p.dtype), params, updates)
        return params, state, updates

    return step


def _bits(tree: Any) -> list[np.ndarray]:
    def bits(x: Any) -> np.ndarray:
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.ascontiguousarray(np.atleast_1d(np.asarray(x))).view(np.uint8)

    return [bits(x) for x in jax.tree.leaves(tree)]


def _assert_same_bits(actual: Any, expected: Any) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(_bits(actual), _bits(expected), strict=True):
        np.testing.assert_array_equal(a, b)


def _ulps(actual: Any, expected: Any) -> float:
    """The largest difference of two trees' floating leaves, in units of the last place
    of ``expected`` (each leaf in its own dtype's epsilon); other leaves must be equal."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    worst = 0.0
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        if not jnp.issubdtype(b.dtype, jnp.floating) or b.size == 0:
            _assert_same_bits(a, b)
            continue
        info = jnp.finfo(b.dtype)
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        unit = float(info.eps) * np.maximum(np.abs(b64), float(info.tiny))
        same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
        worst = max(worst, float(np.max(np.where(same, 0.0, np.abs(a64 - b64) / unit))))
    return worst


def _tx_for_any_tree(case: Any) -> Any:
    if any(isinstance(v, Mapping) for v in case.kwargs.values()):
        pytest.skip("a mask or a label tree in the arguments fixes the params' structure")
    return build(case, "optref")


def _run(step: Any, tx: Any, params: Any) -> tuple[Any, list[Any]]:
    state = tx.init(params)
    updates = []
    for _ in range(STEPS):
        params, state, u = step(tx, params, state)
        updates.append(u)
    return (params, state), updates


FEW = settings(
    max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MANY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _jit_eager_structure(case: Any, spec: Any, seed: int) -> None:
    tx = _tx_for_any_tree(case)
    params = _fill(spec, seed)
    step = _step(case)
    eager_end, eager_updates = _run(step, tx, params)
    jit_end, jit_updates = _run(eqx.filter_jit(step), tx, params)
    assert _ulps(jit_end, eager_end) <= FUSION_ULPS
    assert _ulps(jit_updates, eager_updates) <= FUSION_ULPS
    for updates in eager_updates:
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
            assert u.dtype == p.dtype and u.shape == p.shape
    # Determinism: the same program, run again, gives the same bits.
    again_end, again_updates = _run(eqx.filter_jit(step), tx, params)
    _assert_same_bits((again_end, again_updates), (jit_end, jit_updates))


def _vmap_scan(case: Any, spec: Any, seed: int) -> None:
    tx = _tx_for_any_tree(case)
    step = eqx.filter_jit(_step(case))
    members = [_fill(spec, seed + i) for i in range(BATCH)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    states = eqx.filter_vmap(tx.init, axis_size=BATCH)(stacked)
    batched_step = eqx.filter_jit(
        eqx.filter_vmap(_step(case), in_axes=(None, 0, 0), axis_size=BATCH)
    )
    for _ in range(STEPS):
        stacked, states, _ = batched_step(tx, stacked, states)
    for i, member in enumerate(members):
        (params, state), _ = _run(step, tx, member)
        member_end = jax.tree.map(lambda x: x[i], (stacked, states))
        assert _ulps(member_end, (params, state)) <= FUSION_ULPS

    params = members[0]

    @eqx.filter_jit
    def scanned(tx: Any, params: Any) -> Any:
        def body(carry: Any, _: None) -> tuple[Any, Any]:
            params, state = carry
            params, state, updates = _step(case)(tx, params, state)
            return (params, state), updates

        return jax.lax.scan(body, (params, tx.init(params)), length=STEPS)

    scan_end, scan_updates = scanned(tx, params)
    loop_end, loop_updates = _run(step, tx, params)
    assert _ulps(scan_end, loop_end) <= FUSION_ULPS
    stacked_loop = jax.tree.map(lambda *xs: jnp.stack(xs), *loop_updates)
    assert _ulps(scan_updates, stacked_loop) <= FUSION_ULPS


# The default session: Adam, and noisy SGD for determinism with random draws.
DEFAULT = [case for case in CASES if case.name in ("core.adam", "core.noisy_sgd")]


@pytest.mark.parametrize("case", DEFAULT, ids=[c.name for c in DEFAULT])
@FEW
@given(spec=trees(), seed=st.integers(0, 2**16))
def test_jit_eager_structure_and_determinism(case, spec, seed) -> None:
    _jit_eager_structure(case, spec, seed)


@pytest.mark.parametrize("case", DEFAULT[:1], ids=[c.name for c in DEFAULT[:1]])
@FEW
@given(spec=trees(), seed=st.integers(0, 2**16))
def test_vmap_and_scan(case, spec, seed) -> None:
    _vmap_scan(case, spec, seed)


@pytest.mark.slow
@MANY
@given(spec=trees(), seed=st.integers(0, 2**16))
def test_jit_eager_structure_and_determinism_many(transformation_case, spec, seed) -> None:
    _jit_eager_structure(transformation_case, spec, seed)


@pytest.mark.slow
@MANY
@given(spec=trees(), seed=st.integers(0, 2**16))
def test_vmap_and_scan_many(transformation_case, spec, seed) -> None:
    _vmap_scan(transformation_case, spec, seed)
