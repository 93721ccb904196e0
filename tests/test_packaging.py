"""The distribution: `python -m build` makes a wheel and an sdist that carry everything the app needs, and
the wheel installs into a fresh virtualenv where a minimal site passes `manage.py check` and migrates.

Marked `packaging`: it builds in a copy of the source tree (so the working tree gets no build/ or egg-info),
downloads the build backend and the app's dependencies from the package index at the releases
requirements/constraints.txt pins (pip's cache makes reruns quick) and takes a minute or so. Run it alone with

    .venv/bin/python -m pytest -m packaging tests/test_packaging.py

or `nox -s build`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "constraints.txt"
PACKAGE = "django_rt_sessions"
BUILD_TIMEOUT = 300

# Files the app cannot work without, by path inside the wheel.
REQUIRED_IN_WHEEL = [
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/migrations/__init__.py",
    f"{PACKAGE}/migrations/0001_initial.py",
    f"{PACKAGE}/templatetags/__init__.py",
    f"{PACKAGE}/management/commands/rt_sessions_presets.py",
    f"{PACKAGE}/templates/django_rt_sessions/widgets/model_input.html",
    f"{PACKAGE}/testing/schema/openai-realtime-sessions.openapi.json",
    f"{PACKAGE}/testing/pytest_plugin.py",
]
BROWSER_CLIENT = f"{PACKAGE}/static/django_rt_sessions/rt-sessions.js"

# Not part of the source tree proper: caches, virtualenvs and build output.
IGNORED_NAMES = {
    ".git",
    ".venv",
    ".nox",
    ".tox",
    "build",
    "dist",
    "site",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
}


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {
        name
        for name in names
        if name in IGNORED_NAMES
        or name.endswith((".egg-info", ".pyc", ".sqlite3"))
        or (name.startswith(".") and name not in {".gitignore"})
    }


def _run(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


def _clean_env() -> dict[str, str]:
    """The environment for the build and the fresh virtualenv: nothing that would point it back at this
    checkout, and pip held to the lock's releases and hashes as in scripts/_venv.sh (docs/development.md)."""
    env = dict(os.environ)
    for name in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    env["PIP_CONSTRAINT"] = env["PIP_BUILD_CONSTRAINT"] = str(LOCK)
    env["PIP_NO_REQUIRE_HASHES"] = "1"
    return env


def _package_files() -> set[str]:
    """Every file of the package in the source tree, as a path inside the wheel."""
    files = set()
    for path in (ROOT / PACKAGE).rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        files.add(path.relative_to(ROOT).as_posix())
    return files


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the sdist and the wheel (from the sdist, as `python -m build` does) from a copy of the tree."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=_ignore)
    out = work / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], cwd=work, env=_clean_env())
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1, f"expected one wheel, got {wheels}"
    assert len(sdists) == 1, f"expected one sdist, got {sdists}"
    return {"wheel": wheels[0], "sdist": sdists[0], "work": work}


def test_wheel_carries_every_package_file(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        assert entry_points, "the wheel has no entry_points.txt"
        entry_points_text = wheel.read(entry_points).decode()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()

    missing = [name for name in REQUIRED_IN_WHEEL if name not in names]
    assert not missing, f"missing from the wheel: {missing}"
    assert any(n.startswith(f"{PACKAGE}/templates/admin/{PACKAGE}/") for n in names), "admin templates"
    assert any(n.startswith(f"{PACKAGE}/templatetags/") and n.endswith(".py") for n in names)
    if (ROOT / BROWSER_CLIENT).exists():
        assert BROWSER_CLIENT in names, "the browser client (static) is missing from the wheel"

    # Everything in the package directory ships: a new kind of file (a locale, a template folder) that
    # [tool.setuptools.package-data] does not cover would be caught here.
    not_shipped = sorted(_package_files() - names)
    assert not not_shipped, f"in the source tree but not in the wheel: {not_shipped}"

    # The extras the docs name: `[redis]` for the shared cache, `[testing]` for the stand-in.
    for extra in ("redis", "testing", "openapi"):
        assert f"Provides-Extra: {extra}" in metadata, extra
    assert re.search(r"Requires-Dist: django-redis>=[\d.]+; extra == \"redis\"", metadata), metadata
    assert "[pytest11]" in entry_points_text
    assert "rt_sessions = django_rt_sessions.testing.pytest_plugin" in entry_points_text
    assert not any(n.startswith(("tests/", "example_project/", "bench/")) for n in names)


def test_sdist_carries_the_project_files(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for name in ("LICENSE", "README.md", "pyproject.toml", "PKG-INFO", *REQUIRED_IN_WHEEL):
        assert name in names, f"{name} is missing from the sdist"
    if (ROOT / BROWSER_CLIENT).exists():
        assert BROWSER_CLIENT in names


SETTINGS = """\
SECRET_KEY = "packaging-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_rt_sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "mysite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}}
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
RT_SESSIONS = {"API_KEY": "sk-packaging-test", "BASE_URL": "https://api.openai.com/v1"}
"""

URLS = """\
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("rt/", include("django_rt_sessions.urls")),
]
"""

SMOKE = """\
import pathlib, sys
import django_rt_sessions, django_rt_sessions.testing
from django_rt_sessions.testing import OpenAIStandIn

location = pathlib.Path(django_rt_sessions.__file__).resolve()
assert pathlib.Path(sys.prefix).resolve() in location.parents, f"imported from {location}, not the venv"
with OpenAIStandIn() as standin:  # loads the packaged OpenAPI schema
    assert standin.base_url.startswith("http://127.0.0.1:")
print("ok", location)
"""


def test_wheel_installs_into_a_fresh_virtualenv_and_a_site_checks(dists: dict[str, Path]) -> None:
    work = dists["work"]
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = _clean_env()
    # The lock's pip first: the venv's own may predate the hash checks of a constraints file that
    # PIP_NO_REQUIRE_HASHES relies on.
    pip_pin = _run([sys.executable, str(ROOT / "scripts" / "lock.py"), "pins", "pip"], cwd=work).stdout
    (work / "pip.txt").write_text(pip_pin)
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps", "-r", "pip.txt"],
        cwd=work,
        env={name: value for name, value in env.items() if not name.endswith("_CONSTRAINT")},
    )
    # [redis]: the minimal site configures the shared cache the README asks for, through django-redis.
    _run(
        [str(python), "-m", "pip", "install", "--quiet", f"{dists['wheel']}[testing,redis]"],
        cwd=work,
        env=env,
    )
    _run([str(python), "-c", "import django_redis"], cwd=work, env=env)

    site = work / "site"
    (site / "mysite").mkdir(parents=True)
    (site / "mysite" / "__init__.py").write_text("")
    (site / "mysite" / "settings.py").write_text(SETTINGS)
    (site / "mysite" / "urls.py").write_text(URLS)
    manage = [str(python), "-m", "django"]
    settings = "--settings=mysite.settings"

    checked = _run([*manage, "check", "--fail-level", "WARNING", settings], cwd=site, env=env)
    assert "System check identified no issues" in checked.stdout
    _run([*manage, "migrate", "--no-input", settings], cwd=site, env=env)
    migrated = _run([*manage, "showmigrations", PACKAGE, settings], cwd=site, env=env)
    assert "[X] 0001_initial" in migrated.stdout
    commands = _run([*manage, "help", settings], cwd=site, env=env).stdout
    for command in ("rt_sessions_presets", "rt_sessions_issue", "rt_sessions_prune"):
        assert command in commands
    if (ROOT / BROWSER_CLIENT).exists():
        _run([*manage, "findstatic", "django_rt_sessions/rt-sessions.js", settings], cwd=site, env=env)

    _run([str(python), "-c", "import django_rt_sessions.testing"], cwd=site, env=env)
    smoke = _run([str(python), "-c", textwrap.dedent(SMOKE)], cwd=site, env=env)
    assert smoke.stdout.startswith("ok")
