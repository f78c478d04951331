# Sourced by the other scripts: make sure .venv exists with this project installed.
# CIBA_EXTRAS chooses what is installed with it (default "dev": tests, browser, benchmarks,
# linters; ./scripts/demo asks for "demo" only). Reinstalls when pyproject.toml changes, so a
# pull that adds a dependency just works; a venv installed with "dev" serves every script.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CIBA_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${CIBA_EXTRAS:-dev}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.ciba-installed"
hash="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$have" != "$hash $EXTRAS" ] && [ "$have" != "$hash dev" ]; then
  echo "==> installing django-ciba[$EXTRAS] into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]"
  echo "$hash $EXTRAS" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
