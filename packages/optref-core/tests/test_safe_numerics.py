"""The safe numerics compute their values in short programs and take their derivatives
from the double-where forms: the same values and the same derivatives, to the bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import optref.core as oc
from optref.core import _numerics as numerics
from optref.core.conformance import CASES, build

jax.config.update("jax_enable_x64", True)

DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _values(dtype, n: int = 4096, seed: int = 0) -> np.ndarray:
    """Random bit patterns of ``dtype`` (normal, subnormal, infinite, NaN) and the edges."""
    width = np.dtype(dtype).itemsize
    bits = np.random.default_rng(seed).integers(0, 2 ** (8 * width), n, dtype=np.uint64)
    random = bits.astype(_UINT[width]).view(dtype)
    info = ml_dtypes.finfo(dtype)
    edges = np.array(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            info.tiny,
            -info.tiny,
            info.smallest_subnormal,
            1e-8,
            1e-30,
            float(info.max),
            -float(info.max),
            np.inf,
            -np.inf,
            np.nan,
        ],
        dtype=np.float64,
    ).astype(dtype)
    return np.concatenate([edges, random])


def _ratio_reference(numerator, v, eps):
    """adaptive_ratio written with the double-where forms."""
    denominator = (numerics._safe_sqrt_reference(v) + eps).astype(numerator.dtype)
    return numerics._safe_div_reference(numerator, denominator, 0.0)


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    same_bits = a.view(_UINT[a.dtype.itemsize]) == b.view(_UINT[b.dtype.itemsize])
    return a.dtype == b.dtype and bool(np.all(same_bits | (np.isnan(a) & np.isnan(b))))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_the_values_are_those_of_the_double_where_forms(dtype) -> None:
    x = jnp.asarray(_values(dtype, seed=1))
    y = jnp.asarray(_values(dtype, seed=2))
    pairs = [
        (lambda x, y: oc.safe_sqrt(x), lambda x, y: numerics._safe_sqrt_reference(x)),
        (oc.safe_div, lambda x, y: numerics._safe_div_reference(x, y, 0.0)),
        (lambda x, y: oc.safe_div(x, y, 2.0), lambda x, y: numerics._safe_div_reference(x, y, 2.0)),
    ]
    if dtype != ml_dtypes.bfloat16 and dtype != np.float16:  # the ratios' working dtypes
        pairs.append(
            (
                lambda x, y: oc.adaptive_ratio(x, y, 1e-8),
                lambda x, y: _ratio_reference(x, y, jnp.asarray(1e-8, dtype)),
            )
        )
        for eps in (1e-7, 0.0):
            pairs.append(
                (
                    lambda x, y, e=eps: oc.accumulator_ratio(x, y, e),
                    lambda x, y, e=eps: numerics._accumulator_ratio_reference(
                        x, y, jnp.asarray(e, dtype)
                    ),
                )
            )
    for value, reference in pairs:
        assert _same(jax.jit(value)(x, y), jax.jit(reference)(x, y))
    # min_norm normal or zero: x86's max instruction, which XLA:CPU may emit for the select,
    # reads a subnormal operand as zero under the flush-to-zero mode XLA:CPU runs in.
    mins = jnp.abs(y[:64])
    mins = jnp.where(mins < ml_dtypes.finfo(dtype).tiny, 0, mins)
    rows = x[: 64 * 32].reshape(64, 32)
    rows = jnp.where(jnp.arange(64)[:, None] < 8, 0, rows)  # rows whose norm is zero
    norm = jax.jit(jax.vmap(oc.safe_norm))(rows, mins)
    reference = jax.jit(
        jax.vmap(lambda r, m: numerics._safe_norm_reference(r, m, None, None).reshape(()))
    )
    assert _same(norm, reference(rows, mins))


def _at_the_edges(dtype) -> tuple[jax.Array, jax.Array]:
    x = jnp.asarray([0.0, -0.0, -1.0, 2.0, np.nan, np.inf, 1e-30, -3.0], dtype)
    y = jnp.asarray([0.0, 1.0, 0.0, -0.0, 2.0, 0.5, 0.0, np.nan], dtype)
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_the_derivatives_are_those_of_the_double_where_forms(dtype) -> None:
    x, y = _at_the_edges(dtype)
    eps = jnp.asarray(1e-8, dtype)
    pairs = [
        (oc.safe_sqrt, numerics._safe_sqrt_reference, (x,)),
        (oc.safe_div, lambda a, b: numerics._safe_div_reference(a, b, 0.0), (x, y)),
        (
            lambda v, m: oc.adaptive_ratio(m, v, 1e-8),
            lambda v, m: _ratio_reference(m, v, eps),
            (jnp.abs(y), x),
        ),
        (
            lambda v, m: oc.adaptive_ratio(m, v, 0.0),
            lambda v, m: _ratio_reference(m, v, 0.0 * eps),
            (jnp.abs(y), x),
        ),
        (
            lambda s, g: oc.accumulator_ratio(g, s, 1e-8),
            lambda s, g: numerics._accumulator_ratio_reference(g, s, eps),
            (y, x),
        ),
        (
            lambda s, g: oc.accumulator_ratio(g, s, 0.0),
            lambda s, g: numerics._accumulator_ratio_reference(g, s, 0.0 * eps),
            (y, x),
        ),
    ]
    for value, reference, args in pairs:
        tangents = tuple(jnp.ones_like(a) for a in args)
        out, tangent = jax.jit(lambda *a, f=value: jax.jvp(f, a, tangents))(*args)
        out_ref, tangent_ref = jax.jit(lambda *a, f=reference: jax.jvp(f, a, tangents))(*args)
        assert _same(out, out_ref) and _same(tangent, tangent_ref)
        scalar = lambda f: lambda *a: jnp.sum(jnp.where(jnp.isfinite(f(*a)), f(*a), 0) ** 2)  # noqa: E731
        grads = jax.jit(jax.grad(scalar(value), argnums=tuple(range(len(args)))))(*args)
        grads_ref = jax.jit(jax.grad(scalar(reference), argnums=tuple(range(len(args)))))(*args)
        assert all(_same(g, r) for g, r in zip(grads, grads_ref, strict=True))
    # Second derivatives too: the rule of the custom derivative is itself differentiable.
    second = jax.jit(jax.vmap(jax.grad(jax.grad(oc.safe_sqrt))))(x)
    second_ref = jax.jit(jax.vmap(jax.grad(jax.grad(numerics._safe_sqrt_reference))))(x)
    assert _same(second, second_ref)
    # The norm, with rows at, below and above min_norm.
    rows = jnp.stack([jnp.zeros(3, dtype), jnp.full(3, 0.1, dtype), jnp.arange(3, dtype=dtype)])
    norm_grad = jax.jit(jax.vmap(jax.grad(lambda r: oc.safe_norm(r, 0.5))))(rows)
    norm_grad_ref = jax.jit(
        jax.vmap(jax.grad(lambda r: numerics._safe_norm_reference(r, 0.5, None, None).sum()))
    )(rows)
    assert _same(norm_grad, norm_grad_ref)


def _count(function, *args, op: str) -> int:
    text = jax.jit(function).lower(*args).compile().as_text()
    return text.count(f" {op}(")


def test_each_value_compiles_to_one_select() -> None:
    x = jnp.linspace(-1.0, 1.0, 8, dtype=jnp.float32)
    assert _count(oc.safe_sqrt, x, op="select") == 1
    assert _count(oc.safe_div, x, x, op="select") == 1
    assert _count(lambda m, v: oc.adaptive_ratio(m, v, 1e-8), x, x, op="select") == 2
    assert _count(lambda g, s: oc.accumulator_ratio(g, s, 1e-7), x, x, op="select") == 1


_ROOTS = [
    c
    for c in CASES
    if c.kind == "transformation"
    and not c.extra_args
    and c.name.split(".")[1].split("-")[0]
    in {
        "adagrad",
        "rmsprop",
        "adam",
        "adafactor",
        "sm3",
        "adadelta",
        "yogi",
        "adabelief",
        "novograd",
        "rprop",
    }
]


@pytest.mark.parametrize("case", _ROOTS, ids=[c.name for c in _ROOTS])
def test_no_compiled_step_divides_by_a_bare_root(case) -> None:
    """XLA rewrites ``a / sqrt(b)`` as ``a * rsqrt(b)``, which XLA:CPU rounds less closely
    than the root and the division; the safe root reaches a division only through a select
    or a sum, so no step holds an ``rsqrt``."""
    tx = build(case)
    params = {"w": jnp.ones((4, 3), jnp.float32), "b": jnp.ones(3, jnp.float32)}
    state = tx.init(params)
    text = jax.jit(tx.update).lower(params, state, params).compile().as_text()
    assert "rsqrt(" not in text


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_adafactors_inverse_root_is_its_double_where_form_but_zero_where_that_was_infinite(
    dtype,
) -> None:
    """One select instead of three, the same values and derivatives; at a positive
    subnormal, which XLA:CPU's comparison reads as positive in the double-where form and
    its root flushes to zero, that form gave an infinite factor, and the value is zero."""
    from optref.core._factored import _rsqrt_or_zero, _rsqrt_or_zero_reference

    host = _values(dtype, n=20000, seed=3)
    x = jnp.asarray(host)
    value, reference = jax.jit(_rsqrt_or_zero)(x), jax.jit(_rsqrt_or_zero_reference)(x)
    value, reference = np.asarray(value), np.asarray(reference)
    subnormal = (host > 0) & (host < np.finfo(dtype).tiny)  # on the host: no flushing
    assert _same(value[~subnormal], reference[~subnormal])
    assert np.all(value[subnormal] == 0) and np.all(np.isinf(reference[subnormal]))
    assert subnormal.sum() > 0
    assert _count(_rsqrt_or_zero, x, op="select") == 1
    points = jnp.asarray([0.0, -1.0, 4.0, np.inf, np.nan, 1e-3], dtype)
    grads = jax.jit(jax.vmap(jax.grad(_rsqrt_or_zero)))(points)
    assert _same(grads, jax.jit(jax.vmap(jax.grad(_rsqrt_or_zero_reference)))(points))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_adadeltas_root_ratio_is_its_double_where_form_on_nonnegative_moments(dtype) -> None:
    """One select instead of three: the same values on nonnegative numbers (subnormal,
    infinite and NaN ones included) and the same derivatives; a negative moment, which no
    step makes, has a NaN root."""
    from optref.core._adadelta import _root_ratio, _root_ratio_reference

    a = jnp.abs(jnp.asarray(_values(dtype, n=20000, seed=4)))
    b = jnp.abs(jnp.asarray(_values(dtype, n=20000, seed=5)))
    b = b.at[::7].set(0)  # zero second moments, against every kind of first one
    assert _same(jax.jit(_root_ratio)(a, b), jax.jit(_root_ratio_reference)(a, b))
    assert _count(_root_ratio, a, b, op="select") == 1
    assert np.isnan(_root_ratio(jnp.asarray(-1.0, dtype), jnp.asarray(1.0, dtype)))
    a, b = (jnp.abs(v) for v in _at_the_edges(dtype))
    tangents = (jnp.ones_like(a), jnp.ones_like(b))
    out, tangent = jax.jit(lambda *x: jax.jvp(_root_ratio, x, tangents))(a, b)
    out_ref, tangent_ref = jax.jit(lambda *x: jax.jvp(_root_ratio_reference, x, tangents))(a, b)
    assert _same(out, out_ref) and _same(tangent, tangent_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rmsprops_division_by_a_root_is_its_double_where_form_on_nonnegative_radicands(
    dtype,
) -> None:
    """One select instead of two: ``g / sqrt(v + eps)``, ``0 * g`` where the root is zero,
    with the values (on nonnegative radicands, subnormal, infinite and NaN ones included,
    against gradients of every kind) and the derivatives of the double-where form."""
    from optref.core._rms import _over_root, _over_root_reference

    g = jnp.asarray(_values(dtype, n=20000, seed=6))
    v = jnp.abs(jnp.asarray(_values(dtype, n=20000, seed=7)))
    v = v.at[::7].set(0).at[1::7].set(np.finfo(dtype).smallest_subnormal)
    assert _same(jax.jit(_over_root)(g, v), jax.jit(_over_root_reference)(g, v))
    assert _count(_over_root, g, v, op="select") == 1
    g, v = _at_the_edges(dtype)
    v = jnp.abs(v)
    tangents = (jnp.ones_like(g), jnp.ones_like(v))
    out, tangent = jax.jit(lambda *x: jax.jvp(_over_root, x, tangents))(g, v)
    out_ref, tangent_ref = jax.jit(lambda *x: jax.jvp(_over_root_reference, x, tangents))(g, v)
    assert _same(out, out_ref) and _same(tangent, tangent_ref)
