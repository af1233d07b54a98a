"""What each distribution declares: optref-core pulls JAX, Equinox, jaxtyping and beartype,
never Optax; only compat and audit import Optax; optref stays a namespace package."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ["core", "schedules", "linesearch", "masking", "compat", "audit"]


def _requirements(dist: str) -> set[str]:
    return {
        re.split(r"[ ;<>=!~\[]", r)[0].lower()
        for r in importlib.metadata.requires(dist) or []
        if "extra ==" not in r
    }


def test_core_requires_jax_equinox_jaxtyping_beartype_and_not_optax() -> None:
    requires = _requirements("optref-core")
    assert {"jax", "equinox", "jaxtyping", "beartype"} <= requires
    assert "optax" not in requires


def test_schedules_requires_neither_core_nor_optax() -> None:
    requires = _requirements("optref-schedules")
    assert "optref-core" not in requires and "optax" not in requires


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv resolves the install without it")
def test_a_fresh_install_of_core_pulls_jaxlib_and_not_optax(tmp_path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(venv)], check=True)
    result = subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--dry-run",
            "--python",
            str(venv / "bin" / "python"),
            str(ROOT / "packages" / "optref-core"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    names = set(re.findall(r"^ \+ ([A-Za-z0-9_.-]+)(?:==| @)", result.stderr + result.stdout, re.M))
    assert {"jax", "jaxlib", "equinox", "jaxtyping", "beartype", "optref-core"} <= names
    assert "optax" not in names


def test_only_compat_and_audit_import_optax_and_optref_is_a_namespace() -> None:
    for package in PACKAGES:
        src = ROOT / "packages" / f"optref-{package}" / "src"
        assert not (src / "optref" / "__init__.py").exists()
        if package in {"compat", "audit"}:
            continue
        for path in src.rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(import optax|from optax)", text, re.M), path
