# Sourced by scripts/test, scripts/demo and scripts/lock: create or refresh ./.venv with the project and one
# of its extras, every version pinned and hash-checked by requirements/constraints.txt (see
# docs/development.md). Needs only a Python 3.10+ on PATH (python3, or $PYTHON).

RT_LOCK=requirements/constraints.txt

rt_find_python() {
  for candidate in "${PYTHON:-}" python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "django-rt-sessions needs Python 3.10 or newer on PATH (or set PYTHON=/path/to/python3)." >&2
  return 1
}

# rt_ensure_venv EXTRA: `example` (the demo) or `test` (which includes example).
rt_ensure_venv() {
  local extra=${1:-test} python stamp want have
  python=$(rt_find_python) || return 1
  if ! .venv/bin/python -c '' 2>/dev/null; then
    # Missing, or its interpreter is gone (a removed pyenv version): start afresh.
    echo "==> Creating .venv with $("$python" --version 2>&1)"
    "$python" -m venv --clear .venv
  fi
  # Reinstall when pyproject.toml, the lock or the venv's Python changed. The stamp is that hash and the extra
  # installed; a venv installed for `test` serves the demo too.
  want=$(.venv/bin/python -c '
import hashlib, sys
digest = hashlib.sha256(sys.version.encode())
for name in ("pyproject.toml", sys.argv[1]):
    digest.update(open(name, "rb").read())
print(digest.hexdigest())' "$RT_LOCK")
  stamp=.venv/.rt-sessions-installed
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ "$have" = "$want $extra" ] || [ "$have" = "$want test" ]; then
    return 0
  fi
  echo "==> Installing django-rt-sessions[$extra] into .venv, pinned by $RT_LOCK"
  # First the pip the lock pins, the one whose --no-require-hashes still checks the hashes, and its setuptools
  # (the one `python -m venv` seeds on 3.10 and 3.11 is older), both hash-checked.
  .venv/bin/python -m pip install --quiet --require-hashes --no-deps \
    -r <(.venv/bin/python scripts/lock.py pins pip setuptools)
  # Every download is checked against the lock's sha256 (the editable project itself has none to check), and
  # so is the build backend of the editable install (--build-constraint). The environment variable, unlike
  # the option, reaches the build environments too: a package built from its sdist (pocketsphinx on Linux
  # aarch64 with Python 3.10 or 3.12) gets its build tools, which the lock does not list, unpinned.
  PIP_NO_REQUIRE_HASHES=1 .venv/bin/python -m pip install --quiet -c "$RT_LOCK" --build-constraint "$RT_LOCK" \
    -e ".[$extra]"
  if ! .venv/bin/python scripts/lock.py check; then
    echo "    (so what the lock does not pin was installed at today's newest release)" >&2
  fi
  echo "$want $extra" > "$stamp"
}
