"""docs/examples/lr_sweep.py at a small size: the one-program sweep is the separate runs,
and the figure is drawn."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "lr_sweep.py"


def _example():
    spec = importlib.util.spec_from_file_location("lr_sweep_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lr_sweep_example():
    example = _example()
    rates = jnp.asarray([1e-3, 1e-2, 1e-1])
    batched = np.asarray(example.sweep(rates, steps=8, width=4))
    separate = np.asarray(example.separate(rates, steps=8, width=4))
    assert batched.shape == (3, 8)
    # float64 here (tests run with x64): the vmapped program rounds a few elementwise
    # operations differently from the single one (see docs/hyperparameters.md).
    np.testing.assert_allclose(batched, separate, rtol=1e-13, atol=0)
    assert np.all(batched[:, -1] < batched[:, 0])
    assert batched[2, -1] < batched[0, -1]  # a larger rate goes further in 8 steps


@pytest.mark.slow
def test_lr_sweep_example_figure(tmp_path):
    """The full-size sweep of the docs, drawn: the best final loss is at an inner rate."""
    out = _example().main(figure=tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = out["losses"][:, -1]
    assert 0 < int(np.argmin(final)) < len(final) - 1
