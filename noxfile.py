"""Every development task of the optref monorepo.

Run ``nox -l`` for the list. Every session also runs with ``nox --no-venv --no-install``
inside an environment that already has the dependencies (a machine with no network); run
that environment's own nox (``python -m nox``, the root ``dev`` group), so that sessions
find its interpreter and its packages.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PACKAGES = ["core", "schedules", "linesearch", "masking", "compat", "audit"]
# The optref packages each package needs, installed from this checkout.
LOCAL_DEPENDENCIES = {
    "core": [],
    "schedules": [],
    "linesearch": ["core"],
    "masking": ["core"],
    "compat": ["core"],
    "audit": ["core", "schedules", "linesearch", "masking", "compat"],
}
# What the tests need besides the packages: the root pyproject.toml's `test` group.
TEST_DEPENDENCIES = list(nox.project.dependency_groups(PYPROJECT, "test"))
CROSS_DEPENDENCIES = ["optax==0.2.8", "optimistix", "sif2jax"]
OPTAX_VERSIONS = ["0.2.3", "0.2.4", "0.2.5", "0.2.8"]
BACKENDS = ["cpu", "gpu", "tpu"]

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _path(package: str) -> str:
    return str(ROOT / "packages" / f"optref-{package}")


def _install_all(session: nox.Session, editable: bool = True) -> None:
    flags = ["-e"] if editable else []
    args: list[str] = []
    for package in PACKAGES:
        args += [*flags, _path(package)]
    session.install(*args, *TEST_DEPENDENCIES, *CROSS_DEPENDENCIES)


def _workers(session: nox.Session) -> list[str]:
    return ["-n", os.environ.get("OPTREF_TEST_WORKERS", "auto")]


@nox.session
def tests(session: nox.Session) -> None:
    """All packages installed editable in one env; pytest over every package and tests/."""
    _install_all(session)
    paths = [f"packages/optref-{p}/tests" for p in PACKAGES] + ["tests"]
    paths = [p for p in paths if (ROOT / p).is_dir()]
    session.run("pytest", *_workers(session), *paths, *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """The long tests kept out of ``tests`` (marked ``slow``): every package and tests/."""
    _install_all(session)
    paths = [f"packages/optref-{p}/tests" for p in PACKAGES] + ["tests"]
    paths = [p for p in paths if (ROOT / p).is_dir()]
    session.run("pytest", *_workers(session), "-m", "slow", *paths, *session.posargs)


@nox.session
@nox.parametrize("package", PACKAGES)
def isolated(session: nox.Session, package: str) -> None:
    """One package alone, with only its declared dependencies, and its own tests."""
    local = [_path(dep) for dep in LOCAL_DEPENDENCIES[package]]
    session.install(*local, _path(package), *TEST_DEPENDENCIES)
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m, sys; "
        f"dist = 'optref-{package}'; "
        "print(dist, m.version(dist), 'requires', m.requires(dist))",
    )
    session.run("pytest", *_workers(session), f"packages/optref-{package}/tests", *session.posargs)


def _backend_present(session: nox.Session, backend: str) -> bool:
    probe = (
        "import jax, sys\n"
        "try:\n"
        f"    jax.devices({backend!r})\n"
        "except RuntimeError:\n"
        "    sys.exit(1)\n"
    )
    try:
        session.run("python", "-c", probe, silent=True)
    except nox.command.CommandFailed:
        return False
    return True


@nox.session
@nox.parametrize("package", PACKAGES[:4])
@nox.parametrize("backend", BACKENDS)
def crosscheck(session: nox.Session, package: str, backend: str) -> None:
    """The conformance cases of one package against Optax on one JAX backend."""
    _install_all(session)
    if not _backend_present(session, backend):
        session.skip(f"JAX has no {backend!r} backend on this machine.")
    session.run(
        "pytest",
        *_workers(session),
        "-s",
        "tests/test_conformance.py",
        *session.posargs,
        env={"JAX_PLATFORMS": backend, "OPTREF_CROSSCHECK_ALL": "1", "OPTREF_PACKAGES": package},
    )


@nox.session
@nox.parametrize("optax", OPTAX_VERSIONS)
def audit(session: nox.Session, optax: str) -> None:
    """``optref-audit`` against one Optax version, in its own env, the report in
    audit-report/optax-<v>; the tests of what it must find there (Optax's known defects);
    then the comparison of every version's report."""
    out = ROOT / "audit-report" / f"optax-{optax}"
    session.log(f"Report: {out / 'report.html'}")
    _install_all(session, editable=False)
    session.install(f"optax=={optax}")
    session.run("optref-audit", "--jobs", "0", "--out", str(out), *session.posargs)
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        "slow",
        "packages/optref-audit/tests/test_optax_versions.py",
        env={"OPTREF_AUDIT_REPORT": str(out / "report.json")},
    )
    done = [str(p) for p in sorted((ROOT / "audit-report").glob("optax-*")) if p.is_dir()]
    if len(done) > 1:
        session.run("optref-audit", "--compare", *done, "--out", str(ROOT / "audit-report"))


@nox.session
def cutest(session: nox.Session) -> None:
    """optref's lbfgs, Optax's and SciPy's L-BFGS-B on the unconstrained CUTEst problems
    (sif2jax, n <= 100); writes docs/linesearch_cutest.md."""
    _install_all(session)
    session.run(
        "python",
        "docs/examples/cutest_lbfgs.py",
        "--max-n",
        "100",
        "--max-iter",
        "1000",
        "--output",
        "docs/linesearch_cutest.md",
        *session.posargs,
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: audit the installed Optax (quick); the report's path comes first."""
    session.log(f"Report: {ROOT / 'audit-report' / 'latest' / 'report.html'}")
    _install_all(session)
    session.run(
        "python",
        "-m",
        "optref.audit",
        "--quick",
        "--jobs",
        "0",
        "--out",
        str(ROOT / "audit-report" / "latest"),
        *session.posargs,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """optref against Optax, interleaved in one process: compile and step time, memory,
    bandwidth, on every backend present; rewrites docs/benchmarks.md and its plot
    (``nox -s bench -- --quick`` for a short run that writes nothing)."""
    _install_all(session)
    session.run("python", "docs/examples/bench.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format, ruff check and pyright, through pre-commit (the root ``lint`` group)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built with --strict."""
    _install_all(session)
    session.install("mkdocs-material>=9.5", "mkdocstrings[python]>=0.26", "matplotlib>=3.8")
    session.run("mkdocs", "build", "--strict", *session.posargs)


def _offline(session: nox.Session) -> bool:
    """``--no-venv``: the running environment already holds every dependency."""
    return session.venv_backend == "none"


def _fresh_env(session: nox.Session, name: str) -> Path:
    """A new virtual environment under the session's tmp dir; returns its interpreter.

    Offline, it also sees the running environment's site-packages (after its own, and
    without their ``.pth`` files, so no editable optref install leaks in): what is
    installed into it then needs no download.
    """
    env = Path(session.create_tmp()) / name
    shutil.rmtree(env, ignore_errors=True)
    if shutil.which("uv"):
        session.run("uv", "venv", "-q", "--python", "3.11", str(env))
    else:
        session.run("python", "-m", "venv", str(env))
    python = env / "bin" / "python"
    if _offline(session):
        purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'], end='')"
        running = session.run("python", "-c", purelib, silent=True)
        ours = session.run(str(python), "-c", purelib, silent=True, external=True)
        (Path(str(ours)) / "running_env.pth").write_text(f"{running}\n")
    return python


def _install_into(session: nox.Session, python: Path, *args: str) -> None:
    if shutil.which("uv"):
        session.run("uv", "pip", "install", "-q", "--python", str(python), *args)
    else:
        session.run(str(python), "-m", "pip", "install", "-q", *args, external=True)


@nox.session
def build(session: nox.Session) -> None:
    """Wheels and sdists of every package, checked with twine; then what
    ``pip install optref-core optref-linesearch`` gives a user, from the built wheels
    alone in a fresh env, trains a small model."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "build"))
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    if _offline(session):
        how = ["--no-isolation"]
    else:
        how = ["--installer", "uv"] if shutil.which("uv") else []
    for package in PACKAGES:
        session.run("python", "-m", "build", *how, "--outdir", str(dist), _path(package))
    session.run("twine", "check", "--strict", *sorted(str(p) for p in dist.iterdir()))
    python = _fresh_env(session, "user")
    wheels = [str(next(dist.glob(f"optref_{p}-*.whl"))) for p in ("core", "linesearch")]
    no_deps = ["--no-deps"] if _offline(session) else []
    _install_into(session, python, *no_deps, *wheels)
    shares = ["--shares-dependencies"] if _offline(session) else []
    session.run(str(python), "tests/train_from_wheels.py", *shares, external=True)


@nox.session(venv_backend="uv")
def oldest(session: nox.Session) -> None:
    """Every package at the lowest versions of the dependencies it declares (uv's
    ``lowest-direct`` resolution), then a fast subset of core's and schedules' tests."""
    session.install("--resolution", "lowest-direct", *[_path(p) for p in PACKAGES])
    session.install(*TEST_DEPENDENCIES)
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m; "
        "print(*(f'{d} {m.version(d)}' for d in "
        "('jax', 'jaxlib', 'equinox', 'jaxtyping', 'beartype', 'optax', 'numpy')), sep=', ')",
    )
    session.run(
        "pytest",
        "-n",
        "0",
        "packages/optref-core/tests/test_kernel.py",
        "packages/optref-core/tests/test_hyperparameters_as_data.py",
        "packages/optref-schedules/tests/test_validation.py",
        *session.posargs,
    )
