# Sourced by scripts/test and scripts/demo: create or refresh ./.venv with the project and its extras.
# Needs only a Python 3.10+ on PATH (python3, or $PYTHON).

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

rt_ensure_venv() {
  local python stamp want
  python=$(rt_find_python) || return 1
  if [ ! -x .venv/bin/python ]; then
    echo "==> Creating .venv with $("$python" --version 2>&1)"
    "$python" -m venv .venv
  fi
  # Reinstall only when the dependency list changed (the stamp is a hash of pyproject.toml).
  want=$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')
  stamp=.venv/.rt-sessions-installed
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> Installing django-rt-sessions and its test/example dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    echo "$want" > "$stamp"
  fi
}
