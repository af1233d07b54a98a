"""The wrappers: apply_if_finite, apply_every, MultiSteps, lookahead, flatten, conditionals."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

PARAMS = {"w": jnp.array([0.5, -1.0, 2.0]), "m": jnp.array([[1.0, 2.0], [3.0, 4.0]])}


def _grads(t: int) -> dict:
    return jax.tree.map(lambda p: jnp.sin(p * (t + 1)) + 0.1 * t, PARAMS)


def _run(tx, grads_list, params=PARAMS):
    state = tx.init(params)
    step = jax.jit(lambda g, s: tx.update(g, s, params))
    out = []
    for g in grads_list:
        u, state = step(g, state)
        out.append(u)
    return out, state


def _equal(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _close(a, b, rtol=1e-6) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-7)


def test_apply_if_finite_skips_then_gives_up() -> None:
    nan = jax.tree.map(lambda g: g * jnp.nan, _grads(0))
    grads = [_grads(0), nan, nan, nan, _grads(1)]
    updates, state = _run(oc.apply_if_finite(oc.sgd(0.1), max_consecutive_errors=2), grads)
    _close(updates[0], jax.tree.map(lambda g: -0.1 * g, grads[0]))
    _equal(updates[1], jax.tree.map(jnp.zeros_like, nan))
    _equal(updates[2], jax.tree.map(jnp.zeros_like, nan))
    assert np.isnan(np.asarray(updates[3]["w"])).all()  # the third in a row is let through
    assert np.isfinite(np.asarray(updates[4]["w"])).all()
    assert int(state.notfinite_count) == 0 and bool(state.last_finite)
    assert int(state.total_notfinite) == 3


def test_apply_if_finite_keeps_the_inner_state_when_skipping() -> None:
    nan = jax.tree.map(lambda g: g * jnp.nan, _grads(0))
    tx = oc.apply_if_finite(oc.adam(0.1), 5)
    _, state = _run(tx, [_grads(0), nan])
    _, reference = _run(oc.adam(0.1), [_grads(0)])
    _equal(state.inner_state, reference)
    assert int(state.notfinite_count) == 1 and not bool(state.last_finite)


@pytest.mark.parametrize("k", [1, 3])
def test_apply_every_emits_the_sum_every_k_steps(k: int) -> None:
    grads = [_grads(t) for t in range(7)]
    updates, state = _run(oc.apply_every(k), grads)
    for t, u in enumerate(updates):
        if t % k == k - 1:
            start = t - k + 1
            expected = jax.tree.map(lambda *g: sum(g[1:], g[0]), *grads[start : t + 1])
            _close(u, expected)
        else:
            _equal(u, jax.tree.map(jnp.zeros_like, u))
    assert int(state.count) == 7 % k


def test_multi_steps_is_the_inner_optimizer_on_the_mean() -> None:
    k = 3
    grads = [_grads(t) for t in range(2 * k)]
    ms = oc.MultiSteps(oc.adam(0.1), every_k_schedule=k)
    assert ms.gradient_transformation() is ms and ms.inner_opt is ms.opt
    updates, state = _run(ms, grads)
    means = [jax.tree.map(lambda *g: sum(g) / k, *grads[i : i + k]) for i in (0, k)]
    reference, reference_state = _run(oc.adam(0.1), means)
    _close(updates[k - 1], reference[0])
    _close(updates[2 * k - 1], reference[1])
    for t in (0, 1, 3, 4):
        _equal(updates[t], jax.tree.map(jnp.zeros_like, updates[t]))
    assert int(state.gradient_step) == 2 and int(state.mini_step) == 0
    assert bool(ms.has_updated(state))
    _close(state.inner_opt_state, reference_state)
    _equal(state.acc_grads, jax.tree.map(jnp.zeros_like, state.acc_grads))


def test_multi_steps_sum_schedule_and_accumulator_dtype() -> None:
    schedule = lambda step: jnp.where(step == 0, 1, 2)  # noqa: E731
    ms = oc.MultiSteps(oc.sgd(1.0), schedule, use_grad_mean=False, accumulator_dtype=None)
    grads = [_grads(t) for t in range(3)]
    updates, state = _run(ms, grads)
    _close(updates[0], jax.tree.map(lambda g: -g, grads[0]))
    _equal(updates[1], jax.tree.map(jnp.zeros_like, updates[1]))
    _close(updates[2], jax.tree.map(lambda a, b: -(a + b), grads[1], grads[2]))
    assert state.acc_grads["w"].dtype == PARAMS["w"].dtype
    assert not bool(ms.has_updated(ms.init(PARAMS)))


def test_multi_steps_skips_rejected_mini_steps() -> None:
    nan = jax.tree.map(lambda g: g * jnp.nan, _grads(0))
    ms = oc.MultiSteps(oc.sgd(1.0), 2, should_skip_update_fn=oc.skip_not_finite)
    updates, state = _run(ms, [_grads(0), nan, _grads(1)])
    _equal(updates[1], jax.tree.map(jnp.zeros_like, updates[1]))
    _close(updates[2], jax.tree.map(lambda a, b: -(a + b) / 2, _grads(0), _grads(1)))
    assert int(state.skip_state["num_not_finite"]) == 0
    large = functools.partial(oc.skip_large_updates, max_squared_norm=1.0)
    ms = oc.MultiSteps(oc.sgd(1.0), 1, should_skip_update_fn=large)
    big = jax.tree.map(lambda g: 10.0 * g, _grads(0))
    small = jax.tree.map(lambda g: 0.01 * g, _grads(0))
    updates, state = _run(ms, [big, small])
    _equal(updates[0], jax.tree.map(jnp.zeros_like, big))
    _close(updates[1], jax.tree.map(lambda g: -g, small))
    assert int(state.gradient_step) == 1
    assert float(state.skip_state["norm_squared"]) == pytest.approx(
        float(oc.tree_l2_norm(small, squared=True)), rel=1e-6
    )


def test_multi_steps_bad_skip_function() -> None:
    ms = oc.MultiSteps(oc.sgd(1.0), 2, should_skip_update_fn=lambda u, s, p: (jnp.ones(2), ()))
    with pytest.raises(ValueError, match="scalar boolean"):
        ms.update(_grads(0), ms.init(PARAMS), PARAMS)


def test_lookahead_follows_the_paper() -> None:
    alpha, k, lr = 0.5, 2, 0.1
    tx = oc.lookahead(oc.sgd(lr), sync_period=k, slow_step_size=alpha)
    params = oc.LookaheadParams.init_synced(PARAMS)
    state = tx.init(params)
    loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))  # noqa: E731
    fast, slow = PARAMS, PARAMS
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for t in range(4):
        grads = jax.grad(loss)(params.fast)
        updates, state = step(grads, state, params)
        params = oc.apply_updates(params, updates)
        fast = jax.tree.map(lambda f, g: f - lr * g, fast, jax.grad(loss)(fast))
        if t % k == k - 1:
            slow = jax.tree.map(lambda s, f: s + alpha * (f - s), slow, fast)
            fast = slow
        _close(params.fast, fast)
        _close(params.slow, slow)
    assert int(state.steps_since_sync) == 0


def test_lookahead_reset_state_and_errors() -> None:
    tx = oc.lookahead(oc.sgd(0.1, momentum=0.9), 2, 0.5, reset_state=True)
    params = oc.LookaheadParams.init_synced(PARAMS)
    state = tx.init(params)
    for t in range(2):
        _, state = tx.update(_grads(t), state, params)
    _equal(state.fast_state, tx.fast_optimizer.init(PARAMS))
    with pytest.raises(TypeError, match="LookaheadParams"):
        tx.update(_grads(0), state, PARAMS)
    with pytest.raises(oc.HyperparameterError, match="sync_period"):
        oc.lookahead(oc.sgd(0.1), 0, 0.5)


def test_flatten_gives_the_elementwise_optimizer_unchanged() -> None:
    grads = [_grads(t) for t in range(4)]
    flat_updates, flat_state = _run(oc.flatten(oc.adam(0.1)), grads)
    updates, _ = _run(oc.adam(0.1), grads)
    _close(flat_updates, updates)
    assert flat_state[0].mu.shape == (7,)
    assert jax.tree.structure(flat_updates[0]) == jax.tree.structure(PARAMS)


@pytest.mark.parametrize("masking", [True, False])
def test_conditionally_mask_and_transform(masking: bool) -> None:
    even = lambda step: step % 2 == 0  # noqa: E731
    wrap = oc.conditionally_mask if masking else oc.conditionally_transform
    grads = [_grads(t) for t in range(4)]
    updates, state = _run(wrap(oc.adam(0.1), even), grads)
    reference, reference_state = _run(oc.adam(0.1), grads[0::2])
    _close(updates[0], reference[0])
    _close(updates[2], reference[1])
    skipped = jax.tree.map(jnp.zeros_like, grads[1]) if masking else grads[1]
    _equal(updates[1], skipped)
    _close(state.inner_state, reference_state)
    assert int(state.step) == 4


def test_conditional_forwards_extra_args() -> None:
    tx = oc.conditionally_mask(
        oc.sgd(1.0), lambda step, value: value < 1.0, forward_extra_args=True
    )
    state = tx.init(PARAMS)
    u_low, state = tx.update(_grads(0), state, PARAMS, value=jnp.asarray(0.5))
    u_high, state = tx.update(_grads(0), state, PARAMS, value=jnp.asarray(2.0))
    _close(u_low, jax.tree.map(lambda g: -g, _grads(0)))
    _equal(u_high, jax.tree.map(jnp.zeros_like, u_high))


def test_wrappers_reject_what_is_not_a_transformation() -> None:
    with pytest.raises(TypeError, match="apply_if_finite: inner"):
        oc.apply_if_finite(lambda g: g, 1)
    with pytest.raises(TypeError, match="MultiSteps: opt"):
        oc.MultiSteps("adam", 2)
    with pytest.raises(oc.HyperparameterError, match="every_k_schedule"):
        oc.MultiSteps(oc.sgd(0.1), 0)
    with pytest.raises(oc.HyperparameterError, match="apply_every"):
        oc.apply_every(0)


def test_wrappers_do_not_change_bits() -> None:
    grads = [_grads(t) for t in range(5)]
    plain, _ = _run(oc.adam(0.1), grads)
    forms = [
        oc.apply_if_finite(oc.adam(0.1), 3),
        oc.MultiSteps(oc.adam(0.1), 1, accumulator_dtype=None),
        oc.conditionally_mask(oc.adam(0.1), lambda step: True),
        oc.conditionally_transform(oc.adam(0.1), lambda step: True),
    ]
    for tx in forms:
        _equal(_run(tx, grads)[0], plain)


def test_target_updates() -> None:
    new, old = PARAMS, jax.tree.map(jnp.zeros_like, PARAMS)
    _close(oc.incremental_update(new, old, 0.25), jax.tree.map(lambda p: 0.25 * p, PARAMS))
    with_none = oc.incremental_update(
        {"a": None, "b": jnp.ones(2)}, {"a": None, "b": jnp.zeros(2)}, 0.5
    )
    assert with_none["a"] is None
    _equal(oc.periodic_update(new, old, jnp.asarray(6), 3), new)
    _equal(oc.periodic_update(new, old, jnp.asarray(7), 3), old)
