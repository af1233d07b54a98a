"""optref.schedules against Optax 0.2.8: float64 values equal at every integer step of every
conformance case, float32 within a few eps of the float64 run, reduce_on_plateau's updates
and states equal step by step.

Reads ``optref.schedules.conformance.CASES`` and compares directly (the audit runner does
the same, and more, for every installed package).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.audit import resolve_name
from optref.schedules.conformance import CASES, INT32_COUNT_DEVIATION, PLATEAU_VALUES

jax.config.update("jax_enable_x64", True)

SCHEDULE_CASES = [c for c in CASES if c["kind"] == "schedule"]
PLATEAU_CASES = [c for c in CASES if c["optref"].endswith("reduce_on_plateau")]
# Every case is evaluated on the same counts, so eager operations compile once.
COUNTS = np.arange(max(c["steps"] for c in SCHEDULE_CASES) + 1)
F32_EPS = float(np.finfo(np.float32).eps)
# float32 error bound, in eps of the value (not of the schedule's scale).
F32_BOUND = 6.0


def _argument(value: Any, library: str) -> Any:
    if isinstance(value, dict) and set(value) == {"optref", "optax", "kwargs"}:
        factory = resolve_name(value[library])
        return factory(**{k: _argument(v, library) for k, v in value["kwargs"].items()})
    if isinstance(value, list):
        return [_argument(v, library) for v in value]
    return value


def build(case: dict[str, Any], library: str, kwargs: dict[str, Any] | None = None) -> Any:
    kwargs = case["kwargs"] if kwargs is None else kwargs
    return resolve_name(case[library])(**{k: _argument(v, library) for k, v in kwargs.items()})


def _round_floats(value: Any, to: Any) -> Any:
    """Every Python float in a case's arguments, as ``to`` (np.float32 or float)."""
    if isinstance(value, float):
        return to(np.float32(value))
    if isinstance(value, dict):
        return {
            k: (v if k in ("optref", "optax") else _round_floats(v, to)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_round_floats(v, to) for v in value]
    return value


def values(schedule: Any, dtype: Any = jnp.int64, offset: float = 0.0) -> np.ndarray:
    counts = jnp.asarray(COUNTS + offset if offset else COUNTS, dtype)
    return np.asarray(jax.vmap(schedule)(counts), dtype=np.float64)


def float64_difference(case: dict[str, Any], offset: float = 0.0) -> tuple[float, float]:
    """Max abs and max relative difference optref - Optax, float64, at the int64 counts
    0..steps (or, with an ``offset``, at the float64 counts ``offset + 0..steps``)."""
    steps = case["steps"] + 1
    dtype = jnp.float64 if offset else jnp.int64
    ours = values(build(case, "optref"), dtype, offset)[:steps]
    theirs = values(build(case, "optax"), dtype, offset)[:steps]
    difference = np.abs(ours - theirs)
    relative = difference / np.maximum(np.abs(theirs), np.finfo(np.float64).tiny)
    return float(difference.max()), float(np.where(difference == 0, 0, relative).max())


def float32_error(case: dict[str, Any]) -> float:
    """Max error of optref's float32 run (int32 counts), in float32 eps of each value,
    against its float64 run on the same float32-rounded arguments."""
    steps = case["steps"] + 1
    ours32 = build(case, "optref", _round_floats(case["kwargs"], np.float32))
    oracle = build(case, "optref", _round_floats(case["kwargs"], float))
    low = values(ours32, jnp.int32)[:steps]
    high = values(oracle)[:steps]
    if ours32(jnp.int32(0)).dtype != jnp.float32:
        pytest.skip("no floating argument to make float32")
    error = np.abs(low - high) / np.maximum(np.abs(high), np.finfo(np.float32).tiny)
    return float(np.where(low == high, 0, error).max() / F32_EPS)


def _deviation(case: dict[str, Any]) -> dict[str, Any] | None:
    for deviation in case.get("deviations", ()):
        if deviation is not INT32_COUNT_DEVIATION:
            return deviation
    return None


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=lambda c: c["name"])
def test_float64_equals_optax_at_every_step(case) -> None:
    if _deviation(case) is not None:
        pytest.skip("a recorded deviation: see test_recorded_deviations")
    _, relative = float64_difference(case)
    assert relative <= 1e-12, relative
    # Float counts between the steps, which Optax accepts too.
    _, relative = float64_difference(case, offset=0.5)
    assert relative <= 1e-12, relative


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=lambda c: c["name"])
def test_count_dtype_does_not_change_the_value(case) -> None:
    """With int32 counts Optax computes some schedules in float32 (INT32_COUNT_DEVIATION);
    optref gives its float64 value whatever the count's dtype."""
    schedule = build(case, "optref")
    np.testing.assert_allclose(values(schedule, jnp.int32), values(schedule), rtol=4e-16)


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=lambda c: c["name"])
def test_float32_within_a_few_eps_of_float64(case) -> None:
    assert float32_error(case) <= F32_BOUND


def test_int32_deviation_is_real() -> None:
    """Optax's own int32 counts make its linear schedule float32 under jax_enable_x64."""
    import optax

    schedule = optax.linear_schedule(1.0, 0.1, 50)
    assert schedule(jnp.int32(7)).dtype == jnp.float32
    assert schedule(jnp.int64(7)).dtype == jnp.float64


def test_recorded_deviations() -> None:
    """Where a case records a deviation, Optax differs, and optref does what it documents."""
    by_name = {c["name"]: c for c in SCHEDULE_CASES}
    no_warmup = by_name["schedules.warmup_constant_schedule-no_warmup"]
    ours, theirs = build(no_warmup, "optref"), build(no_warmup, "optax")
    assert float(ours(0)) == 1.0 and float(theirs(0)) == 0.1  # peak vs init forever
    zero_peak = by_name["schedules.warmup_cosine_decay_schedule-zero_peak"]
    ours, theirs = build(zero_peak, "optref"), build(zero_peak, "optax")
    assert float(ours(20)) == 0.01 and float(theirs(20)) == 0.0  # end_value ignored
    # Before the deviation kicks in, the two agree.
    assert float(ours(3)) == float(theirs(3))


def _plateau_run(transform: Any, params: Any, losses: list[float]) -> tuple[list, list]:
    state = transform.init(params)
    step = jax.jit(lambda p, s, v: transform.update(p, s, value=v))
    updates_seen, states_seen = [], []
    for loss in losses:
        updates, state = step(params, state, jnp.asarray(loss))
        updates_seen.append(updates)
        states_seen.append(state)
    return updates_seen, states_seen


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("case", PLATEAU_CASES, ids=lambda c: c["name"])
def test_reduce_on_plateau_equals_optax(case, dtype) -> None:
    params = {"w": jnp.linspace(-1.0, 1.0, 4, dtype=dtype), "b": jnp.ones((), dtype)}
    ours_updates, ours_states = _plateau_run(build(case, "optref"), params, list(PLATEAU_VALUES))
    theirs_updates, theirs_states = _plateau_run(build(case, "optax"), params, list(PLATEAU_VALUES))
    fields = ["scale", "best_value", "plateau_count", "cooldown_count", "count", "avg_value"]
    assert list(theirs_states[0]._fields) == fields
    for step, (ours, theirs) in enumerate(zip(ours_states, theirs_states, strict=True)):
        for field in fields:
            a, b = getattr(ours, field), getattr(theirs, field)
            assert a.dtype == b.dtype, (step, field)
            np.testing.assert_allclose(a, b, rtol=1e-15, err_msg=f"step {step} {field}")
    for ours, theirs in zip(ours_updates, theirs_updates, strict=True):
        for key in params:
            assert ours[key].dtype == theirs[key].dtype
            np.testing.assert_array_equal(ours[key], theirs[key])
    assert float(ours_states[-1].scale) < 1.0


def test_an_optimizer_with_a_schedule_matches_optax() -> None:
    """optref.core.adam with an optref schedule against optax.adam with Optax's, float64.

    Optax's adam counts in int32, so its schedule is float32-rounded (INT32_COUNT_DEVIATION);
    given int64 counts it agrees with optref to rounding.
    """
    import optax

    import optref.core as oc
    import optref.schedules as sch

    params = {"w": jnp.linspace(-1.0, 1.0, 5), "b": jnp.asarray(0.3)}

    def run(optimizer: Any) -> Any:
        state, p = optimizer.init(params), params
        step = jax.jit(lambda g, s, p: optimizer.update(g, s, p))
        for _ in range(20):
            grads = jax.tree.map(lambda x: 2 * x + 0.1, p)
            updates, state = step(grads, state, p)
            p = jax.tree.map(jnp.add, p, updates)
        return p

    ours = run(oc.adam(sch.warmup_cosine_decay_schedule(0.0, 0.1, 5, 15, 0.01)))
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 15, 0.01)
    theirs = run(optax.adam(lambda count: schedule(count.astype(jnp.int64))))
    for key in params:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-13, atol=1e-15)


def test_core_chain_takes_reduce_on_plateau_and_matches_optax() -> None:
    """optref.schedules' plateau transformation is an eqx.Module with the protocol's methods
    (not a core subclass: schedules does not depend on core); core's chain takes it."""
    import optax

    import optref.core as oc
    import optref.schedules as sch

    params = {"w": jnp.linspace(-1.0, 1.0, 4), "b": jnp.asarray(0.3)}
    # A loss that stops improving after a few steps, so the scale is reduced twice.
    losses = [4.0, 3.0, 2.5, 2.5, 2.6, 2.5, 2.7, 2.6, 2.6, 2.8, 2.9, 2.6]

    def run(optimizer: Any) -> list[Any]:
        state, seen = optimizer.init(params), []
        step = jax.jit(lambda g, s, p, v: optimizer.update(g, s, p, value=v))
        for loss in losses:
            updates, state = step(jax.tree.map(lambda x: 2 * x + 0.1, params), state, params, loss)
            seen.append(updates)
        return seen

    ours = run(oc.chain(oc.adam(0.1), sch.reduce_on_plateau(factor=0.5, patience=2)))
    plateau = optax.contrib.reduce_on_plateau(factor=0.5, patience=2)
    theirs = run(optax.chain(optax.adam(0.1), plateau))
    for a, b in zip(ours, theirs, strict=True):
        for key in params:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-13)
    first, last = (float(u["b"]) for u in (ours[0], ours[-1]))
    assert abs(last) < 0.3 * abs(first)  # reduced by factor**2 on top of Adam's decay

    class NotAModule:
        def init(self, params):
            return ()

        def update(self, updates, state, params=None):
            return updates, state

    with pytest.raises(TypeError, match=r"chain: argument 1 .* got NotAModule"):
        oc.chain(oc.adam(0.1), NotAModule())


def test_loss_after_optimizer_steps_is_differentiable_in_the_schedule() -> None:
    """d loss(params after K adam steps) / d (init, peak, end value of the learning-rate
    schedule), by jax.grad, equals central differences in float64; K = 12 spans the warmup
    boundary (4) and the end of the decay (10)."""
    import optref.core as oc
    import optref.schedules as sch

    target = jnp.array([0.5, -1.0, 2.0])

    @jax.jit
    def loss(values: jax.Array) -> jax.Array:
        schedule = sch.warmup_cosine_decay_schedule(values[0], values[1], 4, 10, values[2])
        optimizer = oc.adam(schedule)

        def step(_, carry):
            params, state = carry
            updates, state = optimizer.update(2 * (params - target), state, params)
            return params + updates, state

        params = jnp.zeros(3)
        params, _ = jax.lax.fori_loop(0, 12, step, (params, optimizer.init(params)))
        return jnp.sum((params - target) ** 2)

    values = jnp.array([0.01, 0.3, 0.05])
    reverse = np.asarray(jax.grad(loss)(values))
    h = 1e-6
    central = np.array(
        [(loss(values.at[i].add(h)) - loss(values.at[i].add(-h))) / (2 * h) for i in range(3)]
    )
    print(f"d loss / d (init, peak, end): reverse {reverse}, central {central}")
    assert np.all(np.isfinite(reverse)) and np.all(reverse != 0)
    np.testing.assert_allclose(reverse, central, rtol=1e-6)
