"""The test matrix: Python 3.10-3.13 x Django 4.2 / 5.2 / 6.1 x SQLite / PostgreSQL.

    nox -l                                  # list the sessions
    nox -s tests                            # the whole matrix (20 sessions)
    nox -s "tests(python='3.12', django='6.1', db='postgres')"
    nox -s lint docs build
    nox -s latest                           # the newest release of everything, no lock: SQLite pass

Interpreters come from pyenv (``pyenv root``/versions/3.X.Y/bin is put on PATH below), so a machine with
``pyenv install 3.10 3.11 3.12 3.13`` needs nothing else. Django 6.x needs Python 3.12+, so those pairs are
not generated at all. The PostgreSQL sessions use RT_NOX_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432;
each session gets its own database, ``rt_nox_<session>``) and RT_NOX_REDIS_URL (default
redis://127.0.0.1:6379/9, which the suite flushes). Deprecation warnings are errors in every session.

lint, docs and build install against requirements/constraints.txt, like ./scripts/test. The matrix does not:
each of its sessions pins its own Django, and pip picks the releases that go with it (Django 4.2 gets an
older Django REST framework, the newest needing Django 5.2), which is what a site on that Django gets.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DJANGOS = ["4.2", "5.2", "6.1"]
DATABASES = ["sqlite", "postgres"]
# Django 6.0+ requires Python 3.12+.
MIN_PYTHON_FOR_DJANGO = {"6.1": (3, 12)}

POSTGRES_URL = os.environ.get("RT_NOX_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS_URL = os.environ.get("RT_NOX_REDIS_URL", "redis://127.0.0.1:6379/9")

LOCK = "requirements/constraints.txt"

nox.options.sessions = ["lint", "docs", "build", "tests"]
nox.options.error_on_missing_interpreters = True


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            found = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=True)  # noqa: S603
            return Path(found.stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            return None
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _put_pyenv_pythons_on_path() -> None:
    """Make ``python3.10`` ... ``python3.13`` resolve to pyenv's real interpreters, not its shims (a shim
    answers only for the versions `pyenv global` lists)."""
    root = _pyenv_root()
    if root is None or not (root / "versions").is_dir():
        return
    bin_dirs = []
    for minor in PYTHONS:
        pattern = rf"{re.escape(minor)}\.\d+"  # 3.12.1, not 3.12-dev or 3.12.1t
        installed = sorted(
            (p for p in (root / "versions").iterdir() if re.fullmatch(pattern, p.name)),
            key=lambda p: int(p.name.rsplit(".", 1)[1]),
        )
        if installed:
            bin_dirs.append(str(installed[-1] / "bin"))
    os.environ["PATH"] = os.pathsep.join([*bin_dirs, os.environ.get("PATH", "")])


_put_pyenv_pythons_on_path()


def _matrix() -> list[nox.param]:
    params = []
    for python in PYTHONS:
        version = tuple(int(part) for part in python.split("."))
        for django in DJANGOS:
            if version < MIN_PYTHON_FOR_DJANGO.get(django, (0,)):
                continue
            for db in DATABASES:
                session_id = f"python='{python}', django='{django}', db='{db}'"
                params.append(nox.param(python, django, db, id=session_id))
    return params


def _install_locked(session: nox.Session, *args: str) -> None:
    """pip install against the lock as scripts/_venv.sh does: the lock's pip first, then every download
    checked against the lock's sha256."""
    pins = session.run("python", "scripts/lock.py", "pins", "pip", silent=True)
    requirements = Path(session.create_tmp()) / "pip.txt"
    requirements.write_text(str(pins))
    session.install("--require-hashes", "--no-deps", "-r", str(requirements))
    session.install("-c", LOCK, "--build-constraint", LOCK, *args, env={"PIP_NO_REQUIRE_HASHES": "1"})


@nox.session
@nox.parametrize(("python", "django", "db"), _matrix())
def tests(session: nox.Session, django: str, db: str) -> None:
    """pytest on one Python x Django x database, deprecation warnings as errors."""
    session.install(".[test]", f"Django~={django}.0")
    session.run("python", "-c", "import django, sys; print('Django', django.get_version(), sys.version)")
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    marks = "not production and not browser and not packaging"
    if db == "postgres":
        slug = re.sub(r"[^a-z0-9]+", "_", f"py{session.python}_dj{django}".lower()).strip("_")
        env["RT_TEST_DATABASE_URL"] = f"{POSTGRES_URL}/rt_nox_{slug}"
        env["RT_TEST_REDIS_URL"] = REDIS_URL
    else:
        marks += " and not postgres"
        env["RT_TEST_DATABASE_URL"] = ""
        env["RT_TEST_REDIS_URL"] = ""
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-W",
        "error::DeprecationWarning",
        "-W",
        "error::PendingDeprecationWarning",
        "-m",
        marks,
        *session.posargs,
        env=env,
    )


@nox.session(python=PYTHONS[-1])
def lint(session: nox.Session) -> None:
    """ruff over the whole tree: lint and format."""
    _install_locked(session, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[-1])
def docs(session: nox.Session) -> None:
    """The documentation site, warnings as errors."""
    _install_locked(session, ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")


@nox.session(python=PYTHONS[-1])
def build(session: nox.Session) -> None:
    """Build the wheel and sdist, install the wheel into a fresh virtualenv, check a minimal site."""
    _install_locked(session, ".[test]")
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-m", "packaging", "tests/test_packaging.py"
    )


@nox.session(python=PYTHONS[-1])
def latest(session: nox.Session) -> None:
    """The newest release of every dependency (no lock), then scripts/test's SQLite pass: an upgrade that
    breaks the suite shows here first, and the lock moves only when it passes (docs/development.md).
    Another interpreter: nox -s latest --force-python 3.10."""
    session.install("--upgrade", "pip")
    session.install("--upgrade", "--upgrade-strategy", "eager", ".[test]")
    session.log("Installed releases that differ from %s (locked -> installed):", LOCK)
    session.run("python", "scripts/lock.py", "drift")
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        "not production and not postgres",
        *session.posargs,
        env={"RT_TEST_DATABASE_URL": "", "RT_TEST_REDIS_URL": "", "PYTHONDONTWRITEBYTECODE": "1"},
    )
