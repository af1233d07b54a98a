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
from collections.abc import Iterator, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optref.audit import build
from optref.core import (
    ScaleByAdan,
    ScaleByAdanState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    ScaleByStddev,
)
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
    """``sum |x|^2 / 2`` over the leaves, each summed in its compute dtype (at least
    float32) and the total in the widest of them, so that a float64 leaf's value and
    gradient are float64."""
    terms = [
        0.5 * jnp.sum(jnp.square(x.astype(jnp.promote_types(x.dtype, jnp.float32))))
        for x in jax.tree.leaves(params)
    ]
    dtype = jnp.result_type(jnp.float32, *terms)
    return sum((t.astype(dtype) for t in terms), start=jnp.zeros((), dtype))


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
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.ascontiguousarray(np.atleast_1d(np.asarray(x))).view(np.uint8)

    return [bits(x) for x in jax.tree.leaves(tree)]


def _assert_same_bits(actual: Any, expected: Any) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(_bits(actual), _bits(expected), strict=True):
        np.testing.assert_array_equal(a, b)


def _floating(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating)


def _tangent(x: Any, dtype: Any, rng: np.random.Generator) -> Any:
    """A generic tangent on the leaves of ``dtype`` (zero on the others)."""
    if not eqx.is_inexact_array(x):
        return np.zeros(np.shape(x), jax.dtypes.float0)
    if x.dtype != dtype:
        return jnp.zeros_like(x)
    return jnp.asarray(rng.uniform(0.5, 1.5, x.shape), x.dtype)


def _units(fn: Any, inputs: Any) -> Any:
    """For each leaf of ``fn(inputs)``, the epsilon of the coarsest floating dtype among
    its own and those of the inputs that it depends on (0 for other leaves).

    A float64 leaf computed from a float32 one (a global norm over a mixed tree, the
    loss's value, a float64 moment of float32 updates) carries that float32 leaf's
    rounding, which ``jit`` and eager round differently (a sum reduced in another
    order): it can agree only to float32's epsilon. The dependence is forward-mode: a
    leaf depends on the inputs of a dtype where a generic tangent on them reaches it.
    """
    dtypes = {x.dtype for x in jax.tree.leaves(inputs) if _floating(x)}
    outputs = jax.eval_shape(fn, inputs)
    units = jax.tree.map(
        lambda x: float(jnp.finfo(x.dtype).eps) if jnp.issubdtype(x.dtype, jnp.floating) else 0.0,
        outputs,
    )
    if len(dtypes) == 1:  # one input dtype, which reaches every output
        (only,) = dtypes
        return jax.tree.map(lambda u: u and max(u, float(jnp.finfo(only).eps)), units)
    dynamic, static = eqx.partition(inputs, eqx.is_array)

    def call(dynamic: Any) -> Any:
        return fn(eqx.combine(dynamic, static))

    rng = np.random.default_rng(0)
    for dtype in dtypes:
        tangents = jax.tree.map(lambda x: _tangent(x, dtype, rng), dynamic)
        _, reached = jax.jvp(call, (dynamic,), (tangents,))
        eps = float(jnp.finfo(dtype).eps)

        def widen(u: float, t: Any) -> float:
            if u == 0.0 or t.dtype == jax.dtypes.float0:
                return u
            return max(u, eps) if bool(jnp.any(t != 0)) else u

        units = jax.tree.map(widen, units, reached)
    return units


def _ulps(actual: Any, expected: Any, units: Any, allowance: Any = None) -> float:
    """The largest difference of two trees' floating leaves, in units of the last place
    of ``expected`` with each leaf's epsilon from ``units`` (:func:`_units`), less that
    leaf's ``allowance`` (a tree of the same structure, elementwise: the units by which an
    ill-conditioned leaf may move, :func:`_adan_allowance`; none if ``None``); the leaves
    whose unit is 0 (integers, keys) must be equal."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    if allowance is None:
        allowance = jax.tree.map(lambda _: 0.0, expected)
    worst = 0.0
    pairs = zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True)
    extras = zip(jax.tree.leaves(units), jax.tree.leaves(allowance), strict=True)
    for (a, b), (eps, extra) in zip(pairs, extras, strict=True):
        if eps == 0.0 or b.size == 0:
            _assert_same_bits(a, b)
            continue
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        unit = eps * np.maximum(np.abs(b64), float(jnp.finfo(b.dtype).tiny))
        same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
        excess = np.where(same, 0.0, np.abs(a64 - b64) / unit - extra)
        worst = max(worst, float(np.max(excess)))
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


def _is_stddev(x: Any) -> bool:
    return isinstance(x, (ScaleByStddev, ScaleByRStdDevState, ScaleByRStdDevWithCountState))


def _stddev_ulps(tx: Any, grads: Any, state: Any) -> float:
    """How far, in units of the last place, a step of the centred scaling
    (``scale_by_stddev``, and ``rmsprop(centered=True)`` whose first member it is, so
    that it sees the gradient) may move when each term of its variance is rounded
    differently by ``FUSION_ULPS`` units (0 for transformations without it).

    The variance is formed from the previous moments (``_centred_variance``):
    $V = (\\rho/c_t)(\\nu' - |\\mu'|^2/c' + (1-\\rho)(c'/c_t)|g - \\mu'/c'|^2)$.
    Rounding each term by a relative $u$ moves it by at most $u M$, with $M$ the same sum
    of the terms' magnitudes, which exceeds $V$ by far where the gradients barely vary
    (cancellation). The root moves by $\\delta\\sigma \\le \\min(uM / 2\\sigma,
    \\sqrt{uM})$, and the update $g / (\\sigma + \\varepsilon)$ by
    $\\delta\\sigma / (\\sigma + \\varepsilon)$ relatively ($uM / 2(V + \\varepsilon)$
    with eps inside the root). So the bound is ``FUSION_ULPS`` times that condition
    number of the step, not ``FUSION_ULPS``.
    """
    members = [x for x in jax.tree.leaves(tx, is_leaf=_is_stddev) if _is_stddev(x)]
    if not members:
        return 0.0
    states = [x for x in jax.tree.leaves(state, is_leaf=_is_stddev) if _is_stddev(x)]
    worst = 0.0
    for member, member_state in zip(members, states, strict=True):
        rho = float(member.decay)
        eps = float(member.eps)
        count = int(getattr(member_state, "count", 0))
        c_prev, c = (1 - rho**count, 1 - rho ** (count + 1)) if member.bias_correction else (1, 1)
        leaves = zip(
            jax.tree.leaves(grads),
            jax.tree.leaves(member_state.mu),
            jax.tree.leaves(member_state.nu),
            strict=True,
        )
        for g, mu, nu in leaves:
            if g.size == 0:
                continue
            unit = FUSION_ULPS * float(jnp.finfo(jnp.promote_types(g.dtype, jnp.float32)).eps)
            leaf_eps = float(jnp.finfo(g.dtype).eps)
            g, mu, nu = (np.asarray(x, np.float64) for x in (g, mu, nu))
            mean = mu / c_prev if c_prev > 0 else np.zeros_like(mu)
            spread = (1 - rho) * c_prev / c * np.abs(g - mean) ** 2
            variance = np.maximum(rho / c * (nu - mu * mean + spread), 0.0)
            magnitude = rho / c * (np.abs(nu) + np.abs(mu * mean) + spread)
            shift = unit * magnitude
            if member.eps_in_sqrt:
                relative = shift / (2 * (variance + eps)) if eps > 0 else np.sqrt(shift / variance)
            else:
                sigma = np.sqrt(variance)
                root_shift = np.minimum(shift / np.maximum(2 * sigma, 1e-300), np.sqrt(shift))
                relative = root_shift / (sigma + eps)
            worst = max(worst, float(np.max(relative)) / leaf_eps)
    return worst


def _run_stddev_ulps(step: Any, tx: Any, params: Any) -> float:
    """The largest :func:`_stddev_ulps` over the steps of a run. It bounds the rounding
    of each step as amplified by that step, not by the steps after it (for the drawn
    trees, three steps of ``scale_by_stddev-eps_outside`` under ``lax.scan`` and in a
    loop differ by 17 units, its per-step bound being several hundred)."""
    if not any(_is_stddev(x) for x in jax.tree.leaves(tx, is_leaf=_is_stddev)):
        return 0.0
    state, worst = tx.init(params), 0.0
    for _ in range(STEPS):
        worst = max(worst, _stddev_ulps(tx, jax.grad(_loss)(params), state))
        params, state, _ = step(tx, params, state)
    return worst


def _is_adan(x: Any) -> bool:
    return isinstance(x, (ScaleByAdan, ScaleByAdanState))


def _adan_allowance(step: Any, tx: Any, params: Any) -> Any:
    """For the ``(params, state)`` at the end of a run, the units in the last place by
    which each element may move when the run's inputs are rounded differently: 0 except
    in Adan's moving average of gradient differences ``v``.

    $v_t = \\beta_2 v_{t-1} + (1-\\beta_2)(g_t - g_{t-1})$ averages differences of
    consecutive gradients, which cancel where the params barely move (here, by the
    step's 1% of their size: $g = p$ on :func:`_loss`). A vmapped or scanned run rounds
    the params differently from the loop (``FUSION_ULPS``), and the difference carries
    that rounding relative to $|g_t| + |g_{t-1}|$, not to itself. To first order, with
    $u$ = ``FUSION_ULPS`` units of each input and of $v_{t-1}$, $v_t$ moves by at most
    $E_t = \\beta_2 E_{t-1} + u(\\beta_2|v_{t-1}| + (1-\\beta_2)(|g_t| + |g_{t-1}|))$
    ($E_1 = 0$: the first difference is zero), so its allowance is $E_T / (|v_T|\\,
    \\epsilon)$ units on top of the ``FUSION_ULPS`` that every leaf has.
    """

    def zeros(tree: Any) -> Any:
        return jax.tree.map(lambda x: np.zeros(np.shape(x)), tree)

    members = [x for x in jax.tree.leaves(tx, is_leaf=_is_adan) if isinstance(x, ScaleByAdan)]
    state = tx.init(params)
    if not members:
        return zeros((params, state))
    errors = [[np.zeros(np.shape(x)) for x in jax.tree.leaves(params)] for _ in members]
    for _ in range(STEPS):
        grads = jax.tree.leaves(jax.grad(_loss)(params))
        before = [x for x in jax.tree.leaves(state, is_leaf=_is_adan) if _is_adan(x)]
        params, state, _ = step(tx, params, state)
        for member, old, member_errors in zip(members, before, errors, strict=True):
            b2 = float(member.b2)
            leaves = zip(grads, jax.tree.leaves(old.g), jax.tree.leaves(old.v), strict=True)
            for i, (g, g_prev, v_prev) in enumerate(leaves):
                # The params, hence the gradients, are rounded in their own dtype.
                unit = FUSION_ULPS * float(jnp.finfo(g.dtype).eps)
                g, g_prev, v_prev = (np.abs(np.asarray(x, np.float64)) for x in (g, g_prev, v_prev))
                spread = (1 - b2) * (g + g_prev) if int(old.t) > 0 else 0.0
                member_errors[i] = b2 * member_errors[i] + unit * (b2 * v_prev + spread)

    def allowance(node: Any) -> Any:
        if not isinstance(node, ScaleByAdanState):
            return zeros(node)
        member_errors = errors[next(i for i, x in enumerate(adan_states) if x is node)]
        units = []
        for v, error in zip(jax.tree.leaves(node.v), member_errors, strict=True):
            v64 = np.abs(np.asarray(v, np.float64))
            ulp = float(jnp.finfo(v.dtype).eps) * v64
            units.append(np.divide(error, ulp, out=np.zeros_like(v64), where=ulp > 0))
        return eqx.tree_at(
            lambda s: s.v, zeros(node), jax.tree.unflatten(jax.tree.structure(node.v), units)
        )

    adan_states = [x for x in jax.tree.leaves(state, is_leaf=_is_adan) if _is_adan(x)]
    return zeros(params), jax.tree.map(allowance, state, is_leaf=_is_adan)


def _jit_eager_structure(case: Any, spec: Any, seed: int) -> None:
    tx = _tx_for_any_tree(case)
    params = _fill(spec, seed)
    step = _step(case)
    jitted = eqx.filter_jit(step)
    state = tx.init(params)
    # Each jitted step against the eager step from the same params and state, the eager
    # run's: the difference is the rounding of one step, not compounded by the dynamics.
    for _ in range(STEPS):
        eager = step(tx, params, state)
        units = _units(lambda inputs: step(tx, *inputs), (params, state))
        bound = FUSION_ULPS + _stddev_ulps(tx, jax.grad(_loss)(params), state)
        assert _ulps(jitted(tx, params, state), eager, units) <= bound
        updates = eager[2]
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
            assert u.dtype == p.dtype and u.shape == p.shape
        params, state, _ = eager
    # Determinism: the same program, run twice, gives the same bits.
    params = _fill(spec, seed)
    _assert_same_bits(_run(jitted, tx, params), _run(jitted, tx, params))


def _vmap_scan(case: Any, spec: Any, seed: int) -> None:
    tx = _tx_for_any_tree(case)
    step = eqx.filter_jit(_step(case))
    members = [_fill(spec, seed + i) for i in range(BATCH)]
    units = _units(lambda params: _run(_step(case), tx, params), members[0])
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    states = eqx.filter_vmap(tx.init, axis_size=BATCH)(stacked)
    batched_step = eqx.filter_jit(
        eqx.filter_vmap(_step(case), in_axes=(None, 0, 0), axis_size=BATCH)
    )
    for _ in range(STEPS):
        stacked, states, _ = batched_step(tx, stacked, states)
    for i, member in enumerate(members):
        end, _ = _run(step, tx, member)
        member_end = jax.tree.map(lambda x: x[i], (stacked, states))
        bound = FUSION_ULPS + _run_stddev_ulps(step, tx, member)
        allowance = _adan_allowance(step, tx, member)
        assert _ulps(member_end, end, units[0], allowance) <= bound

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
    bound = FUSION_ULPS + _run_stddev_ulps(step, tx, params)
    assert _ulps(scan_end, loop_end, units[0], _adan_allowance(step, tx, params)) <= bound
    stacked_loop = jax.tree.map(lambda *xs: jnp.stack(xs), *loop_updates)
    step_units = jax.tree.map(lambda *us: max(us), *units[1])
    assert _ulps(scan_updates, stacked_loop, step_units) <= bound


@pytest.fixture(autouse=True)
def _drop_compiled_programs() -> Iterator[None]:
    """Each drawn tree compiles new programs; dropping them after each test keeps a
    worker of the slow set from growing by gigabytes (and XLA from failing to allocate)."""
    yield
    jax.clear_caches()


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
