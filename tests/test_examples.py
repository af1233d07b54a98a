"""Every example script in docs/examples runs, at small sizes, and shows what its page says.

The full-size runs that draw the docs' figures, and the numerics page's measurements, are marked
``slow``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@pytest.fixture(autouse=True)
def float32():
    """The examples train in float32, as users run them (tests/conftest.py turns x64 on)."""
    with jax.enable_x64(False):
        yield


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses (bench.py's) look their module up.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_digits_cnn_optax_and_optref_agree():
    out = load("digits_cnn").main(steps=12, batch_size=32, progress=False)
    optref_losses = out["optref"]["losses"]
    # Same init, same batches: the two Adams differ by float32 rounding only (optref's bias
    # correction is computed by expm1), which training amplifies slowly (measured: 3e-5
    # after 20 steps, 1e-6 after 12).
    assert out["max_relative_loss_difference"] < 1e-5
    assert optref_losses[-1] < optref_losses[0]
    assert abs(out["optax"]["accuracy"] - out["optref"]["accuracy"]) <= 0.01


def test_maml_meta_gradients_finite_with_eps_root():
    out = load("maml_sinusoid").main(
        meta_steps=3, meta_batch=2, shots=5, test_tasks=2, compare_optax=False
    )
    _check_maml(out)


def _check_maml(out: dict) -> None:
    counts = out["nan_counts"]
    assert out["zero_inner_gradients"] > 0  # the probe has a dead unit
    assert counts["optref eps_root=1e-08"] == 0
    # optref's square root has the exact derivative 0 at v = 0, where dv = 0 too.
    assert counts["optref eps_root=0"] == 0
    assert out["meta_gradients_finite"]


@pytest.mark.slow
def test_maml_full_size_and_optax():
    out = load("maml_sinusoid").main()
    _check_maml(out)
    assert out["nan_counts"]["optax eps_root=0"] > 0
    assert out["nan_counts"]["optax eps_root=1e-08"] == 0
    assert out["test_error_after_adaptation"] < out["test_error_before_adaptation"]


def test_param_groups_freeze_and_per_group_learning_rates():
    out = load("param_groups").main(steps=6, batch_size=32)
    runs = out["runs"]
    assert runs["param_groups"]["first_layer_unchanged"]
    assert runs["selective_transform"]["first_layer_unchanged"]
    assert not runs["adamw"]["first_layer_unchanged"]
    assert out["frozen_group_state_leaves"] == 0
    # No moments for the 2080 frozen floats: less than half of AdamW's state.
    assert runs["selective_transform"]["state_bytes"] < runs["adamw"]["state_bytes"] / 2
    rates = {path.split("'")[1]: value for path, value in out["learning_rates"].items()}
    assert rates == pytest.approx({"bias": 1e-2, "encoder": 1e-3, "head": 1e-3})  # head retuned


def test_lbfgs_logistic_decreases_monotonically():
    out = load("lbfgs_logistic").main(iterations=10, reference=False)
    assert np.all(np.diff(out["losses"]) < 0)  # the zoom line search's sufficient decrease
    assert out["grad_norms"][-1] < 0.1 * out["grad_norms"][0]


@pytest.mark.slow
def test_lbfgs_logistic_reaches_scipy_minimum():
    out = load("lbfgs_logistic").main(iterations=100)
    # float32 against SciPy's float64 minimum (measured: 0.2618687 against 0.2618645).
    assert out["losses"][-1] - out["scipy_minimum"] < 1e-4 * out["scipy_minimum"]


def _run_sharded(steps: int, batch_size: int) -> dict:
    """The example in float64, in a process that starts JAX with 8 CPU devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    env.update(JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import sharded_training as s; "
        f"out = s.main(steps={steps}, batch_size={batch_size}, dtype='float64'); "
        "print(json.dumps({k: out[k] for k in "
        "('devices', 'layout', 'max_param_difference', 'max_loss_difference', 'losses')}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_sharded(out: dict) -> None:
    assert out["devices"] == 8
    layout = out["layout"]
    assert layout["w1"]["param_shard"] == [64, 256]  # (256, 256) over fsdp = 4
    for row in layout.values():
        assert row["mu_sharding_is_params"] and row["nu_sharding_is_params"]
        assert row["mu_shard"] == row["param_shard"] == row["nu_shard"]
    assert layout["b2"]["param_shard"] == [10]  # 10 does not divide by 4: replicated
    # Equal to the single-device run up to the summation order of the batch gradient, in
    # float64 (measured: 1.9e-13 of the params' RMS after 3 steps, 4.1e-14 after 100).
    assert out["max_param_difference"] < 1e-10
    assert out["max_loss_difference"] < 1e-10


def test_sharded_training_matches_one_device():
    _check_sharded(_run_sharded(steps=3, batch_size=64))


@pytest.mark.slow
def test_sharded_training_full_size():
    out = _run_sharded(steps=100, batch_size=256)
    _check_sharded(out)
    assert out["losses"][-1] < 0.5 * out["losses"][0]


def test_bench_every_optimizer_runs_in_both_libraries_and_makes_a_table_row() -> None:
    """bench.py at a tiny size: every contender compiles and steps in both libraries (and
    unfused), and the table the benchmarks page shows has a full row for each."""
    bench = load("bench")
    model = bench.Model("3 leaves, 60", bench._leaves_model(3, (4, 5)))
    device = jax.devices()[0]
    results = []
    for name, optimizer in bench.OPTIMIZERS.items():
        timing = bench.bench_pair(
            model, optimizer, device, rounds=1, steps=2, compiles=1, unfused=True
        )
        expected = {"optref", "optax"} | ({"optref unfused"} if optimizer.fuses else set())
        assert set(timing) == expected, name
        for library, t in timing.items():
            # A slow step (L-BFGS's) has its own number of rounds.
            steps = 2 * (optimizer.rounds or 1)
            assert len(t.compile_s) == 1 and len(t.steps_s) == steps, (name, library)
            assert t.kernels > 0 and t.traffic_bytes > 0, (name, library)
        results.append((model, name, timing))
    rows = bench.table(results, bandwidth=1e10).splitlines()[2:]
    assert [row.split(" | ")[1] for row in rows] == list(bench.OPTIMIZERS)
    # Every row has the header's columns, the unfused one included.
    assert all(row.count("|") == rows[0].count("|") for row in rows)


def test_bench_floor_steps_write_the_params_and_their_moments() -> None:
    bench = load("bench")
    model = bench.Model("3 leaves, 60", bench._leaves_model(3, (4, 5)))
    device = jax.devices()[0]
    floors = [
        (
            model,
            3,
            60,
            moments,
            bench.bench_floor(model, device, moments=moments, rounds=1, steps=2),
        )
        for moments in (0, 2)
    ]
    # One kernel a leaf and an output: the params, then also each moment tree.
    assert [t.kernels for *_, t in floors] == [3, 9]
    assert bench.floor_table(floors).count("\n| 3 leaves, 60 |") == 2


def test_compile_per_kernel_kernels_that_differ_compile_one_by_one():
    """The benchmarks page's account of flatten's compile time: on 100 leaves, kernels that
    differ by a constant or a slice's offset compile several times slower than kernels that
    are the same computation (measured on the CPU: 0.05 s against about 1 s)."""
    if jax.default_backend() != "cpu":
        pytest.skip("a property of XLA:CPU's compiler, which the page measures")
    script = load("compile_per_kernel")
    names = ["p + g", "p + (i + 1) g", "p - u[10 i : 10 i + 10]"]
    seconds = {name: script.compile_seconds(script.PROGRAMS[name], 100, 2) for name in names}
    alike = seconds["p + g"]
    assert seconds["p + (i + 1) g"] > 3 * alike, seconds
    assert seconds["p - u[10 i : 10 i + 10]"] > 3 * alike, seconds


@pytest.mark.slow  # timings: beside another pytest worker, a compile time moved 2x
def test_norm_passes_one_pass_pays_on_big_leaves_and_not_on_small_ones():
    """The bound at which the safe norms try the unscaled sum first: on leaves of 2**20
    elements one pass is several times faster than two (measured on the CPU: 48 against
    176 µs at the minimum), and on 200 leaves of 1024 the conditional makes the program
    slower to compile (2.57 against 1.57 s)."""
    if jax.default_backend() != "cpu":
        pytest.skip("XLA:CPU's costs, which the page measures")
    script = load("norm_passes")
    big = script.measure(2**20, steps=20)
    scaled, one_pass = big["scaled (two passes)"], big["one pass, scaled under cond"]
    assert one_pass[2] * 1.5 < scaled[2], big
    small = script.measure(1024, steps=2)
    scaled, one_pass = small["scaled (two passes)"], small["one pass, scaled under cond"]
    assert one_pass[0] > 1.2 * scaled[0], small
    # Under vmap the rows take one branch together: still one pass (1.08 against 4.34 ms).
    batched = script.measure_batched(16, 625_000, steps=10)
    scaled, one_pass = batched["scaled (two passes)"], batched["one pass, scaled under cond"]
    assert one_pass[1] * 1.5 < scaled[1], batched


def test_compile_catalogue_writes_one_row_per_alias():
    """The script behind the benchmarks page's catalogue table, on 30 leaves: a row per
    alias with both libraries' times, the speed-up and the instructions a leaf."""
    script = load("compile_catalogue")
    lines: list[str] = []
    script.table(["rmsprop", "sm3"], leaves=30, size=10, repeats=1, write=lines.append)
    assert len(lines) == 4 and lines[2].startswith("| rmsprop |") and lines[3].startswith("| sm3 |")
    for line in lines[2:]:
        cells = [c.strip(" *") for c in line.strip("|").split("|")]
        (ol, xl), (oc, xc), (oi, xi) = (
            tuple(map(float, c.split(" / "))) for c in (cells[1], cells[2], cells[4])
        )
        assert min(ol, xl, oc, xc, float(cells[3])) > 0
        assert 10 < oi < 200 and 10 < xi < 200  # a leaf's kernels, not the whole step


@pytest.mark.slow
def test_numerics_bias_correction_and_float16():
    numerics = load("numerics")
    with jax.enable_x64(True):
        errors = numerics.bias_correction_errors()
        zero_gradient = numerics.float16_zero_gradient()
    assert max(optref for *_, optref in errors) < 1.0  # under one float32 epsilon
    assert max(naive for beta, _, naive, _ in errors if beta == 0.9999) > 100.0
    assert np.all(zero_gradient["optref"] == 0)
    assert np.all(np.isnan(zero_gradient["Optax"]))


@pytest.mark.slow
def test_numerics_derivatives():
    numerics = load("numerics")
    with jax.enable_x64(True):
        derivatives = numerics.derivatives()
    for what, optref, other in derivatives:
        if "eps_root = 0" in what:
            # g = (0, 1, -2): Optax differentiates sqrt at 0 (0 * inf = NaN). The map
            # g -> -lr g / (|g| + eps) is differentiable at 0, with derivative -lr / eps.
            assert np.isnan(other[0]), what
            assert np.isnan(optref[0]) or optref[0] == pytest.approx(-0.1 / 1e-8), what
        elif "eps_root" in what:
            assert np.all(np.isfinite(optref)) and np.all(np.isfinite(other)), what
        else:
            assert np.all(np.isfinite(optref)), what
            assert np.isnan(other).any(), what


@pytest.mark.slow
def test_numerics_one_step_errors():
    numerics = load("numerics")
    with jax.enable_x64(True):
        rows = numerics.one_step_errors_table()
    for case, problem, dtype, optref, optax in rows:
        assert optref <= optax * (1 + 1e-6) + 1e-6, (case, problem, dtype)
        if dtype == "float32":
            assert optref < 2.0, (case, problem)


def test_numerics_division_by_a_scalar():
    """Behind an optimization barrier XLA keeps the division, so every quotient is the
    correctly rounded one; the counts of the plain form are whatever XLA makes of it."""
    numerics = load("numerics")
    with jax.enable_x64(True):
        rows = numerics.division_by_a_scalar(size=100_000)
    assert {(dtype, form) for dtype, form, *_ in rows} == {
        (d, f) for d in ("float32", "float64") for f in ("x / c", "x / barrier(broadcast(c))")
    }
    for dtype, form, differ, size in rows:
        assert size == 100_000 and 0 <= differ <= size
        if "barrier" in form:
            assert differ == 0, dtype
