"""MAML on sinusoid regression, with optref's Adam as the inner optimizer.

    python docs/examples/maml_sinusoid.py [--meta-steps 2000] [--plot maml_sinusoid.png]

The task family of Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks" (ICML 2017), section 5.1: regress
$y = A \\sin(x - \\varphi)$ with $A \\sim U[0.1, 5]$, $\\varphi \\sim U[0, \\pi]$,
$x \\sim U[-5, 5]$, from $K$ examples. The inner loop takes a few Adam steps from the
meta-parameters $\\theta$ on the support set; the meta-loss is the adapted model's error on
a query set, and its gradient with respect to $\\theta$ goes through the Adam updates.

Adam's update $\\hat m / (\\sqrt{\\hat v + \\varepsilon_{root}} + \\varepsilon)$ has a square
root whose derivative is infinite at $\\hat v = 0$: wherever a gradient coordinate is
exactly zero (a ReLU unit dead on the whole support set), ``jnp.sqrt``'s chain rule
multiplies that infinity by zero, and with $\\varepsilon_{root} = 0$ the meta-gradient is
NaN (Optax). With $\\varepsilon_{root} > 0$ (Optax's advice for meta-learning) it is
finite; optref's Adam takes the root with ``safe_sqrt``, whose derivative at 0 is the exact
0 there, so its meta-gradient is finite with $\\varepsilon_{root} = 0$ too. The script
measures both libraries on a meta-batch where a hidden unit is dead.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import optref.core as opt

Params = dict[str, jax.Array]


def init_mlp(rng: np.random.Generator, width: int = 40) -> Params:
    """The 1-40-40-1 ReLU network of the paper, He-initialised."""
    return {
        "w1": jnp.asarray(rng.normal(size=(1, width)) * np.sqrt(2.0), jnp.float32),
        "b1": jnp.zeros(width),
        "w2": jnp.asarray(rng.normal(size=(width, width)) * np.sqrt(2.0 / width), jnp.float32),
        "b2": jnp.zeros(width),
        "w3": jnp.asarray(rng.normal(size=(width, 1)) * np.sqrt(1.0 / width), jnp.float32),
        "b3": jnp.zeros(1),
    }


def mlp(params: Params, x: jax.Array) -> jax.Array:
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    hidden = jax.nn.relu(hidden @ params["w2"] + params["b2"])
    return hidden @ params["w3"] + params["b3"]


def mse(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((mlp(params, x) - y) ** 2)


def sample_tasks(
    rng: np.random.Generator, tasks: int, shots: int
) -> tuple[tuple[jax.Array, ...], np.ndarray]:
    """``tasks`` sinusoids, $A \\sim U[0.1, 5]$, $\\varphi \\sim U[0, \\pi]$, each with
    ``shots`` support and ``shots`` query points $x \\sim U[-5, 5]$; and the (A, phi) pairs."""
    amplitude = rng.uniform(0.1, 5.0, (tasks, 1, 1))
    phase = rng.uniform(0.0, np.pi, (tasks, 1, 1))
    x = rng.uniform(-5.0, 5.0, (tasks, 2 * shots, 1))
    y = amplitude * np.sin(x - phase)
    arrays = (x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
    return tuple(jnp.asarray(a, jnp.float32) for a in arrays), np.stack([amplitude, phase])


def adapt(inner: Any, params: Params, x: jax.Array, y: jax.Array, steps: int) -> Params:
    """``steps`` steps of ``inner`` (an optref or Optax transformation) on one task."""
    state = inner.init(params)
    for _ in range(steps):
        grads = jax.grad(mse)(params, x, y)
        updates, state = inner.update(grads, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params


def meta_loss(params: Params, inner: Any, tasks: tuple[jax.Array, ...], steps: int) -> jax.Array:
    """Mean query error after adapting to each task's support set."""

    def one(xs, ys, xq, yq):
        return mse(adapt(inner, params, xs, ys, steps), xq, yq)

    return jnp.mean(jax.vmap(one)(*tasks))


# The transformation is an argument: optref's hyperparameters are arrays, so optref Adams
# with different eps_root share one compiled function (Optax's are recompiled).
meta_gradient = eqx.filter_jit(jax.grad(meta_loss))
evaluate = eqx.filter_jit(meta_loss)
query_error = eqx.filter_jit(jax.vmap(mse, in_axes=(None, 0, 0)))
task_gradients = eqx.filter_jit(jax.vmap(jax.grad(mse), in_axes=(None, 0, 0)))


def meta_gradient_nans(inner: Any, params: Params, tasks: tuple[jax.Array, ...], steps: int):
    """The number of NaN coordinates of the meta-gradient, and of zero inner gradients."""
    grads = meta_gradient(params, inner, tasks, steps)
    nans = sum(int(np.isnan(g).sum()) for g in jax.tree.leaves(grads))
    first = task_gradients(params, tasks[0], tasks[1])
    zeros = sum(int((np.asarray(g) == 0).sum()) for g in jax.tree.leaves(first))
    return nans, zeros


def with_dead_unit(params: Params) -> Params:
    """The same network with hidden unit 0 of the first layer dead for every input in
    [-5, 5] ($w = 0$, $b = -1$): its incoming weight and bias get exactly zero gradient."""
    w1, b1 = np.array(params["w1"]), np.array(params["b1"])
    w1[:, 0], b1[0] = 0.0, -1.0
    return {**params, "w1": jnp.asarray(w1), "b1": jnp.asarray(b1)}


def main(
    meta_steps: int = 2000,
    meta_batch: int = 25,
    shots: int = 10,
    inner_steps: int = 1,
    inner_learning_rate: float = 0.01,
    meta_learning_rate: float = 1e-3,
    eps_root: float = 1e-8,
    test_tasks: int = 100,
    compare_optax: bool = True,
    seed: int = 0,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Meta-trains with optref Adam inside and out; returns the meta-losses, the
    NaN counts of one meta-gradient for each ``eps_root`` and library, and the
    post-adaptation test error."""
    rng = np.random.default_rng(seed)
    params = init_mlp(rng)

    probe_params = with_dead_unit(params)
    probe, _ = sample_tasks(rng, meta_batch, shots)
    nan_counts: dict[str, int] = {}
    zero_grads = 0
    libraries = [("optref", opt.adam), ("optax", optax.adam)][: 2 if compare_optax else 1]
    for library, adam in libraries:
        for root in (0.0, eps_root):
            inner = adam(inner_learning_rate, eps_root=root)
            nans, zero_grads = meta_gradient_nans(inner, probe_params, probe, inner_steps)
            nan_counts[f"{library} eps_root={root:g}"] = nans

    inner = opt.adam(inner_learning_rate, eps_root=eps_root)
    outer = opt.adam(meta_learning_rate)

    @jax.jit
    def meta_step(params, outer_state, tasks):
        loss, grads = jax.value_and_grad(meta_loss)(params, inner, tasks, inner_steps)
        updates, outer_state = outer.update(grads, outer_state, params)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        return opt.apply_updates(params, updates), outer_state, loss, finite

    outer_state = outer.init(params)
    losses, all_finite = [], True
    for _ in range(meta_steps):
        tasks, _ = sample_tasks(rng, meta_batch, shots)
        params, outer_state, loss, finite = meta_step(params, outer_state, tasks)
        losses.append(float(loss))
        all_finite &= bool(finite)

    test, _ = sample_tasks(rng, test_tasks, shots)
    before = float(jnp.mean(query_error(params, test[2], test[3])))
    after = float(evaluate(params, inner, test, inner_steps))
    results = {
        "meta_losses": losses,
        "meta_gradients_finite": all_finite,
        "nan_counts": nan_counts,
        "zero_inner_gradients": zero_grads,
        "test_error_before_adaptation": before,
        "test_error_after_adaptation": after,
    }
    if plot is not None:
        _plot(results, params, inner, inner_steps, shots, rng, plot)
    return results


def _plot(results, params, inner, inner_steps, shots, rng, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.2))
    losses = np.array(results["meta_losses"])
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    left.plot(losses, alpha=0.3, label="meta-batch")
    left.plot(np.arange(window - 1, len(losses)), smooth, label=f"mean of {window}")
    left.set_yscale("log")
    left.set_xlabel("meta-step")
    left.set_ylabel("query MSE after adaptation")
    left.legend()

    task, (amplitude, phase) = sample_tasks(rng, 1, shots)
    xs, ys = task[0][0], task[1][0]
    amplitude, phase = float(amplitude.squeeze()), float(phase.squeeze())
    grid = jnp.linspace(-5, 5, 200)[:, None]
    adapted = adapt(inner, params, xs, ys, inner_steps)
    right.plot(grid, amplitude * jnp.sin(grid - phase), "k", label="task")
    right.plot(xs, ys, "ko", label=f"{shots} support points")
    right.plot(grid, mlp(params, grid), ":", label="meta-parameters")
    right.plot(grid, mlp(adapted, grid), "--", label=f"after {inner_steps} step(s)")
    right.set_xlabel("x")
    right.legend(fontsize=7)
    fig.suptitle("MAML, sinusoid regression, inner optimizer optref.core.adam(eps_root=1e-8)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-steps", type=int, default=2000)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    out = main(args.meta_steps, plot=args.plot)
    print(
        f"zero coordinates of the inner gradients (probe meta-batch): {out['zero_inner_gradients']}"
    )
    for name, nans in out["nan_counts"].items():
        print(f"NaN coordinates of the meta-gradient, {name}: {nans}")
    print(f"every meta-gradient of training finite: {out['meta_gradients_finite']}")
    print(
        f"test MSE over 100 new tasks: {out['test_error_before_adaptation']:.3f} before, "
        f"{out['test_error_after_adaptation']:.3f} after adaptation"
    )
