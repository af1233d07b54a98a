"""optref-core's wrappers, injection and tree access against Optax's.

float64: every wrapper gives Optax's updates and states (same key paths, values to
~1e-12) over 50 steps. Tree access: ``tree_get`` finds what ``optax.tree_utils.tree_get``
finds. float32: Optax's injected Adam drifts from its plain Adam; optref's does not.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optref.core as oc

STEPS = 50
RTOL = 1e-12


def _params(dtype=jnp.float64) -> dict:
    return {
        "w": jnp.array([0.3, -1.2, 2.0, 0.7], dtype),
        "m": jnp.array([[0.5, -0.25], [1.5, 0.1]], dtype),
    }


def _loss(p: dict) -> jax.Array:
    return jnp.sum((p["w"] - 1.0) ** 2 * jnp.arange(1, 5)) + jnp.sum(jnp.cos(p["m"]) * p["m"])


def _grads(p, t, nan_every=0):
    """The gradient; with ``nan_every = n > 0`` NaN at every n-th step, with ``n < 0`` a
    gradient 10 times larger at every |n|-th step."""
    g = jax.grad(_loss)(p)
    if nan_every:
        n = abs(nan_every)
        odd = jnp.nan if nan_every > 0 else 10.0
        g = jax.tree.map(lambda x: jnp.where(t % n == n - 1, odd * x, x), g)
    return g


def _trajectory(tx, params, steps=STEPS, nan_every=0, fast=lambda p: p):
    def step(carry, t):
        p, s = carry
        u, s = tx.update(_grads(fast(p), t, nan_every), s, p)
        p = jax.tree.map(lambda a, b: a + b, p, u)
        return (p, s), (u, s)

    _, (updates, states) = jax.jit(
        lambda p: jax.lax.scan(step, (p, tx.init(p)), jnp.arange(steps))
    )(params)
    return updates, states


def _by_path(tree) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _relative_error(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "biu" or b.dtype.kind in "biu":
        return 0.0 if np.array_equal(a, b) else np.inf
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a.astype(np.float64) - b.astype(np.float64)))
    finite = np.isfinite(b)
    scale = np.sqrt(np.mean(np.abs(b[finite]) ** 2)) if finite.any() else 0.0
    return float(np.max(diff) / scale) if scale > 0 else float(np.max(diff))


def _compare(ours, theirs) -> tuple[float, float]:
    (u1, s1), (u2, s2) = ours, theirs
    update_error = max(
        _relative_error(a, b) for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True)
    )
    s1, s2 = _by_path(s1), _by_path(s2)
    assert set(s1) == set(s2), f"state layouts differ: {set(s1) ^ set(s2)}"
    state_error = max((_relative_error(s1[k], s2[k]) for k in s2), default=0.0)
    return update_error, state_error


def _every_other(step):
    return step % 2 == 0


WRAPPERS = {
    "apply_if_finite": (lambda m, i: m.apply_if_finite(i, 2), 3),
    "apply_every": (lambda m, i: m.apply_every(3), 0),
    "MultiSteps": (lambda m, i: m.MultiSteps(i, 3), 0),
    "MultiSteps-sum-schedule": (
        lambda m, i: m.MultiSteps(i, lambda s: 2 + s % 2, use_grad_mean=False),
        0,
    ),
    "MultiSteps-skip_not_finite": (
        lambda m, i: m.MultiSteps(i, 2, should_skip_update_fn=m.skip_not_finite),
        4,
    ),
    "MultiSteps-skip_large_updates": (
        lambda m, i: m.MultiSteps(
            i,
            2,
            should_skip_update_fn=functools.partial(m.skip_large_updates, max_squared_norm=200.0),
        ),
        -3,
    ),
    "flatten": (lambda m, i: m.flatten(i), 0),
    "conditionally_mask": (lambda m, i: m.conditionally_mask(i, _every_other), 0),
    "conditionally_transform": (
        lambda m, i: m.conditionally_transform(m.chain(i, m.scale(0.01)), _every_other),
        0,
    ),
    "inject_hyperparams(adam)": (
        lambda m, i: m.inject_hyperparams(m.adam)(learning_rate=0.01, b1=0.85),
        0,
    ),
    "inject_hyperparams(adamw, schedules)": (
        lambda m, i: m.inject_hyperparams(m.adamw)(
            learning_rate=lambda c: 0.02 / (1 + 0.1 * c),
            b2=lambda c: 0.99 - 0.1 / (1 + c),
            weight_decay=0.01,
        ),
        0,
    ),
    "inject_hyperparams(sgd) in chain": (
        lambda m, i: m.chain(
            m.clip_by_global_norm(2.0),
            m.inject_hyperparams(m.sgd)(learning_rate=0.01, momentum=0.9),
        ),
        0,
    ),
}


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_float64_agreement_with_optax(name: str) -> None:
    make, nan_every = WRAPPERS[name]
    with jax.enable_x64(True):
        ours = _trajectory(make(oc, oc.adam(0.01)), _params(), nan_every=nan_every)
        theirs = _trajectory(make(optax, optax.adam(0.01)), _params(), nan_every=nan_every)
        update_error, state_error = _compare(ours, theirs)
    print(f"{name}: max relative error, updates {update_error:.2e}, states {state_error:.2e}")
    assert update_error <= RTOL and state_error <= RTOL


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_float64_agreement_with_optax(reset_state: bool) -> None:
    with jax.enable_x64(True):
        ours = _trajectory(
            oc.lookahead(oc.adam(0.05), 3, 0.5, reset_state),
            oc.LookaheadParams.init_synced(_params()),
            fast=lambda p: p.fast,
        )
        theirs = _trajectory(
            optax.lookahead(optax.adam(0.05), 3, 0.5, reset_state),
            optax.LookaheadParams.init_synced(_params()),
            fast=lambda p: p.fast,
        )
        update_error, state_error = _compare(ours, theirs)
    print(f"lookahead: updates {update_error:.2e}, states {state_error:.2e}")
    assert update_error <= RTOL and state_error <= RTOL


def test_target_updates_match_optax() -> None:
    with jax.enable_x64(True):
        new, old = _params(), jax.tree.map(lambda x: 0.5 * x - 1, _params())
        for a, b in zip(
            jax.tree.leaves(oc.incremental_update(new, old, 0.3)),
            jax.tree.leaves(optax.incremental_update(new, old, 0.3)),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=1e-15)
        for steps in (4, 6):
            for a, b in zip(
                jax.tree.leaves(oc.periodic_update(new, old, steps, 3)),
                jax.tree.leaves(optax.periodic_update(new, old, steps, 3)),
                strict=True,
            ):
                np.testing.assert_array_equal(a, b)


def _both_states(build):
    params = _params(jnp.float32)
    return build(oc).init(params), build(optax).init(params)


ACCESS_CASES = {
    "adam": (lambda m: m.adam(0.1), ["count", "mu", "nu"]),
    "inject": (
        lambda m: m.inject_hyperparams(m.adam)(learning_rate=0.1),
        ["learning_rate", "b1", "eps", "inner_state", "mu"],
    ),
    "chain(clip, inject)": (
        lambda m: m.chain(
            m.clip_by_global_norm(1.0), m.inject_hyperparams(m.sgd)(learning_rate=0.2, momentum=0.9)
        ),
        ["learning_rate", "momentum", "trace"],
    ),
    "named_chain": (
        lambda m: m.named_chain(
            ("clip", m.clip_by_global_norm(1.0)),
            ("opt", m.inject_hyperparams(m.adam)(learning_rate=0.3)),
        ),
        ["learning_rate", "opt", "count"],
    ),
    "MultiSteps(inject)": (
        lambda m: m.MultiSteps(
            m.inject_hyperparams(m.adam)(learning_rate=0.3), 2
        ).gradient_transformation(),
        ["learning_rate", "mini_step", "acc_grads"],
    ),
    "apply_if_finite(inject)": (
        lambda m: m.apply_if_finite(m.inject_hyperparams(m.adam)(learning_rate=0.3), 2),
        ["learning_rate", "notfinite_count", "inner_state"],
    ),
}


def _same_value(a, b) -> None:
    """Equal values; optref's hyperparameters may be in a wider dtype than Optax's (which
    takes the params' dtype), so compare in Optax's."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x).astype(np.asarray(y).dtype), np.asarray(y))


@pytest.mark.parametrize("case", list(ACCESS_CASES))
def test_tree_get_finds_what_optax_finds(case: str) -> None:
    build, keys = ACCESS_CASES[case]
    ours, theirs = _both_states(build)
    for key in keys:
        found = optax.tree_utils.tree_get_all_with_path(theirs, key)
        assert len(oc.tree_get_all(ours, key)) == len(found), key
        if len(found) == 1:
            _same_value(oc.tree_get(ours, key), optax.tree_utils.tree_get(theirs, key))
        else:  # ambiguous in both
            with pytest.raises(KeyError):
                optax.tree_utils.tree_get(theirs, key)
            with pytest.raises(KeyError):
                oc.tree_get(ours, key)
        for (_, ours_value), (_, theirs_value) in zip(
            oc.tree_get_all_with_path(ours, key), found, strict=True
        ):
            _same_value(ours_value, theirs_value)
    # optref keeps the replaced leaf's dtype, so an integer counter takes an integer.
    value = 3 if keys[0] == "count" else 0.5
    new_ours = oc.tree_set(ours, **{keys[0]: value})
    new_theirs = optax.tree_utils.tree_set(theirs, **{keys[0]: value})
    _same_value(oc.tree_get(new_ours, keys[0]), optax.tree_utils.tree_get(new_theirs, keys[0]))


def test_ambiguous_names_are_errors_in_both_and_optref_lists_the_paths() -> None:
    ours, theirs = _both_states(
        lambda m: m.chain(
            m.inject_hyperparams(m.adam)(learning_rate=0.1),
            m.inject_hyperparams(m.sgd)(learning_rate=0.2),
        )
    )
    with pytest.raises(KeyError):
        optax.tree_utils.tree_get(theirs, "learning_rate")
    with pytest.raises(KeyError, match=r"\[1\]\.hyperparams\['learning_rate'\]"):
        oc.tree_get(ours, "learning_rate")
    # The same filter (a callable on the path) chooses one in both.
    second = lambda path, value: path[0] == jax.tree_util.SequenceKey(1)  # noqa: E731
    _same_value(
        oc.tree_get(ours, "learning_rate", filtering=second),
        optax.tree_utils.tree_get(theirs, "learning_rate", filtering=second),
    )


def test_a_scheduled_hyperparameter_is_ambiguous_in_optax_but_not_in_optref() -> None:
    schedule = lambda c: 1.0 / (1 + c)  # noqa: E731
    ours, theirs = _both_states(lambda m: m.inject_hyperparams(m.sgd)(learning_rate=schedule))
    assert len(optax.tree_utils.tree_get_all_with_path(theirs, "learning_rate")) == 2
    is_array = lambda path, value: isinstance(value, jax.Array)  # noqa: E731
    _same_value(
        oc.tree_get(ours, "learning_rate"),
        optax.tree_utils.tree_get(theirs, "learning_rate", filtering=is_array),
    )


def _float32_drift(library, steps: int = 1000) -> float:
    params = _params(jnp.float32)
    plain = library.adam(1e-2)
    injected = library.inject_hyperparams(library.adam)(learning_rate=1e-2)

    def run(tx):
        def step(carry, _):
            p, s = carry
            u, s = tx.update(jax.grad(_loss)(p), s, p)
            return (jax.tree.map(lambda a, b: a + b, p, u), s), u

        return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[1]

    a, b = jax.jit(lambda: (run(plain), run(injected)))()
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_optax_injected_adam_drifts_in_float32_and_optref_does_not() -> None:
    with jax.enable_x64(False):
        optax_drift = _float32_drift(optax)
        optref_drift = _float32_drift(oc)
    print(
        f"max |injected - plain| over 1000 float32 Adam updates: "
        f"optax {optax_drift:.3g}, optref {optref_drift:.3g}"
    )
    assert optax_drift > 0.0
    assert optref_drift == 0.0


def test_injected_groups_inside_masked_inside_chain() -> None:
    """One injected optimizer per parameter group: each group gets its own updates (never
    zeros), each learning rate is found by path and set per group, as in Optax."""
    import optref.masking as om

    def build(m, masked):
        return m.chain(
            masked(m.inject_hyperparams(m.adam)(learning_rate=0.1), {"w": True, "m": False}),
            masked(m.inject_hyperparams(m.sgd)(learning_rate=0.5), {"w": False, "m": True}),
        )

    with jax.enable_x64(True):
        ours, theirs = build(oc, om.masked), build(optax, optax.masked)
        params = _params()
        s_ours, s_theirs = ours.init(params), theirs.init(params)
        assert list(oc.tree_get_all(s_ours, "learning_rate")) == [
            "[0].inner_state.hyperparams['learning_rate']",
            "[1].inner_state.hyperparams['learning_rate']",
        ]
        s_ours = oc.tree_set(s_ours, "[1]", learning_rate=jnp.asarray(0.25))
        second = lambda path, value: path[0] == jax.tree_util.SequenceKey(1)  # noqa: E731
        s_theirs = optax.tree_utils.tree_set(s_theirs, second, learning_rate=jnp.asarray(0.25))
        grads = jax.grad(_loss)(params)
        u_ours, _ = ours.update(grads, s_ours, params)
        u_theirs, _ = theirs.update(grads, s_theirs, params)
    assert np.all(np.asarray(u_ours["m"]) != 0) and np.all(np.asarray(u_ours["w"]) != 0)
    np.testing.assert_allclose(np.asarray(u_ours["m"]), -0.25 * np.asarray(grads["m"]), rtol=1e-15)
    for a, b in zip(jax.tree.leaves(u_ours), jax.tree.leaves(u_theirs), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
