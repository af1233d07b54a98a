"""Long runs: a million steps of a step counter, and Adam's bias correction at large counts.

The step counters are int32 and saturate at 2**31 - 1 (:func:`optref.core.safe_increment`)
instead of wrapping to a negative number; a million steps run through ``lax.scan``, and
the counter is injected directly near its maximum. The bias correction ``1 - b**t`` is
compared with a 60-digit decimal reference of the same (exactly represented) ``b``.
"""

from __future__ import annotations

import decimal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

INT32_MAX = int(np.iinfo(np.int32).max)
MILLION = 10**6


def test_safe_increment_saturates_at_the_int32_maximum() -> None:
    count = jnp.asarray(INT32_MAX - 1, jnp.int32)
    assert int(oc.safe_increment(count)) == INT32_MAX
    assert int(oc.safe_increment(oc.safe_increment(count))) == INT32_MAX
    assert oc.safe_increment(count).dtype == jnp.int32


def test_a_million_steps_keep_the_count_and_the_schedule_exact() -> None:
    """``scale_by_schedule(lambda t: t)`` scales a unit update by its own step count."""
    tx = oc.scale_by_schedule(lambda count: count.astype(jnp.float32))
    params = jnp.zeros((), jnp.float32)
    ones = jnp.ones((), jnp.float32)

    def body(state, _):
        updates, state = tx.update(ones, state, params)
        return state, updates

    state, scales = jax.jit(lambda s: jax.lax.scan(body, s, length=MILLION))(tx.init(params))
    assert int(state.count) == MILLION
    np.testing.assert_array_equal(np.asarray(scales), np.arange(MILLION, dtype=np.float32))


def test_adam_count_saturates_instead_of_wrapping() -> None:
    tx = oc.scale_by_adam()
    params = {"w": jnp.ones(3, jnp.float32)}
    state = tx.init(params)
    state = state.__class__(count=jnp.asarray(INT32_MAX - 1, jnp.int32), mu=state.mu, nu=state.nu)
    step = jax.jit(lambda s: tx.update(params, s, params))
    for _ in range(3):
        updates, state = step(state)
        assert int(state.count) == INT32_MAX
        assert np.all(np.isfinite(np.asarray(updates["w"])))


def _exact_correction(decay: float, count: int) -> float:
    """``1 - decay**count`` to 60 digits, ``decay`` taken as the exact binary value."""
    with decimal.localcontext() as context:
        context.prec = 60
        return float(1 - decimal.Decimal(decay) ** count)


COUNTS = sorted({int(t) for t in np.geomspace(1, MILLION, 40)})


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("decay", [0.9, 0.999, 0.9999])
def test_bias_correction_is_exact_at_large_counts(decay: float, dtype) -> None:
    with jax.enable_x64(dtype == jnp.float64):
        b = jnp.asarray(decay, dtype)
        assert b.dtype == dtype
        counts = jnp.asarray(COUNTS, jnp.int32)
        actual = np.asarray(jax.vmap(lambda t: oc.bias_correction_factor(b, t))(counts), np.float64)
    expected = np.array([_exact_correction(float(b), t) for t in COUNTS])
    relative = np.abs(actual - expected) / expected
    # expm1(t * log1p(b - 1)): log1p and expm1 are each within an ulp or so; the product
    # t * log1p(.) adds one rounding. Measured worst over these counts: 1.23 eps
    # (float32, b = 0.9999), 1.22 eps in float64.
    assert np.max(relative) <= 2 * float(jnp.finfo(dtype).eps), (
        f"worst relative error {np.max(relative):.3g} at t={COUNTS[int(np.argmax(relative))]}"
    )


def test_adam_step_at_large_counts_is_the_bias_corrected_one() -> None:
    """At count t, with moments of a constant gradient g (m = (1 - b1^t) g, v = (1 -
    b2^t) g^2 after step t), Adam's step is g / (|g| + eps) whatever t: the corrections cancel."""
    with jax.enable_x64(True):
        _adam_step_at_large_counts()


def _adam_step_at_large_counts() -> None:
    tx = oc.scale_by_adam(eps=0.0)
    g = {"w": jnp.asarray([0.5, -2.0, 3.0], jnp.float64)}
    for t in (1, 10, 1000, 99_999, MILLION):
        c1 = _exact_correction(0.9, t - 1)
        c2 = _exact_correction(0.999, t - 1)
        state = tx.init(g).__class__(
            count=jnp.asarray(t - 1, jnp.int32),
            mu={"w": g["w"] * c1},
            nu={"w": g["w"] ** 2 * c2},
        )
        # One more step with the same gradient keeps the moments of a constant gradient.
        updates, _ = tx.update(g, state, g)
        np.testing.assert_allclose(
            np.asarray(updates["w"]), np.sign(np.asarray(g["w"])), rtol=8e-16, atol=0
        )
