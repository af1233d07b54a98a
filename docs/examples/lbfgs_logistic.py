"""Full-batch L-BFGS (optref.linesearch.lbfgs) on L2-regularised logistic regression.

    python docs/examples/lbfgs_logistic.py [--iterations 100] [--plot lbfgs_logistic.png]

Multinomial logistic regression on scikit-learn's digits (1797 images, 64 features, 10
classes): minimise

$$f(W, b) = -\\frac1n \\sum_{i=1}^n \\log \\mathrm{softmax}(W x_i + b)_{y_i}
            + \\frac{\\lambda}{2} \\lVert W \\rVert_F^2,$$

a smooth, strongly convex problem in 650 variables. ``lbfgs()`` (memory 10, zoom line
search for the strong Wolfe conditions) runs in float32 under ``jax.jit``; the script
records the loss and gradient norm at every iteration and compares the final loss with
SciPy's L-BFGS-B run in float64 on the same objective.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from sklearn.datasets import load_digits

import optref.core as opt
import optref.linesearch as ls

Params = dict[str, jax.Array]


def objective(x: jax.Array, y: jax.Array, l2: float):
    """The regularised mean cross-entropy as a function of the params."""

    def f(params: Params) -> jax.Array:
        logits = x @ params["w"] + params["b"]
        log_probs = jax.nn.log_softmax(logits)
        data = -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))
        return data + 0.5 * l2 * jnp.sum(params["w"] ** 2)

    return f


def scipy_reference(x: np.ndarray, y: np.ndarray, l2: float) -> float:
    """The minimum found by SciPy's L-BFGS-B in float64 (a tight tolerance)."""
    n, d = x.shape
    onehot = np.eye(10)[y]

    def f_and_grad(theta):
        w, b = theta[: d * 10].reshape(d, 10), theta[d * 10 :]
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        value = -np.mean(np.log(probs[np.arange(n), y])) + 0.5 * l2 * np.sum(w**2)
        residual = (probs - onehot) / n
        grad = np.concatenate([(x.T @ residual + l2 * w).ravel(), residual.sum(axis=0)])
        return value, grad

    result = scipy.optimize.minimize(
        f_and_grad,
        np.zeros(d * 10 + 10),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10},
    )
    return float(result.fun)


def main(
    iterations: int = 100, l2: float = 1e-3, reference: bool = True, plot: Path | None = None
) -> dict[str, Any]:
    """Runs ``iterations`` L-BFGS steps from zero; returns the loss and gradient-norm
    histories, the line-search step counts and (with ``reference``) SciPy's float64
    minimum."""
    data = load_digits()
    x_np = (data.data / 16.0).astype(np.float32)
    y_np = data.target.astype(np.int32)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    f = objective(x, y, l2)
    solver = ls.lbfgs()
    value_and_grad = ls.value_and_grad_from_state(f)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=f)
        return opt.apply_updates(params, updates), state, value, opt.tree_l2_norm(grad)

    params: Params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
    state = solver.init(params)
    losses, grad_norms, searches = [], [], []
    for _ in range(iterations):
        params, state, value, grad_norm = step(params, state)
        losses.append(float(value))
        grad_norms.append(float(grad_norm))
        searches.append(int(opt.tree_get(state, "info").num_linesearch_steps))
    losses.append(float(f(params)))
    minimum = scipy_reference(x_np.astype(np.float64), y_np, l2) if reference else None
    accuracy = float(jnp.mean(jnp.argmax(x @ params["w"] + params["b"], axis=1) == y))
    results = {
        "losses": losses,
        "grad_norms": grad_norms,
        "linesearch_steps": searches,
        "scipy_minimum": minimum,
        "training_accuracy": accuracy,
    }
    if plot is not None and minimum is not None:
        _plot(results, plot)
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.2))
    gap = np.maximum(np.array(results["losses"]) - results["scipy_minimum"], 1e-9)
    left.semilogy(gap)
    left.set_xlabel("iteration")
    left.set_ylabel("f - f* (f*: SciPy, float64)")
    right.semilogy(results["grad_norms"])
    right.set_xlabel("iteration")
    right.set_ylabel("gradient norm")
    fig.suptitle("optref.linesearch.lbfgs(), logistic regression on digits, float32")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    out = main(args.iterations, plot=args.plot)
    for i in sorted({0, 1, 2, 5, 10, 20, 50, args.iterations}):
        if i < len(out["losses"]):
            print(f"iteration {i:4d}: loss {out['losses'][i]:.7f}")
    print(f"SciPy L-BFGS-B (float64) minimum: {out['scipy_minimum']:.7f}")
    print(f"line-search steps per iteration: max {max(out['linesearch_steps'])}")
    print(f"training accuracy: {out['training_accuracy']:.4f}")
