"""The optref-core kernel: protocol, validation, state checks, and the first transforms."""

from __future__ import annotations

import itertools
from fractions import Fraction

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

jax.config.update("jax_enable_x64", True)


def _params() -> dict:
    return {"body": {"w": jnp.ones((3, 2))}, "head": {"b": jnp.zeros(4), "w": jnp.ones(4)}}


# --- the first update of optimistic gradient descent ------------------------------------


def test_optimistic_first_step_is_alpha_g0_then_the_optimistic_rule() -> None:
    lr, alpha, beta = 0.1, 0.7, 0.4
    tx = oc.optimistic_gradient_descent(lr, alpha, beta)
    params = jnp.zeros(3)
    grads = [jnp.array([1.0, -2.0, 0.5]), jnp.array([0.3, 0.1, -1.0]), jnp.array([2.0, 0.0, 1.0])]
    state = tx.init(params)
    u0, state = tx.update(grads[0], state, params)
    np.testing.assert_allclose(u0, -lr * alpha * grads[0], rtol=1e-15)
    for previous, g in itertools.pairwise(grads):
        u, state = tx.update(g, state, params)
        np.testing.assert_allclose(u, -lr * ((alpha + beta) * g - beta * previous), rtol=1e-15)


# --- differentiating through Adam (eps_root) ---------------------------------------------


def _adam_loss(eps_root: float):
    target = jnp.array([1.0, 0.0, -2.0, 0.0])
    mask = jnp.array([1.0, 0.0, 1.0, 0.0])  # coordinates 1 and 3 always get a zero gradient

    def loss(params: jax.Array, lr: jax.Array) -> jax.Array:
        tx = oc.adam(lr, eps_root=eps_root)
        state = tx.init(params)
        for _ in range(10):
            grads = jax.grad(lambda p: jnp.sum(mask * (p - target) ** 2))(params)
            updates, state = tx.update(grads, state, params)
            params = oc.apply_updates(params, updates)
        return jnp.sum((params - target) ** 2)

    return loss


@pytest.mark.parametrize("eps_root", [1e-8, 0.0])
def test_adam_gradients_through_the_update_match_finite_differences(eps_root) -> None:
    # With eps_root = 0 the root of a second moment that stays zero (coordinates 1 and 3)
    # has derivative zero, not the 0 * inf = NaN of jnp.sqrt: the update there is zero
    # whatever the params, so the derivative of the loss is that of its last term alone.
    loss = _adam_loss(eps_root)
    params, lr = jnp.array([0.5, 0.3, 0.1, -0.4]), jnp.asarray(0.05)
    g_params, g_lr = jax.grad(loss, argnums=(0, 1))(params, lr)
    assert np.all(np.isfinite(g_params)) and np.isfinite(g_lr)
    h = 1e-6
    for i in range(4):
        e = jnp.zeros(4).at[i].set(h)
        central = (loss(params + e, lr) - loss(params - e, lr)) / (2 * h)
        np.testing.assert_allclose(g_params[i], central, rtol=1e-6, atol=1e-9)
    central_lr = (loss(params, lr + h) - loss(params, lr - h)) / (2 * h)
    np.testing.assert_allclose(g_lr, central_lr, rtol=1e-6)
    _, tangent = jax.jvp(lambda p: loss(p, lr), (params,), (jnp.ones(4),))
    np.testing.assert_allclose(tangent, jnp.sum(g_params), rtol=1e-10)


# --- state checks: errors that name the transformation and the path -----------------------


def test_state_with_a_wrong_shape_names_the_transformation_and_path() -> None:
    tx = oc.scale_by_adam()
    params = _params()
    bad = dict(params, head={"b": jnp.zeros(5), "w": jnp.ones(4)})
    with pytest.raises(oc.TreeMismatchError, match=r"scale_by_adam.*\['head'\]\['b'\].*shape"):
        tx.update(params, tx.init(bad), params)


def test_state_with_a_wrong_dtype_names_the_path() -> None:
    tx = oc.scale_by_adam()
    params = _params()
    state = tx.init(jax.tree.map(lambda x: x.astype(jnp.float32), params))
    with pytest.raises(oc.TreeMismatchError, match=r"\['body'\]\['w'\].*dtype"):
        tx.update(params, state, params)


def test_updates_with_another_structure_name_the_missing_path() -> None:
    tx = oc.trace(0.9)
    params = _params()
    updates = {"body": params["body"], "head": {"w": jnp.ones(4)}}
    with pytest.raises(oc.TreeMismatchError, match=r"trace.*\['head'\]\['b'\]"):
        tx.update(updates, tx.init(params), params)


def test_state_of_another_transformation_is_refused_by_name() -> None:
    params = _params()
    with pytest.raises(oc.StateMismatchError, match=r"scale_by_adam.*TraceState"):
        oc.scale_by_adam().update(params, oc.trace(0.9).init(params), params)
    with pytest.raises(oc.StateMismatchError, match="chain: expected a tuple of 2"):
        oc.adam(0.1).update(params, oc.sgd(0.1).init(params)[:1], params)


def test_state_construction_is_type_checked() -> None:
    with pytest.raises(Exception, match="count"):
        oc.ScaleByAdamState(jnp.zeros([], jnp.float32), {"a": jnp.ones(2)}, {"a": jnp.ones(2)})
    with pytest.raises(Exception, match="nu"):
        oc.ScaleByAdamState(jnp.zeros([], jnp.int32), {"a": jnp.ones(2)}, {"a": jnp.ones(3)})


def test_checks_run_at_trace_time_only_the_compiled_step_is_the_same() -> None:
    params = _params()
    tx = oc.adam(1e-3)

    def step(params, state):
        updates, state = tx.update(params, state, params)
        return oc.apply_updates(params, updates), state

    with_checks = jax.jit(step).lower(params, tx.init(params)).compile().as_text()
    original = oc.check_state
    try:
        import optref.core._adam as adam_module
        import optref.core._scale as scale_module

        for module in (adam_module, scale_module):
            module.check_state = lambda *args, **kwargs: None
        without_checks = jax.jit(step).lower(params, tx.init(params)).compile().as_text()
    finally:
        adam_module.check_state = original
        scale_module.check_state = original
    assert with_checks == without_checks


# --- hyperparameters as data ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: oc.scale_by_adam(b1=1.0), r"scale_by_adam: b1 must be in \[0, 1\), got 1.0"),
        (lambda: oc.scale_by_adam(b2=-0.1), r"b2 must be in \[0, 1\)"),
        (lambda: oc.scale_by_adam(eps=-1.0), r"eps must be in \[0, ∞\]"),
        (lambda: oc.trace(decay=-0.5), r"trace: decay must be in \[0, ∞\]"),
        (lambda: oc.clip_by_global_norm(0.0), r"max_norm must be in \(0, ∞\]"),
        (lambda: oc.scale_by_learning_rate("fast"), r"learning_rate must be a number, an array"),
        (lambda: oc.scale_by_schedule(3.0), r"scale_by_schedule: step_size_fn must be a callable"),
    ],
)
def test_bad_hyperparameters_raise_with_argument_and_range(make, message) -> None:
    with pytest.raises((oc.HyperparameterError, TypeError), match=message):
        make()


def test_hyperparameters_are_array_leaves_so_a_changed_value_does_not_recompile() -> None:
    traces = []

    @eqx.filter_jit
    def step(tx, params, state):
        traces.append(1)
        return tx.update(params, state, params)

    params = jnp.ones(3)
    for lr in (0.1, 0.2, 0.3):
        tx = oc.adam(lr)
        step(tx, params, tx.init(params))
    assert len(traces) == 1
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(oc.adam(0.1)))


def test_a_learning_rate_sweep_is_one_vmapped_program() -> None:
    params = jnp.array([1.0, -2.0])

    def final(lr: jax.Array) -> jax.Array:
        tx = oc.sgd(lr)
        state, p = tx.init(params), params
        for _ in range(3):
            updates, state = tx.update(p, state, p)
            p = oc.apply_updates(p, updates)
        return p

    swept = jax.vmap(final)(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(swept[1], params * 0.8**3)


def test_transformations_print_compare_and_serialise(tmp_path) -> None:
    tx = oc.adamw(1e-3, weight_decay=0.1)
    assert "ScaleByAdam" in repr(tx)
    path = tmp_path / "tx.eqx"
    eqx.tree_serialise_leaves(path, tx)
    loaded = eqx.tree_deserialise_leaves(path, oc.adamw(0.0, weight_decay=0.0))
    assert float(loaded.transformations[2].learning_rate) == pytest.approx(1e-3)


# --- None leaves, chain, named_chain, stateless, apply_updates ------------------------------


def test_none_leaves_pass_through_everything() -> None:
    params = {"w": jnp.ones(2), "frozen": None}
    tx = oc.chain(oc.clip_by_global_norm(1.0), oc.adamw(0.1), oc.trace(0.5))
    updates, _ = tx.update(params, tx.init(params), params)
    assert updates["frozen"] is None
    assert oc.apply_updates(params, updates)["frozen"] is None


def test_named_chain_state_is_keyed_by_name_and_extra_args_reach_members() -> None:
    seen = {}

    def record(updates, params):
        return updates

    tx = oc.named_chain(("clip", oc.clip(1.0)), ("f", oc.stateless(record)))
    state = tx.init(jnp.ones(2))
    assert set(state) == {"clip", "f"}
    updates, _ = tx.update(jnp.array([3.0, -0.5]), state, value=1.0)
    np.testing.assert_array_equal(updates, [1.0, -0.5])
    del seen
    with pytest.raises(ValueError, match="unique"):
        oc.named_chain(("a", oc.identity()), ("a", oc.identity()))


def test_chain_refuses_a_non_transformation_by_position() -> None:
    with pytest.raises(TypeError, match="chain: argument 1 must be an optref"):
        oc.chain(oc.identity(), lambda g: g)


def test_apply_updates_keeps_the_params_dtype() -> None:
    params = {"a": jnp.ones(2, jnp.bfloat16)}
    out = oc.apply_updates(params, {"a": jnp.full(2, 0.5, jnp.float32)})
    assert out["a"].dtype == jnp.bfloat16


def test_low_precision_adam_has_no_zero_over_zero() -> None:
    for dtype in (jnp.float16, jnp.bfloat16):
        params = jnp.ones(3, dtype)
        tx = oc.adam(1e-3)
        updates, _ = tx.update(jnp.zeros(3, dtype), tx.init(params), params)
        assert updates.dtype == dtype
        assert np.all(np.isfinite(np.asarray(updates, np.float32)))
        assert np.all(np.asarray(updates, np.float32) == 0)


def test_bias_correction_keeps_relative_precision() -> None:
    exact = 1 - np.float64(0.999) ** 1
    value = oc.bias_correction_factor(jnp.asarray(0.999, jnp.float32), 1)
    assert abs(float(value) - 0.001) / 0.001 < 2e-4  # f32(0.999) itself is off by 1.3e-8
    assert abs(float(oc.bias_correction_factor(jnp.asarray(0.999), 1)) - exact) / exact < 1e-15


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bias_correction_is_within_a_few_ulp_for_every_decay(dtype) -> None:
    # Before: 114 ulp in float64 at decay 0.59 (XLA's log1p on [-0.5, -0.25]).
    decays = np.concatenate([np.linspace(0.0, 0.99, 34), [0.995, 0.999, 0.9999, 1 - 1e-6]])
    counts = np.array([0, 1, 2, 3, 10, 100, 1000])
    b, t = (a.ravel() for a in np.meshgrid(decays.astype(dtype), counts, indexing="ij"))
    values = np.asarray(jax.jit(oc.bias_correction_factor)(jnp.asarray(b), jnp.asarray(t)))
    assert values.dtype == dtype
    worst = 0.0
    for decay, count, value in zip(b, t, values, strict=True):
        exact = 1 - Fraction(float(decay)) ** int(count)
        ulp = Fraction(float(np.spacing(dtype(float(exact))))) if exact else Fraction(0)
        error = abs(Fraction(float(value)) - exact)
        worst = max(worst, float(error / ulp) if ulp else float(error))
    print(f"{np.dtype(dtype).name} bias_correction: max error {worst:.2f} ulp")
    assert worst <= 3.0


def test_bias_correction_has_finite_exact_gradients_at_zero_and_one() -> None:
    decays = jnp.array([0.0, 0.6, 0.999, 1.0])
    counts = jnp.array([2, 3, 3, 0])
    grads = jax.vmap(jax.grad(oc.bias_correction_factor))(decays, counts)
    # d(1 - b^t)/db = -t b^(t-1)
    np.testing.assert_allclose(grads, [0.0, -3 * 0.6**2, -3 * 0.999**2, 0.0], rtol=1e-14)


def test_safe_numerics_have_finite_gradients_at_the_untaken_branch() -> None:
    assert float(jax.grad(lambda x: oc.safe_div(1.0, x))(0.0)) == 0.0
    assert float(jax.grad(oc.safe_sqrt)(0.0)) == 0.0
    assert np.all(np.asarray(jax.grad(lambda x: oc.safe_norm(x))(jnp.zeros(3))) == 0)
    assert np.all(np.isfinite(jax.grad(lambda x: oc.tree_l2_norm({"a": x}))(jnp.zeros(3))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_norms_power_of_two_is_frexps_exponent_read_from_the_bits(dtype) -> None:
    """The scale of the overflow-safe norms, read from the IEEE bits, is what ``frexp`` and
    ``ldexp`` give, on every class of float: random bit patterns (normal, subnormal, inf,
    NaN) and the edges."""
    from optref.core._numerics import _power_of_two_near

    def by_frexp(largest):
        usable = (largest > 0) & jnp.isfinite(largest)
        _, exponent = jnp.frexp(jnp.where(usable, largest, jnp.ones_like(largest)))
        limit = jnp.finfo(largest.dtype).maxexp * 3 // 4
        exponent = jnp.clip(exponent, -limit, limit)
        one = jnp.ones_like(largest)
        return jnp.ldexp(one, exponent), jnp.ldexp(one, -exponent)

    info = np.finfo(dtype)
    unsigned = np.dtype(f"uint{info.bits}")
    bits = np.random.default_rng(0).integers(0, np.iinfo(unsigned).max, 200_000, unsigned)
    edges = [
        0,
        info.smallest_subnormal,
        info.tiny / 2,
        info.tiny,
        0.5,
        0.75,
        1,
        3,
        info.max,
        np.inf,
        np.nan,
    ]
    largest = np.abs(np.concatenate([bits.view(dtype), np.array(edges, dtype)]))
    with jax.enable_x64(dtype == np.float64):
        ours = jax.jit(jax.vmap(_power_of_two_near))(largest)
        reference = jax.jit(jax.vmap(by_frexp))(largest)
        for a, b in zip(ours, reference, strict=True):
            assert a.dtype == dtype
            np.testing.assert_array_equal(
                np.asarray(a).view(unsigned), np.asarray(b).view(unsigned)
            )


# --- the overflow-safe norms of big leaves: one pass where the plain sum is safe ----------

# The size from which a leaf tries its unscaled sum of squares first.
from optref.core._numerics import _PLAIN_SUM_MIN_SIZE as BIG  # noqa: E402


def _by_scaling(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    from optref.core._numerics import _scaled_sum_of_squares

    scale, total = _scaled_sum_of_squares(x)
    return scale * oc.safe_sqrt(total), scale * oc.safe_sqrt(total / x.size)


def _kernels_reading_the_leaf_outside_conditionals(compiled_text: str) -> int:
    """In a compiled program of one argument, the instructions of its entry computation
    that read the argument, other than the tuples that pass it into a conditional."""
    entry = compiled_text[compiled_text.index("ENTRY") :].splitlines()
    leaf = next(line.split("=")[0].strip() for line in entry if "parameter(0)" in line)
    return sum(
        f"{leaf})" in line or f"{leaf}," in line
        for line in entry[1:]
        if "parameter(0)" not in line and " tuple(" not in line
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_a_big_leafs_norms_are_the_scaled_sums_bits_in_one_pass(dtype) -> None:
    """On ordinary values a leaf of 2**16 elements takes the unscaled sum of squares, on
    the CPU, under a conditional whose other branch scales: the result is the scaled
    norm's bits, and the compiled program reads the leaf once outside the conditional
    (the scaled sum reads it twice, for its largest magnitude and then for the sum)."""
    if jax.default_backend() != "cpu":
        pytest.skip("the one-pass norm is the CPU's")
    rng = np.random.default_rng(0)
    for size, conditionals in ((BIG - 1, 0), (BIG, 1)):
        x = rng.standard_normal(size) * 1e-3
        if dtype == np.complex64:
            x = x + 1j * rng.standard_normal(size) * 1e3
        x = jnp.asarray(x.astype(dtype))
        with jax.enable_x64(dtype == np.float64):
            norms = jax.jit(lambda x: (oc.safe_l2_norm(x), oc.safe_rms(x)))
            for ours, scaled in zip(norms(x), jax.jit(_by_scaling)(x), strict=True):
                np.testing.assert_array_equal(np.asarray(ours), np.asarray(scaled))
            text = jax.jit(oc.safe_l2_norm).lower(x).compile().as_text()
        assert text.count(" conditional(") == conditionals
        if dtype != np.complex64:  # XLA:CPU splits a complex leaf into its parts first
            assert _kernels_reading_the_leaf_outside_conditionals(text) == 2 - conditionals


def test_a_big_leafs_norm_on_a_gpu_is_scaled_without_a_conditional() -> None:
    """For a GPU, whose conditionals read their predicate back to the host, a big leaf's
    norm is the scaled sum alone: two reductions and no unscaled sum (lowered here for
    CUDA, whatever the machine)."""
    x = jnp.ones(BIG, jnp.float32)
    for platform, reductions in (("cpu", 3), ("cuda", 2)):
        lowered = jax.jit(oc.safe_l2_norm).trace(x).lower(lowering_platforms=(platform,))
        assert lowered.as_text().count("stablehlo.reduce") == reductions, platform


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64])
@pytest.mark.parametrize("value", ["huge", "tiny", "small"])
def test_a_big_leaf_whose_plain_sum_overflows_or_underflows_is_scaled(dtype, value) -> None:
    """Where the unscaled sum of a big leaf's squares overflows (``huge``), flushes to
    zero (``tiny``) or is finite but below ``n tiny / eps``, so that its subnormal
    squares could matter (``small``), the norms are the scaled ones: exact to a few ulp,
    with the exact gradient ``x / ‖x‖``."""
    info = jnp.finfo(jnp.promote_types(dtype, jnp.float32))
    element = {
        "huge": float(jnp.finfo(dtype).max) / 2**10,  # the norm, 2**8 of it, is finite
        "tiny": float(info.tiny),
        "small": float(np.sqrt(info.tiny)),
    }[value]
    with jax.enable_x64(dtype == jnp.float64):
        x = jnp.full(BIG, element, dtype)
        element = float(x[0])  # the value as the dtype holds it
        norm, rms = jax.jit(lambda x: (oc.safe_l2_norm(x), oc.safe_rms(x)))(x)
        gradient = jax.jit(jax.grad(lambda x: oc.safe_l2_norm(x)))(x.astype(info.dtype))
    rtol = 4 * float(info.eps)
    np.testing.assert_allclose(float(norm), element * np.sqrt(BIG), rtol=rtol)
    np.testing.assert_allclose(float(rms), element, rtol=rtol)
    np.testing.assert_allclose(np.asarray(gradient), 1 / np.sqrt(BIG), rtol=rtol)


def test_a_big_leafs_norm_under_vmap_keeps_its_conditional() -> None:
    """Batched, the rows take one branch together, the scaled one where any row's
    unscaled sum overflows, so that the conditional stays a conditional (a predicate
    that differs between rows would make JAX compute both branches): each row still gets
    the norm it has alone, the overflowing row too, and the derivatives are exact."""
    x = jnp.stack([jnp.full(BIG, 3e30, jnp.float32), jnp.full(BIG, 0.5, jnp.float32)])
    x = x * jnp.linspace(1, 2, BIG, dtype=jnp.float32)
    batched = jax.jit(jax.vmap(oc.safe_l2_norm))
    for rows in (x, x[1:], jnp.stack([x, x])):
        assert "stablehlo.case" in batched.lower(rows).as_text()
    for row, norm in zip(x, batched(x), strict=True):
        assert float(norm) == float(jax.jit(oc.safe_l2_norm)(row))
    np.testing.assert_array_equal(
        jax.jit(jax.vmap(jax.vmap(oc.safe_l2_norm)))(x[None]), batched(x)[None]
    )
    gradients = jax.jit(jax.vmap(jax.grad(oc.safe_l2_norm)))(x)
    expected = (
        np.asarray(x, np.float64) / np.linalg.norm(np.asarray(x, np.float64), axis=1)[:, None]
    )
    np.testing.assert_allclose(np.asarray(gradients), expected, rtol=1e-6)
