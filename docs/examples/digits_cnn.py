"""An Equinox CNN on scikit-learn's digits, trained by Optax's Adam and optref's side by side.

    python docs/examples/digits_cnn.py [--steps 600] [--batch-size 64] [--plot digits_cnn.png]

The digits data set (1797 grey 8x8 images of the digits 0-9) ships with scikit-learn, so
nothing is downloaded. Both runs start from the same initial model and see the same
batches in the same order; only the optimizer differs (``optax.adam`` against
``optref.core.adam``, same hyperparameters, float32). The script prints both loss curves'
largest relative difference and both test accuracies, and plots the two curves.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import optref.core as opt


class CNN(eqx.Module):
    """Two 3x3 convolutions and a linear read-out: 8x8x1 -> 6x6x8 -> 4x4x16 -> 10."""

    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    head: eqx.nn.Linear

    def __init__(self, key: jax.Array):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = eqx.nn.Conv2d(1, 8, kernel_size=3, key=k1)
        self.conv2 = eqx.nn.Conv2d(8, 16, kernel_size=3, key=k2)
        self.head = eqx.nn.Linear(16 * 4 * 4, 10, key=k3)

    def __call__(self, image: jax.Array) -> jax.Array:
        hidden = jax.nn.relu(self.conv1(image))
        hidden = jax.nn.relu(self.conv2(hidden))
        return self.head(hidden.reshape(-1))


def loss_fn(model: CNN, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy, $-\\frac1B\\sum_b \\log \\mathrm{softmax}(f(x_b))_{y_b}$."""
    logits = jax.vmap(model)(images)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


def accuracy(model: CNN, images: jax.Array, labels: jax.Array) -> float:
    return float(jnp.mean(jnp.argmax(jax.vmap(model)(images), axis=1) == labels))


def digits(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Train and test splits (75% / 25%), images scaled to [0, 1] with a channel axis."""
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    return tuple(
        train_test_split(images, data.target.astype(np.int32), test_size=0.25, random_state=seed)
    )


def train(
    optimizer: Any,
    apply_updates: Callable[[Any, Any], Any],
    model: CNN,
    batches: list[tuple[np.ndarray, np.ndarray]],
    label: str,
    progress: bool,
) -> tuple[CNN, list[float]]:
    """Runs ``optimizer`` over ``batches``; returns the model and the loss at every step."""

    @eqx.filter_jit
    def step(model, state, images, labels):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, images, labels)
        updates, state = optimizer.update(grads, state, eqx.filter(model, eqx.is_array))
        return apply_updates(model, updates), state, loss

    state = optimizer.init(eqx.filter(model, eqx.is_array))
    losses = []
    bar = tqdm(batches, desc=label, disable=not progress)
    for images, labels in bar:
        model, state, loss = step(model, state, images, labels)
        losses.append(float(loss))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return model, losses


def main(
    steps: int = 600,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    plot: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Trains the CNN with each library; returns the loss curves and test accuracies."""
    x_train, x_test, y_train, y_test = digits(seed)
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        index = rng.choice(len(x_train), batch_size, replace=False)
        batches.append((x_train[index], y_train[index]))
    model = CNN(jax.random.key(seed))

    results: dict[str, Any] = {}
    for label, optimizer, apply_updates in [
        ("optax", optax.adam(learning_rate), optax.apply_updates),
        ("optref", opt.adam(learning_rate), opt.apply_updates),
    ]:
        trained, losses = train(optimizer, apply_updates, model, batches, label, progress)
        results[label] = {"losses": losses, "accuracy": accuracy(trained, x_test, y_test)}

    a, b = np.array(results["optax"]["losses"]), np.array(results["optref"]["losses"])
    relative = np.abs(a - b) / np.abs(a)
    results["max_relative_loss_difference"] = float(np.max(relative))
    # Rounding differences grow as training goes on: the first step where they are visible.
    above = np.flatnonzero(relative > 1e-3)
    results["first_step_above_1e-3"] = int(above[0]) if above.size else None
    if plot is not None:
        _plot(results, plot)
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for label, style in [("optax", "-"), ("optref", "--")]:
        accuracy = results[label]["accuracy"]
        ax.plot(results[label]["losses"], style, label=f"{label} (test accuracy {accuracy:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (batch)")
    ax.set_title("CNN on digits: optax.adam and optref.core.adam")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    out = main(args.steps, args.batch_size, plot=args.plot)
    for library in ("optax", "optref"):
        print(
            f"{library}: final batch loss {out[library]['losses'][-1]:.5f}, "
            f"test accuracy {out[library]['accuracy']:.4f}"
        )
    print(
        "largest relative difference of the loss curves: "
        f"{out['max_relative_loss_difference']:.2e} "
        f"(first above 1e-3 at step {out['first_step_above_1e-3']})"
    )
