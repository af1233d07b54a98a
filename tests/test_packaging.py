"""What each distribution declares: optref-core pulls JAX, Equinox, jaxtyping and beartype,
never Optax; only compat and audit import Optax; optref stays a namespace package."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import tomllib

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


@pytest.mark.skipif(shutil.which("uv") is None, reason="the fresh env is made with uv")
def test_a_fresh_install_of_core_pulls_jax_and_not_optax_and_imports(tmp_path) -> None:
    """``pip install ./packages/optref-core`` into a new venv (uv, from its local cache)."""
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(venv)], check=True)
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", python, str(ROOT / "packages" / "optref-core")],
        check=True,
    )
    frozen = subprocess.run(
        ["uv", "pip", "freeze", "--python", python], check=True, capture_output=True, text=True
    ).stdout
    names = {re.split(r"==| @ ", line)[0].lower() for line in frozen.splitlines() if line}
    assert {"jax", "jaxlib", "equinox", "jaxtyping", "beartype", "optref-core"} <= names
    assert "optax" not in names
    imported = subprocess.run(
        [python, "-c", "import optref.core as oc; print(oc.__file__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert pathlib.Path(imported.strip()).is_relative_to(venv)


def test_only_compat_and_audit_import_optax_and_optref_is_a_namespace() -> None:
    for package in PACKAGES:
        src = ROOT / "packages" / f"optref-{package}" / "src"
        assert not (src / "optref" / "__init__.py").exists()
        if package in {"compat", "audit"}:
            continue
        for path in src.rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(import optax|from optax)", text, re.M), path


def _distribution_files(package: str) -> pathlib.Path:
    return ROOT / "packages" / f"optref-{package}"


@pytest.mark.parametrize("package", PACKAGES)
def test_each_distribution_ships_the_licence_and_py_typed(package) -> None:
    root = _distribution_files(package)
    assert (root / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert (root / "src" / "optref" / package / "py.typed").is_file()
    # The version is declared once, in pyproject.toml.
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    for path in (root / "src").rglob("*.py"):
        assert "__version__ =" not in path.read_text(), path


def test_every_dependency_has_a_lower_bound() -> None:
    """The bounds that ``nox -s oldest`` installs (uv's lowest-direct resolution)."""
    local = {f"optref-{p}" for p in PACKAGES}
    for package in PACKAGES:
        pyproject = (_distribution_files(package) / "pyproject.toml").read_text()
        for requirement in tomllib.loads(pyproject)["project"]["dependencies"]:
            name = re.split(r"[ ;<>=!~\[]", requirement)[0]
            assert name in local or ">=" in requirement, (package, requirement)


def test_pre_commit_pins_ruff_and_pyright_as_the_lint_group_does() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["lint"]
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "repo: local" in config and "github.com" not in config
    hook_pins = set(re.findall(r'"((?:ruff|pyright)[^"]*==[^"]+)"', config))
    group_pins = {r for r in lint if r.startswith(("ruff", "pyright"))}
    assert group_pins and all("==" in r for r in group_pins)
    assert hook_pins == group_pins
