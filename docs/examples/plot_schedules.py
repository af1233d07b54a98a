"""Plot every optref schedule into <output-folder>/<name>.png (default: ./schedule-plots).

    python docs/examples/plot_schedules.py [output-folder]

The docs build runs it (``docs/hooks/schedule_plots.py``) and puts the figures into the
site as ``assets/schedules/<name>.png``; none is committed.

Each figure is drawn from the code: the schedules are built with optref's factories and
evaluated at every integer step. Small PNGs (80 dpi), one per schedule.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import optref.schedules as S

OUT = Path("schedule-plots")
DPI = 80
SIZE = (5.0, 2.4)

Variant = tuple[str, Callable[[jax.Array], jax.Array]]

# name -> (steps, variants as (label, schedule))
FIGURES: dict[str, tuple[int, list[Variant]]] = {
    "constant_schedule": (100, [("value=0.5", S.constant_schedule(0.5))]),
    "linear_schedule": (
        100,
        [
            ("1 → 0.1 over 60", S.linear_schedule(1.0, 0.1, 60)),
            ("0 → 1 over 40, begin 20", S.linear_schedule(0.0, 1.0, 40, 20)),
        ],
    ),
    "polynomial_schedule": (
        100,
        [
            ("power=2", S.polynomial_schedule(1.0, 0.0, 2.0, 80, 10)),
            ("power=0.5", S.polynomial_schedule(1.0, 0.0, 0.5, 80, 10)),
        ],
    ),
    "cosine_decay_schedule": (
        100,
        [
            ("alpha=0", S.cosine_decay_schedule(1.0, 80)),
            ("alpha=0.2", S.cosine_decay_schedule(1.0, 80, alpha=0.2)),
            ("exponent=3", S.cosine_decay_schedule(1.0, 80, exponent=3.0)),
        ],
    ),
    "exponential_decay": (
        100,
        [
            ("rate 0.5 / 20 steps", S.exponential_decay(1.0, 20, 0.5)),
            ("staircase, begin 10", S.exponential_decay(1.0, 20, 0.5, 10, staircase=True)),
            ("end_value=0.2", S.exponential_decay(1.0, 10, 0.5, end_value=0.2)),
        ],
    ),
    "piecewise_constant_schedule": (
        100,
        [
            ("{30: 0.5, 60: 0.2}", S.piecewise_constant_schedule(1.0, {30: 0.5, 60: 0.2})),
        ],
    ),
    "piecewise_interpolate_schedule": (
        100,
        [
            ("linear", S.piecewise_interpolate_schedule("linear", 1.0, {30: 0.5, 70: 0.2})),
            ("cosine", S.piecewise_interpolate_schedule("cosine", 1.0, {30: 0.5, 70: 0.2})),
        ],
    ),
    "join_schedules": (
        100,
        [
            (
                "linear | constant | cosine",
                S.join_schedules(
                    [
                        S.linear_schedule(0.0, 1.0, 20),
                        S.constant_schedule(1.0),
                        S.cosine_decay_schedule(1.0, 50, 0.1),
                    ],
                    [20, 40],
                ),
            ),
        ],
    ),
    "warmup_constant_schedule": (
        100,
        [
            ("warmup 30", S.warmup_constant_schedule(0.0, 1.0, 30)),
        ],
    ),
    "warmup_cosine_decay_schedule": (
        100,
        [
            (
                "warmup 15, decay to 0.1 by 80",
                S.warmup_cosine_decay_schedule(0.0, 1.0, 15, 80, end_value=0.1),
            ),
            ("exponent=2", S.warmup_cosine_decay_schedule(0.0, 1.0, 15, 80, exponent=2.0)),
        ],
    ),
    "warmup_exponential_decay_schedule": (
        100,
        [
            (
                "warmup 15, rate 0.5 / 15",
                S.warmup_exponential_decay_schedule(0.0, 1.0, 15, 15, 0.5),
            ),
            (
                "staircase, end 0.2",
                S.warmup_exponential_decay_schedule(
                    0.0, 1.0, 15, 15, 0.5, staircase=True, end_value=0.2
                ),
            ),
        ],
    ),
    "cosine_onecycle_schedule": (
        100,
        [
            ("T=80, pct_start=0.3", S.cosine_onecycle_schedule(80, 1.0)),
        ],
    ),
    "linear_onecycle_schedule": (
        100,
        [
            ("T=80, pct 0.3 / 0.85", S.linear_onecycle_schedule(80, 1.0)),
        ],
    ),
    "sgdr_schedule": (
        100,
        [
            (
                "three cycles",
                S.sgdr_schedule(
                    [
                        {
                            "init_value": 0.0,
                            "peak_value": 1.0,
                            "warmup_steps": 5,
                            "decay_steps": 25,
                        },
                        {
                            "init_value": 0.0,
                            "peak_value": 0.7,
                            "warmup_steps": 5,
                            "decay_steps": 30,
                        },
                        {
                            "init_value": 0.0,
                            "peak_value": 0.5,
                            "warmup_steps": 5,
                            "decay_steps": 45,
                        },
                    ]
                ),
            ),
        ],
    ),
}


def _plateau_figure(path: Path) -> None:
    """reduce_on_plateau: the scale it applies, fed a loss that improves then stalls."""
    steps = jnp.arange(100)
    loss = 1.0 + 2.0 * jnp.exp(-steps / 12.0) + 0.02 * jnp.sin(steps)
    transform = S.reduce_on_plateau(factor=0.5, patience=5, rtol=1e-3, cooldown=3)
    state = transform.init(jnp.zeros(()))

    def step(state, value):
        _, state = transform.update(jnp.zeros(()), state, value=value)
        return state, state.scale

    _, scales = jax.lax.scan(step, state, loss)
    figure, left = plt.subplots(figsize=SIZE)
    left.plot(steps, loss, color="0.6", label="monitored value")
    left.set_ylabel("value")
    right = left.twinx()
    right.step(steps, scales, where="post", color="C0", label="scale")
    right.set_ylabel("scale")
    left.set_xlabel("step")
    handles = left.get_lines() + right.get_lines()
    right.legend(
        handles, [h.get_label() for h in handles], loc="center right", fontsize=7, frameon=False
    )
    left.set_title("reduce_on_plateau(factor=0.5, patience=5, cooldown=3)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def main(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (steps, variants) in FIGURES.items():
        counts = jnp.arange(steps + 1)
        figure, axis = plt.subplots(figsize=SIZE)
        for label, schedule in variants:
            axis.plot(counts, jax.vmap(schedule)(counts), label=label, lw=1.5)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if len(variants) > 1 or variants[0][0]:
            axis.legend(fontsize=7, frameon=False)
        figure.tight_layout()
        path = out / f"{name}.png"
        figure.savefig(path, dpi=DPI)
        plt.close(figure)
        written.append(path)
    path = out / "reduce_on_plateau.png"
    _plateau_figure(path)
    written.append(path)
    return written


if __name__ == "__main__":
    for written in main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(written)
