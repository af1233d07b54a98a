"""One optimizer per group, each with injected hyperparameters: exact updates per group,
and per-group learning rates read and set in the state."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from optref.core import adam, chain, inject_hyperparams, tree_get, tree_get_all, tree_set
from optref.masking import masked, param_groups, partition

GROUPS = ("encoder", "decoder", "head")
SCHEDULES = {
    "encoder": lambda count: 0.1 / (1.0 + count),
    "decoder": lambda count: 0.01 * 0.9**count,
    "head": lambda count: 0.05 + 0.0 * count,
}
B1 = {"encoder": 0.9, "decoder": 0.8, "head": 0.5}


def injected(group, learning_rate=None):
    lr = SCHEDULES[group] if learning_rate is None else learning_rate
    return inject_hyperparams(adam)(learning_rate=lr, b1=B1[group])


def only(group):
    return {g: g == group for g in GROUPS}


def group_optimizers(kind: str, learning_rates=None):
    lr = learning_rates or {}
    tx = {g: injected(g, lr.get(g)) for g in GROUPS}
    if kind == "chain_of_masked":
        return chain(*(masked(tx[g], only(g)) for g in GROUPS))
    if kind == "partition":
        return partition(tx, {g: g for g in GROUPS})
    return param_groups({g: (rf"{g}\..*", tx[g]) for g in GROUPS})


KINDS = ["chain_of_masked", "partition", "param_groups"]


def assert_bit_identical(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), strict=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("jit", [False, True])
def test_each_group_gets_exactly_its_own_optimizers_updates(kind, jit, params, random_like):
    tx = group_optimizers(kind)
    alone = {g: injected(g) for g in GROUPS}
    plain = {g: adam(SCHEDULES[g], b1=B1[g]) for g in GROUPS}

    def compiled(t):
        return jax.jit(lambda u, s, p: t.update(u, s, p)) if jit else t.update

    update = compiled(tx)
    alone_update = {g: compiled(alone[g]) for g in GROUPS}
    plain_update = {g: compiled(plain[g]) for g in GROUPS}
    state = tx.init(params)
    alone_states = {g: alone[g].init(params[g]) for g in GROUPS}
    plain_states = {g: plain[g].init(params[g]) for g in GROUPS}
    for step in range(4):
        grads = random_like(step, params)
        updates, state = update(grads, state, params)
        for g in GROUPS:
            ua, alone_states[g] = alone_update[g](grads[g], alone_states[g], params[g])
            up, plain_states[g] = plain_update[g](grads[g], plain_states[g], params[g])
            assert_bit_identical(updates[g], ua)
            assert_bit_identical(updates[g], up)  # injection changes no bit either
            assert all(np.all(np.asarray(x) != 0) for x in jax.tree.leaves(updates[g]))


@pytest.mark.parametrize("kind", KINDS)
def test_per_group_learning_rate_read_and_set_in_the_state(kind, params, random_like):
    rates = {"encoder": 0.1, "decoder": 0.01, "head": 0.05}
    tx = group_optimizers(kind, rates)
    state = tx.init(params)
    grads = random_like(0, params)
    _, state = tx.update(grads, state, params)

    found = tree_get_all(state, "learning_rate")
    assert len(found) == 3
    by_group = {
        g: float(v)
        for p, v in found.items()
        for g in GROUPS
        if (f"'{g}'" in p or f"[{GROUPS.index(g)}]" in p)
    }
    assert by_group == pytest.approx(rates)
    # One group's learning rate, chosen by a filter on its path.
    # The first level of a chain, [i], as a regular expression; a partition's ['name'] literally.
    where = {
        g: (re.compile(rf"^\[{i}\]") if kind == "chain_of_masked" else f"['{g}']")
        for i, g in enumerate(GROUPS)
    }
    decoder_rate = tree_get(state, "learning_rate", filtering=where["decoder"])
    assert float(decoder_rate) == pytest.approx(0.01)

    # Set it for the decoder only: the next step uses it there, nowhere else.
    state = tree_set(state, where["decoder"], learning_rate=0.5)
    assert float(tree_get(state, "learning_rate", filtering=where["decoder"])) == 0.5
    assert float(tree_get(state, "learning_rate", filtering=where["head"])) == pytest.approx(0.05)

    alone = {g: injected(g, rates[g]) for g in GROUPS}
    alone_states = {}
    for g in GROUPS:
        s = alone[g].init(params[g])
        _, s = alone[g].update(grads[g], s, params[g])
        alone_states[g] = s
    alone_states["decoder"] = tree_set(alone_states["decoder"], learning_rate=0.5)
    grads = random_like(1, params)
    updates, state = tx.update(grads, state, params)
    for g in GROUPS:
        ua, _ = alone[g].update(grads[g], alone_states[g], params[g])
        assert_bit_identical(updates[g], ua)
    # ... and the decoder's step is 50 times the one it would have taken at 0.01.
    unchanged = group_optimizers(kind, rates)
    s = unchanged.init(params)
    _, s = unchanged.update(random_like(0, params), s, params)
    u_old, _ = unchanged.update(grads, s, params)
    np.testing.assert_allclose(updates["decoder"]["w"], 50 * u_old["decoder"]["w"], rtol=1e-5)
    assert_bit_identical(updates["encoder"], u_old["encoder"])
