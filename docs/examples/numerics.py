"""The measurements on the numerics page (docs/numerics.md), printed as Markdown tables.

    python docs/examples/numerics.py

1. The bias correction $1 - \\beta^t$ in float32: subtraction against
   ``optref.core.bias_correction`` (expm1/log1p), relative error against float64.
2. One Adam step in float32, bfloat16 and float16 on identical inputs, optref and Optax,
   against optref's float64 step of the same rounded inputs: the audit's metric,
   rms(u - u64) / rms(u64) in epsilons of the dtype (``optref.audit.one_step_errors``),
   the worst of steps 1, 2, 5, 10 and 20.
3. A zero gradient in float16: Adam's update, optref and Optax.
4. Derivatives at the edge of the domain: a norm at zero, Adam's square root at a zero
   gradient (``eps_root``), RAdam's rectification, and L-BFGS's first step from zero.
5. Division by a scalar under ``jax.jit``: how many quotients differ from the correctly
   rounded ones (NumPy's), in float32 and float64, as compiled by XLA and with the divisor
   broadcast behind ``jax.lax.optimization_barrier``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import optref.core as opt  # noqa: E402
import optref.linesearch as ls  # noqa: E402
from optref.audit import load_cases, one_step_errors  # noqa: E402

EPS = {d: float(jnp.finfo(d).eps) for d in ("float32", "bfloat16", "float16")}
STEPS = (1, 2, 5, 10, 20)


def bias_correction_errors() -> list[tuple[float, int, float, float]]:
    """``(β, t, subtraction, optref)``: the relative error of ``1 - β^t`` in float32, in ε,
    by subtraction and by ``optref.core.bias_correction``, against the exact value for the
    float32-rounded β (so the formula's error alone)."""
    rows = []
    for beta in (0.9, 0.999, 0.9999):
        for t in (1, 2, 10, 100, 1000):
            b = jnp.asarray(beta, jnp.float32)
            exact = -np.expm1(t * np.log1p(float(b.astype(jnp.float64)) - 1))
            naive = 1 - b ** jnp.asarray(t, jnp.float32)
            errors = [
                abs(float(value.astype(jnp.float64)) - exact) / exact / EPS["float32"]
                for value in (naive, opt.bias_correction_factor(b, t))
            ]
            rows.append((beta, t, *errors))
    return rows


def one_step_errors_table() -> list[tuple[str, str, str, float, float]]:
    """``(case, problem, dtype, optref, optax)``: the worst one-step error, in ε."""
    rows = []
    cases = {c.name: c for c in load_cases("core.adam*")}
    for name in ("core.adam", "core.adam-eps_root"):
        for problem in ("quadratic", "mlp"):
            runs: dict[str, Any] = {}
            for dtype in ("float32", "bfloat16", "float16"):
                worst = [
                    max(one_step_errors(cases[name], lib, dtype, problem, STEPS, runs).values())
                    for lib in ("optref", "optax")
                ]
                rows.append((name, problem, dtype, *worst))
    return rows


def float16_zero_gradient() -> dict[str, np.ndarray]:
    """The update of ``adam(1e-3)`` at a zero float16 gradient, by library."""
    params = jnp.ones(3, jnp.float16)
    grads = jnp.zeros(3, jnp.float16)
    out = {}
    for name, tx in [("optref", opt.adam(1e-3)), ("Optax", optax.adam(1e-3))]:
        updates, _ = tx.update(grads, tx.init(params), params)
        out[name] = np.asarray(updates)
    return out


def _after_steps(tx: Any, steps: int, loss: Callable[[jax.Array], jax.Array]):
    def run(x0):
        x, state = x0, tx.init(x0)
        for _ in range(steps):
            updates, state = tx.update(jax.grad(loss)(x), state, x)
            x = x + updates
        return loss(x)

    return run


def _adam_update_sum(adam: Callable[..., Any], eps_root: float):
    tx = adam(0.1, eps_root=eps_root)

    def f(g):
        updates, _ = tx.update(g, tx.init(g), g)
        return jnp.sum(updates)

    return f


def _quadratic(x: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * x**2)


def derivatives() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(what, optref's gradient, Optax's or plain JAX's gradient)``, in float64."""
    zero = jnp.zeros(3)
    g = jnp.array([0.0, 1.0, -2.0])
    x0 = jnp.array([1.0, -1.0, 0.5])
    lbfgs_optref = opt.chain(ls.scale_by_lbfgs(), opt.scale(-0.1))
    lbfgs_optax = optax.chain(optax.scale_by_lbfgs(), optax.scale(-0.1))

    def shifted(x):
        return _quadratic(x - 1.0)

    pairs = [
        (
            "d‖x‖/dx at x = 0 (`safe_norm` / `jnp.linalg.norm`)",
            (opt.safe_norm, zero),
            (jnp.linalg.norm, zero),
        ),
        *(
            (
                f"d(Adam update)/dg, one coordinate of g zero, eps_root = {root:g}",
                (_adam_update_sum(opt.adam, root), g),
                (_adam_update_sum(optax.adam, root), g),
            )
            for root in (0.0, 1e-8)
        ),
        (
            "d(loss after 3 steps of `radam(0.1)`)/dx₀",
            (_after_steps(opt.radam(0.1), 3, _quadratic), x0),
            (_after_steps(optax.radam(0.1), 3, _quadratic), x0),
        ),
        (
            "d(loss after 3 steps of `chain(scale_by_lbfgs(), scale(-0.1))`)/dx₀ at x₀ = 0",
            (_after_steps(lbfgs_optref, 3, shifted), zero),
            (_after_steps(lbfgs_optax, 3, shifted), zero),
        ),
    ]
    return [
        (what, np.asarray(jax.grad(f)(x)), np.asarray(jax.grad(h)(y)))
        for what, (f, x), (h, y) in pairs
    ]


def division_by_a_scalar(size: int = 1_000_000) -> list[tuple[str, str, int, int]]:
    """``x / c`` jitted, with ``x`` uniform in [0, 1) and ``c = 0.19``: (dtype, form, elements
    that differ from NumPy's correctly rounded quotient, elements). The compiled form is
    what XLA makes of ``divide(x, broadcast(c))``; the barrier form hides the broadcast
    from XLA's simplifier."""
    rows = []
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).random(size).astype(dtype)
        c = dtype(0.19)
        exact = x / c
        forms = {
            "x / c": lambda x, c: x / c,
            "x / barrier(broadcast(c))": lambda x, c: (
                x / jax.lax.optimization_barrier(jnp.broadcast_to(c, x.shape))
            ),
        }
        for form, f in forms.items():
            got = np.asarray(jax.jit(f)(jnp.asarray(x), jnp.asarray(c)))
            rows.append((np.dtype(dtype).name, form, int((got != exact).sum()), size))
    return rows


def _summary(gradient: np.ndarray) -> str:
    nans = int(np.isnan(gradient).sum())
    return (
        f"{nans} NaN of {gradient.size}" if nans else f"finite (max {np.abs(gradient).max():.3g})"
    )


def main() -> str:
    """Every table of the numerics page, in Markdown."""
    sections = [
        (
            "Bias correction in float32, relative error in ε",
            ["| β | t | subtraction | optref |", "|---|---|---|---|"]
            + [f"| {b} | {t} | {n:.3g} ε | {o:.3g} ε |" for b, t, n, o in bias_correction_errors()],
        ),
        (
            "One Adam step against the float64 oracle, worst of steps 1-20",
            ["| case | problem | dtype | optref (ε) | Optax (ε) |", "|---|---|---|---|---|"]
            + [
                f"| `{c}` | {p} | {d} | {o:.3g} | {x:.3g} |"
                for c, p, d, o, x in one_step_errors_table()
            ],
        ),
        (
            "A zero gradient in float16",
            ["| library | update of `adam(1e-3)` at g = 0, float16 |", "|---|---|"]
            + [f"| {k} | `{v.tolist()}` |" for k, v in float16_zero_gradient().items()],
        ),
        (
            "Derivatives at the edge of the domain (float64)",
            ["| derivative | optref | Optax / plain JAX |", "|---|---|---|"]
            + [f"| {w} | {_summary(a)} | {_summary(b)} |" for w, a, b in derivatives()],
        ),
        (
            "Division by a scalar under jax.jit, against the correctly rounded quotient",
            ["| dtype | jitted | quotients that differ |", "|---|---|---|"]
            + [
                f"| {d} | `{f}` | {n} of {size} ({100 * n / size:.3g}%) |"
                for d, f, n, size in division_by_a_scalar()
            ],
        ),
    ]
    out = [f"jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}"]
    for title, rows in sections:
        out += ["", f"**{title}**", "", *rows]
    return "\n".join(out)


if __name__ == "__main__":
    print(main())
