"""chain's fusion of leafwise members: used where it applies, and bit-identical to the
members applied one at a time, for every conformance case that fuses."""

from __future__ import annotations

import functools
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc
import optref.core._chain as chain_module
from optref.core.conformance import CASES, build


def _is_chain(x: object) -> bool:
    return isinstance(x, oc.Chain | oc.NamedChain)


def _chains(tree: object) -> list[oc.Chain | oc.NamedChain]:
    """Every chain in ``tree``, nested ones included."""
    found = [x for x in jax.tree.leaves(tree, is_leaf=_is_chain) if _is_chain(x)]
    return found + [inner for c in found for inner in _chains(c.transformations)]


def _longest_run(tx: object) -> int:
    """The most consecutive leafwise members of any chain in ``tx``: what fusion joins."""
    longest = 0
    for c in _chains(tx):
        run = 0
        for member in c.transformations:
            leafwise = isinstance(member, oc.LeafwiseTransformation)
            run = run + 1 if leafwise and not (run and member.reads_updates) else int(leafwise)
            longest = max(longest, run)
    return longest


def _unfused(tree: object) -> object:
    def rebuild(x: object) -> object:
        if isinstance(x, oc.Chain):
            return oc.Chain(tuple(_unfused(t) for t in x.transformations), fuse=False)
        if isinstance(x, oc.NamedChain):
            members = tuple(_unfused(t) for t in x.transformations)
            return oc.NamedChain(x.names, members, fuse=False)
        return x

    return jax.tree.map(rebuild, tree, is_leaf=_is_chain)


FUSED_CASES = [
    case
    for case in CASES
    if case.kind == "transformation" and not case.extra_args and _longest_run(build(case)) > 1
]


def test_the_aliases_that_fuse_include_the_common_optimizers() -> None:
    names = {case.optref for case in FUSED_CASES}
    common = {"adam", "adamw", "sgd", "lion", "adafactor", "lamb", "lars", "sign_sgd"}
    assert {f"optref.core.{name}" for name in common} <= names


@eqx.filter_jit
def _step(tx, params, state, grads):
    updates, state = tx.update(grads, state, params)
    return eqx.apply_updates(params, updates), updates, state


def _bits(tree: object) -> list[tuple[str, tuple[int, ...], bytes]]:
    arrays = [np.asarray(x) for x in jax.tree.leaves(tree)]
    return [(a.dtype.str, a.shape, a.tobytes()) for a in arrays]


def _draw(key: jax.Array, shapes: dict) -> dict:
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, shape, jnp.float32) for k, shape in zip(keys, leaves, strict=True)]
    )


# The structures of the conformance problems, which the cases' masks are written for.
_SHAPES = {
    "quadratic": {"w": (3, 2), "b": (2,)},
    "mlp": {"hidden": {"w": (3, 2), "b": (2,)}, "head": {"w": (2, 1), "b": (1,)}},
}
# The default session checks the optimizers most used; the slow session every case.
_FAST = {
    "core.adamw",
    "core.sgd-nesterov",
    "core.lion",
    "core.adam-schedule",
    "core.adafactor",
    "core.lamb",
}


@pytest.mark.parametrize(
    "case",
    [c if c.name in _FAST else pytest.param(c, marks=pytest.mark.slow) for c in FUSED_CASES],
    ids=[c.name for c in FUSED_CASES],
)
def test_fused_and_unfused_chains_agree_bit_for_bit(case) -> None:
    """Three jitted float32 steps with and without fusion: the same updates and states, bit
    for bit (the transformation is a jit argument, as users pass it)."""
    shapes = _SHAPES["mlp" if "mlp" in case.problems else "quadratic"]
    keys = jax.random.split(jax.random.key(0), 4)
    params, grads = _draw(keys[0], shapes), [_draw(k, shapes) for k in keys[1:]]
    fused = build(case)
    results = []
    for tx in (fused, _unfused(fused)):
        p, state, trajectory = params, tx.init(params), []
        for g in grads:
            p, updates, state = _step(tx, p, state, g)
            trajectory.append((updates, state))
        results.append(trajectory)
    for step, (a, b) in enumerate(zip(*results, strict=True)):
        assert jax.tree.structure(a) == jax.tree.structure(b)
        assert _bits(a) == _bits(b), f"step {step} differs"


def test_chain_runs_consecutive_leafwise_members_in_one_pass(monkeypatch) -> None:
    """adamw's three members are one pass; a reduction in front (global-norm clipping, not
    leafwise) is applied first, on its own, and the members after it are still one pass."""
    passes: list[int] = []
    original = chain_module.apply_leafwise

    def counting(steps, updates, params=None):
        passes.append(len(steps))
        return original(steps, updates, params)

    monkeypatch.setattr(chain_module, "apply_leafwise", counting)
    params = {"a": jnp.ones(3), "b": jnp.zeros(2)}
    tx = oc.adamw(1e-3)
    tx.update(params, tx.init(params), params)
    assert passes == [3]
    passes.clear()
    tx = oc.chain(oc.clip_by_global_norm(1.0), *oc.adamw(1e-3).transformations)
    tx.update(params, tx.init(params), params)
    assert passes == [3]
    passes.clear()
    tx = oc.Chain(tx.transformations, fuse=False)
    tx.update(params, tx.init(params), params)
    assert passes == []


@pytest.mark.parametrize("fuse", [True, False])
def test_a_member_error_names_the_member_when_fused(fuse: bool) -> None:
    params = {"a": jnp.ones(3)}
    tx = oc.chain(oc.scale_by_adam(), oc.scale(2.0), fuse=fuse)
    state = tx.init(params)
    with pytest.raises(oc.StateMismatchError, match="scale_by_adam"):
        tx.update(params, (state[1], state[1]), params)


class _CountingScale(oc.LeafwiseTransformation):
    """``g -> 2 g``, recording the shape of every leaf its leaf function is traced on."""

    def init(self, params):
        del params
        return oc.EmptyState()

    def leafwise(self, updates, state, params=None, **extra):
        def leaf(g, p, moments, constants):
            _TRACED.append(g.shape)
            return 2 * g, ()

        return oc.LeafwiseStep(leaf, lambda new: state)


_TRACED: list[tuple[int, ...]] = []


def test_a_traced_pass_traces_the_leaf_math_once_per_leaf_signature() -> None:
    """Under jit, 60 leaves of 2 shapes trace the leaf function twice, not 60 times, and a
    mask's Python bools are part of the signature; run eagerly, under an eager vmap too
    (where a jitted function would be compiled at every step), it runs on every leaf."""
    params = {f"p{i}": jnp.ones((3,) if i % 2 else (2, 2)) for i in range(60)}
    tx = oc.chain(_CountingScale(), oc.add_decayed_weights(0.1, mask={k: k < "p3" for k in params}))
    _TRACED.clear()
    jax.jit(tx.update)(params, tx.init(params), params)
    assert sorted(_TRACED) == [(2, 2), (2, 2), (3,), (3,)]  # mask True and False per shape
    _TRACED.clear()
    tx.update(params, tx.init(params), params)
    assert len(_TRACED) == 60
    _TRACED.clear()
    jax.vmap(lambda g: tx.update(g, tx.init(params), params)[0])(
        jax.tree.map(lambda p: jnp.stack([p, p]), params)
    )
    assert len(_TRACED) == 60


def _leaf_by_leaf(tx, grads, state, params):
    """The fused run of ``tx``'s members, its leaf functions called on each leaf in turn."""
    steps = [m.leafwise(grads, s, params) for m, s in zip(tx.transformations, state, strict=True)]
    g_leaves, treedef = jax.tree.flatten(grads)
    p_leaves = treedef.flatten_up_to(params)
    ins = [[treedef.flatten_up_to(t) for t in s.moments] for s in steps]
    consts = [[treedef.flatten_up_to(t) for t in s.constants] for s in steps]
    outs = [[[] for _ in s.moments] for s in steps]
    updates = []
    for i, g in enumerate(g_leaves):
        for k, s in enumerate(steps):
            g, new = s.leaf(
                g, p_leaves[i], tuple(m[i] for m in ins[k]), tuple(c[i] for c in consts[k])
            )
            for collected, leaf in zip(outs[k], new, strict=True):
                collected.append(leaf)
        updates.append(g)
    states = tuple(
        s.finish(tuple(treedef.unflatten(leaves) for leaves in outs[k]))
        for k, s in enumerate(steps)
    )
    return treedef.unflatten(updates), states


def test_a_traced_pass_gives_the_bits_of_the_leaf_by_leaf_pass() -> None:
    """adamw with a mask on float32, bfloat16 and float16 leaves of several shapes: the
    jitted update equals, bit for bit, its members' leaf functions traced leaf by leaf."""
    keys = jax.random.split(jax.random.key(1), 8)
    dtypes = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.float32]
    shapes = [(3,), (2, 2), (3,), (5,)]
    params = {
        f"p{i}": jax.random.normal(k, shapes[i % 4], dtypes[i % 4]) for i, k in enumerate(keys)
    }
    grads = jax.tree.map(lambda p: (0.3 * p).astype(p.dtype), params)
    tx = oc.adamw(1e-2, weight_decay=0.1, mask={k: k != "p1" for k in params})
    state = tx.init(params)
    fused, reference = jax.jit(tx.update), jax.jit(functools.partial(_leaf_by_leaf, tx))
    for _ in range(2):
        got = fused(grads, state, params)
        assert _bits(got) == _bits(reference(grads, state, params))
        state = got[1]


def test_the_lowered_step_grows_by_a_call_per_leaf() -> None:
    """adamw's lowered step on 400 leaves of one shape has at most 3 more StableHLO lines
    for each leaf than on 200 leaves (each leaf's math, about 50 operations, is traced once
    and called on every leaf)."""

    def lines(count: int) -> int:
        params = {f"p{i:03d}": jnp.ones(4) for i in range(count)}
        tx = oc.adamw(1e-3)
        return len(jax.jit(tx.update).lower(params, tx.init(params), params).as_text().splitlines())

    assert lines(400) - lines(200) <= 3 * 200


@pytest.mark.parametrize(
    "name",
    ["adabelief", "adam", "adamax", "adamw", "amsgrad", "lamb", "nadam", "nadamw", "radam", "yogi"],
)
def test_no_elementwise_kernel_of_the_compiled_step_reads_the_step_count(name: str) -> None:
    """The bias corrections are scalars computed once per step, not again in every leaf's
    kernel: no kernel of the compiled step that writes a leaf-shaped array takes the int32
    step count as an operand. A correction that ended in a select of its cases was copied by
    XLA into every params kernel, with the count and three more scalar operands; passed
    through :func:`optref.core.computed_once`, it is computed once. So is RAdam's
    rectification, whose series for the Langevin function XLA copied into every kernel."""
    params = {f"p{i}": jnp.ones((5,), jnp.float32) for i in range(4)}
    tx = getattr(oc, name)(1e-3)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return oc.apply_updates(p, u), s

    hlo = jax.jit(step).lower(params, tx.init(params), params).compile().as_text()
    signatures = re.findall(r"^%\S+ \(([^)]*)\) -> f32\[5\]", hlo, flags=re.MULTILINE)
    assert len(signatures) >= 3 * len(params), hlo  # the params, mu and nu kernels at least
    reading_count = [s for s in signatures if "s32[]" in s]
    assert not reading_count, reading_count


def _warmup(count):
    return 1e-3 * jnp.minimum(1.0, (count + 1) / 100) * jnp.where(count > 50, 0.5, 1.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: oc.adamw(_warmup),
        lambda: oc.sgd(_warmup, momentum=0.9),
        lambda: oc.chain(oc.scale_by_adam(), oc.scale_by_schedule(_warmup)),
    ],
    ids=["adamw", "sgd", "scale_by_schedule"],
)
def test_a_schedule_is_evaluated_once_per_step_not_in_every_leaf_kernel(make) -> None:
    """A schedule's value (here a warm-up and a step decay: a minimum and a select of the
    count) is read by every leaf. XLA copied it into each leaf's kernel, with the count as
    an operand; it is now computed once (:func:`optref.core.computed_once`), so no kernel
    that writes a leaf takes the int32 step count."""
    params = {f"p{i}": jnp.ones((5,), jnp.float32) for i in range(4)}
    tx = make()

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return oc.apply_updates(p, u), s

    hlo = jax.jit(step).lower(params, tx.init(params), params).compile().as_text()
    signatures = re.findall(r"^%\S+ \(([^)]*)\) -> f32\[5\]", hlo, flags=re.MULTILINE)
    assert len(signatures) >= 2 * len(params), hlo
    assert not [s for s in signatures if "s32[]" in s]


class _ScaleByParamSign(oc.StatelessLeafwise):
    """A user's per-leaf transformation: ``u * sign(p)``, where the mask holds."""

    mask: object = None
    params_needed_for = "their signs"

    def constants(self, updates):
        return () if self.mask is None else (self.mask,)

    def leaf(self, update, param, *constants):
        scaled = update * jnp.sign(param)
        return jnp.where(constants[0], scaled, update) if constants else scaled


def test_a_users_stateless_leafwise_transformation_fuses_with_the_same_bits() -> None:
    params = _draw(jax.random.PRNGKey(0), _SHAPES["mlp"])
    grads = _draw(jax.random.PRNGKey(1), _SHAPES["mlp"])
    mask = jax.tree.map(lambda x: x.ndim == 2, params)
    for member in (_ScaleByParamSign(), _ScaleByParamSign(mask)):
        fused = oc.chain(oc.scale_by_adam(), member, oc.scale(-0.1))
        assert _longest_run(fused) == 3
        results = [_step(tx, params, tx.init(params), grads) for tx in (fused, _unfused(fused))]
        assert _bits(results[0]) == _bits(results[1])
        _, updates, _ = results[0]
        adam, _ = oc.scale_by_adam().update(grads, oc.scale_by_adam().init(params))
        expected = jax.tree.map(
            lambda a, p, m: -0.1 * (a * jnp.sign(p) if m or member.mask is None else a),
            adam,
            params,
            mask,
        )
        for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(ValueError, match="_scale_by_param_sign: update needs params"):
        _ScaleByParamSign().update(grads, oc.EmptyState())
