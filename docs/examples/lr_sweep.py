"""A learning-rate sweep in one program: 16 Equinox MLPs, 16 Adam learning rates.

    python docs/examples/lr_sweep.py [figure.png]      # plot (default docs/assets/...)
    python docs/examples/lr_sweep.py --timing [steps]  # batched vs sequential, in seconds

``optref.core.sweep(optref.core.adam, learning_rate=rates)`` is one transformation whose
learning rate is an array of 16 values; ``eqx.filter_vmap`` over it, over 16 copies of the
model and over their states trains the 16 models side by side in one compiled program.
Because the learning rate is a leaf, the 16 separate runs it is compared with share one
compiled step too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import optref.core as oc

FIGURE = Path(__file__).resolve().parents[1] / "assets" / "hyperparameters" / "lr_sweep.png"


def data(n: int = 128) -> tuple[jax.Array, jax.Array]:
    """A fixed 1-D regression problem: y = sin(3x) + x/2 on [-1, 1]."""
    x = jnp.linspace(-1.0, 1.0, n)[:, None]
    return x, jnp.sin(3 * x) + 0.5 * x


def model(width: int, key: jax.Array) -> eqx.nn.MLP:
    return eqx.nn.MLP(1, 1, width, depth=2, activation=jax.nn.tanh, key=key)


def loss(net: eqx.nn.MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((jax.vmap(net)(x) - y) ** 2)


def train(tx: Any, net: eqx.nn.MLP, x: jax.Array, y: jax.Array, steps: int) -> jax.Array:
    """The loss before each of ``steps`` full-batch steps of ``tx`` (shape ``(steps,)``)."""
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def step(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(lambda p: loss(eqx.combine(p, static), x, y))(params)
        updates, state = tx.update(grads, state, params)
        return (oc.apply_updates(params, updates), state), value

    _, losses = jax.lax.scan(step, (params, tx.init(params)), length=steps)
    return losses


def sweep(learning_rates: jax.Array, steps: int, width: int) -> jax.Array:
    """Loss curves of Adam at each learning rate, in one program: shape ``(n, steps)``."""
    x, y = data()
    net = model(width, jax.random.key(0))
    n = len(learning_rates)
    nets = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)) if eqx.is_array(a) else a, net)
    batch = oc.sweep(oc.adam, learning_rate=learning_rates)
    run = eqx.filter_jit(
        eqx.filter_vmap(train, in_axes=(eqx.if_array(0), eqx.if_array(0), None, None, None))
    )
    return run(batch, nets, x, y, steps)


def separate(learning_rates: jax.Array, steps: int, width: int) -> jax.Array:
    """The same curves, one run after another (one compiled step: the rate is a leaf)."""
    x, y = data()
    net = model(width, jax.random.key(0))
    run = eqx.filter_jit(train)
    return jnp.stack([run(oc.adam(lr), net, x, y, steps) for lr in learning_rates])


def plot(learning_rates: np.ndarray, losses: np.ndarray, path: Path) -> None:
    """Loss curves coloured by learning rate, and the final loss against it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, final) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    colours = plt.cm.viridis(np.linspace(0, 1, len(learning_rates)))
    for lr, curve, colour in zip(learning_rates, losses, colours, strict=True):
        curves.semilogy(curve, color=colour, label=f"{lr:.0e}")
    curves.set(xlabel="step", ylabel="training loss", title="Adam, 16 learning rates")
    curves.legend(fontsize=6, ncol=2, title="learning rate", title_fontsize=7)
    final.loglog(learning_rates, losses[:, -1], "o-")
    final.set(xlabel="learning rate", ylabel="final loss", title="final loss vs learning rate")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def timing(n: int = 16, steps: int = 500, width: int = 32) -> dict[str, float]:
    """Seconds of the batched sweep and of ``n`` sequential runs in this process: the
    first call of each (compilation included; the sequential runs compile one step and
    reuse it) and a repeat (execution only), as wall-clock time and as this process's
    CPU time (which a busy machine inflates less), with the ratios sequential / batched.
    A tiny untimed sweep first pays JAX's one-time start-up."""
    jax.block_until_ready(sweep(jnp.ones(2), 1, 2))
    rates = jnp.logspace(-4, 0, n)
    result = {}
    for name, run in (("batched", sweep), ("sequential", separate)):
        for call in ("first", "repeat"):
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(run(rates, steps, width))
            result[f"{name}_{call}_wall_s"] = time.perf_counter() - wall
            result[f"{name}_{call}_cpu_s"] = time.process_time() - cpu
    for clock in ("wall", "cpu"):
        for call in ("first", "repeat"):
            result[f"ratio_{call}_{clock}"] = (
                result[f"sequential_{call}_{clock}_s"] / result[f"batched_{call}_{clock}_s"]
            )
    return result


def main(n: int = 16, steps: int = 300, width: int = 32, figure: Path | None = None) -> dict:
    """Run the sweep; plot it to ``figure`` if given. Returns the rates and curves."""
    rates = jnp.logspace(-4, 0, n)
    losses = np.asarray(sweep(rates, steps, width))
    if figure is not None:
        plot(np.asarray(rates), losses, figure)
    return {"learning_rates": np.asarray(rates), "losses": losses}


if __name__ == "__main__":
    if "--timing" in sys.argv:
        steps = int(sys.argv[sys.argv.index("--timing") + 1]) if len(sys.argv) > 2 else 500
        result = timing(steps=steps)
        print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {steps} steps:")
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()))
    else:
        main(figure=Path(sys.argv[1]) if len(sys.argv) > 1 else FIGURE)
