"""Helpers for requirements/constraints.txt, the lock that ./scripts/demo and ./scripts/test install against.

    python scripts/lock.py check        # exit 1 if pyproject.toml's dependencies changed since the last lock
    python scripts/lock.py stamp        # ./scripts/lock: record what the lock was resolved from
    python scripts/lock.py pins pip     # the hashed lines of some pins (bootstrapping pip, uv)
    python scripts/lock.py drift        # installed versions that differ from the lock (nox -s latest)

The lock records a fingerprint of its inputs: [build-system] requires, requires-python, the dependencies and
every extra of pyproject.toml, requirements/installer.in and requirements/holds.in. Any change to those (a new
dependency, a new bound, a new extra, a hold) fails `check` until ./scripts/lock has re-resolved; edits
elsewhere in pyproject.toml (tool settings, comments) do not. Only the standard library is needed (and tomli
on Python 3.10, for `check` and `stamp`), so `pins` runs before any virtualenv has anything installed.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = Path("requirements/constraints.txt")
INSTALLER_IN = Path("requirements/installer.in")
HOLDS_IN = Path("requirements/holds.in")
FINGERPRINT_PREFIX = "# inputs sha256: "
FINGERPRINT_NOTE = " (pyproject.toml's dependencies and extras, requirements/installer.in and holds.in)"
REFRESH = "./scripts/lock"


def lock_inputs(root: Path) -> dict[str, object]:
    """What the lock is resolved from, comments and layout left out."""
    # Imported here: `pins` runs before any virtualenv exists, where Python 3.10 has no TOML reader.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject.get("project", {})

    def requirement_lines(path: Path) -> list[str]:
        lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
        return [line for line in lines if line]

    return {
        "build-system.requires": pyproject.get("build-system", {}).get("requires", []),
        "requires-python": project.get("requires-python", ""),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "installer.in": requirement_lines(root / INSTALLER_IN),
        "holds.in": requirement_lines(root / HOLDS_IN),
    }


def fingerprint(root: Path) -> str:
    canonical = json.dumps(lock_inputs(root), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_fingerprint(lock_text: str) -> str | None:
    for line in lock_text.splitlines():
        if line.startswith(FINGERPRINT_PREFIX):
            return line[len(FINGERPRINT_PREFIX) :].split()[0]
    return None


def stamp(root: Path) -> None:
    """Insert (or replace) the fingerprint line after uv's header comment."""
    path = root / LOCK
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if not line.startswith(FINGERPRINT_PREFIX)
    ]
    header_end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    lines.insert(header_end, FINGERPRINT_PREFIX + fingerprint(root) + FINGERPRINT_NOTE)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def check(root: Path) -> str | None:
    """None when the lock matches pyproject.toml, else what is wrong and what to run."""
    path = root / LOCK
    if not path.is_file():
        return f"{LOCK} is missing: run {REFRESH}"
    recorded = recorded_fingerprint(path.read_text(encoding="utf-8"))
    if recorded is None:
        return f"{LOCK} has no '{FINGERPRINT_PREFIX.strip()}' line: run {REFRESH}"
    if recorded != fingerprint(root):
        return (
            f"{LOCK} is out of date: pyproject.toml's dependencies, {INSTALLER_IN} or {HOLDS_IN} changed "
            f"since it was resolved. Run {REFRESH} (it keeps every other pin) and commit the result."
        )
    return None


def pins(lock_text: str, names: list[str]) -> list[str]:
    """The lock's entries (with their --hash continuation lines) for these distribution names."""
    wanted = {re.sub(r"[-_.]+", "-", name).lower() for name in names}
    entries: list[str] = []
    current: list[str] = []
    for line in lock_text.splitlines():
        if current:
            current.append(line)
            if not line.rstrip().endswith("\\"):
                entries.append("\n".join(current))
                current = []
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() in wanted:
            if line.rstrip().endswith("\\"):
                current = [line]
            else:
                entries.append(line)
    return entries


def drift(lock_text: str) -> list[str]:
    """How the running environment differs from the lock's pins for it (markers evaluated here): one line
    per package, newer, older or not in the lock. Needs `packaging` (the test extra has it)."""
    from importlib import metadata

    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    locked: dict[str, str] = {}
    for line in lock_text.splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if match and (match[3] is None or Marker(match[3]).evaluate()):
            locked[canonicalize_name(match[1])] = match[2]
    lines = []
    for dist in sorted(metadata.distributions(), key=lambda d: canonicalize_name(d.metadata["Name"])):
        name = canonicalize_name(dist.metadata["Name"])
        if name not in locked:
            if name != "django-rt-sessions":
                lines.append(f"{name} {dist.version} (not in the lock)")
        elif locked[name] != dist.version:
            lines.append(f"{name} {locked[name]} -> {dist.version}")
    return lines


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "check":
        try:
            problem = check(ROOT)
        except ModuleNotFoundError as exc:  # Python 3.10 without tomli: nothing to read pyproject.toml with
            print(f"scripts/lock.py check skipped: {exc}", file=sys.stderr)
            return 0
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    if command == "stamp":
        stamp(ROOT)
        return 0
    if command == "pins" and len(argv) > 2:
        found = pins((ROOT / LOCK).read_text(encoding="utf-8"), argv[2:])
        if not found:
            print(f"{LOCK} pins none of {argv[2:]}: run {REFRESH}", file=sys.stderr)
            return 1
        print("\n".join(found))
        return 0
    if command == "drift":
        path = Path(argv[2]) if len(argv) > 2 else ROOT / LOCK
        differences = drift(path.read_text(encoding="utf-8"))
        print("\n".join(differences) if differences else f"every installed package is at its {LOCK} pin")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
