"""Per-group learning rates and frozen layers with optref.masking, on an Equinox MLP.

    python docs/examples/param_groups.py [--steps 300] [--plot param_groups.png]

A common fine-tuning recipe: the first layer of an encoder is frozen (zero updates, no
optimizer state), the rest of the encoder trains slowly, the head trains fast, and biases
get no weight decay. ``optref.masking.param_groups`` builds it from regular expressions on
the parameter names; each group's hyperparameters are injected, so they can be read
(``tree_get_all``) and changed (``tree_set``) in the optimizer state during training.
The script trains it on scikit-learn's digits, checks that the frozen layer did not move
and that the state holds no moments for it, and compares with ``selective_transform``
(freezing only) and with one AdamW for everything.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

import optref.core as opt
from optref.masking import param_groups, selective_transform


class Classifier(eqx.Module):
    """An encoder MLP (64 -> 32 -> 32) and a linear head (32 -> 10)."""

    encoder: eqx.nn.MLP
    head: eqx.nn.Linear

    def __init__(self, key: jax.Array):
        k_encoder, k_head = jax.random.split(key)
        self.encoder = eqx.nn.MLP(64, 32, 32, depth=1, activation=jax.nn.relu, key=k_encoder)
        self.head = eqx.nn.Linear(32, 10, key=k_head)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(jax.nn.relu(self.encoder(x)))


def loss_fn(model: Classifier, x: jax.Array, y: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(jax.vmap(model)(x))
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def grouped_optimizer(head_lr: float, encoder_lr: float, weight_decay: float):
    """Frozen first layer; biases without weight decay; a slow encoder; a fast head.

    Patterns are matched against the whole name, first match wins, so the frozen layer
    comes first and the biases before the layer groups.
    """
    adamw = opt.inject_hyperparams(opt.adamw)
    return param_groups(
        {
            "frozen": (r"encoder\.layers\[0\]\..*", opt.set_to_zero()),
            "bias": (r".*\.bias", adamw(learning_rate=head_lr, weight_decay=0.0)),
            "encoder": (r"encoder\..*", adamw(learning_rate=encoder_lr, weight_decay=weight_decay)),
            "head": (r"head\..*", adamw(learning_rate=head_lr, weight_decay=weight_decay)),
        }
    )


def state_bytes(state: Any) -> int:
    return sum(leaf.nbytes for leaf in jax.tree.leaves(eqx.filter(state, eqx.is_array)))


def train(optimizer, model, batches, retune: tuple[int, str, float] | None = None):
    """Runs ``optimizer``; at step ``retune[0]`` sets group ``retune[1]``'s learning rate
    to ``retune[2]`` in the state. Returns the model, the losses and the final state."""

    @eqx.filter_jit
    def step(model, state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, state = optimizer.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, loss

    state = optimizer.init(eqx.filter(model, eqx.is_array))
    losses = []
    for i, (x, y) in enumerate(batches):
        if retune is not None and i == retune[0]:
            state = opt.tree_set(state, f"['{retune[1]}']", learning_rate=retune[2])
        model, state, loss = step(model, state, x, y)
        losses.append(float(loss))
    return model, losses, state


def main(
    steps: int = 300,
    batch_size: int = 64,
    head_lr: float = 1e-2,
    encoder_lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Trains three ways; returns losses, the group table, state sizes and the checks."""
    data = load_digits()
    x_all = (data.data / 16.0).astype(np.float32)
    y_all = data.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    batches = [
        (x_all[i], y_all[i])
        for i in (rng.choice(len(x_all), batch_size, replace=False) for _ in range(steps))
    ]
    model = Classifier(jax.random.key(seed))
    params = eqx.filter(model, eqx.is_array)
    frozen = jax.tree.map(lambda _: False, params)
    frozen = eqx.tree_at(lambda m: m.encoder.layers[0], frozen, replace_fn=lambda _: True)

    grouped = grouped_optimizer(head_lr, encoder_lr, weight_decay)
    runs = {
        "param_groups": grouped,
        "selective_transform": selective_transform(
            opt.adamw(head_lr, weight_decay=weight_decay), freeze_mask=frozen
        ),
        "adamw": opt.adamw(head_lr, weight_decay=weight_decay),
    }
    results: dict[str, Any] = {"group_table": grouped.group_table(model), "runs": {}}
    for name, optimizer in runs.items():
        retune = (steps // 2, "head", head_lr / 10) if name == "param_groups" else None
        trained, losses, state = train(optimizer, model, batches, retune)
        first = trained.encoder.layers[0]
        results["runs"][name] = {
            "losses": losses,
            "state_bytes": state_bytes(state),
            "first_layer_unchanged": bool(
                jnp.array_equal(first.weight, model.encoder.layers[0].weight)
                and jnp.array_equal(first.bias, model.encoder.layers[0].bias)
            ),
            "accuracy": float(jnp.mean(jnp.argmax(jax.vmap(trained)(x_all), 1) == y_all)),
        }
        if name == "param_groups":
            results["learning_rates"] = {
                path: float(value)
                for path, value in opt.tree_get_all(state, "learning_rate").items()
            }
            results["frozen_group_state_leaves"] = len(
                jax.tree.leaves(eqx.filter(state.inner_states["frozen"], eqx.is_array))
            )
    if plot is not None:
        _plot(results, steps // 2, plot)
    return results


def _plot(results: dict[str, Any], retune_step: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for name, run in results["runs"].items():
        ax.plot(run["losses"], label=f"{name} ({run['state_bytes']} bytes of state)")
    ax.axvline(retune_step, color="grey", lw=0.8, ls=":")
    ax.annotate("head lr / 10 (tree_set)", (retune_step, 1.5), fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (batch)")
    ax.set_title("digits MLP: frozen first layer, per-group learning rates")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    out = main(args.steps, plot=args.plot)
    print(out["group_table"])
    print("learning rates in the final state:")
    for path, value in out["learning_rates"].items():
        print(f"  {path}: {value:g}")
    for name, run in out["runs"].items():
        print(
            f"{name}: final loss {run['losses'][-1]:.4f}, accuracy {run['accuracy']:.4f}, "
            f"state {run['state_bytes']} bytes, "
            f"first layer unchanged {run['first_layer_unchanged']}"
        )
