# Sourced by the other scripts: make sure a virtualenv with this project installed exists, and
# put it first on PATH. CIBA_EXTRAS chooses what is installed with it, and each choice has a
# venv of its own, so that no script grows or reinstalls the environment another one is running
# from (./scripts/test beside a running ./scripts/demo):
#   dev, the default: tests, browser, benchmarks, linters  .venv          (./scripts/test, .ci/run)
#   demo: what the example project needs and nothing more  .venv-demo     (./scripts/demo)
#   production: the example on granian, PostgreSQL, Redis  .venv-production (./scripts/serve)
# CIBA_VENV names another venv. A venv installed with "dev" serves every script, and this file
# exports CIBA_VENV, so a script started by one that sourced it (the benchmarks and the
# integration tests start ./scripts/serve) runs in the caller's venv instead of making one.
# Reinstalls when pyproject.toml changes, so a pull that adds a dependency just works.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
EXTRAS="${CIBA_EXTRAS:-dev}"
if [ "$EXTRAS" = dev ]; then
  VENV="${CIBA_VENV:-$ROOT/.venv}"
else
  VENV="${CIBA_VENV:-$ROOT/.venv-$EXTRAS}"
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.ciba-installed"
hash="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$have" != "$hash $EXTRAS" ] && [ "$have" != "$hash dev" ]; then
  if [ "${have#* }" = dev ]; then EXTRAS=dev; fi  # a venv that had everything keeps everything
  echo "==> installing django-ciba[$EXTRAS] into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]"
  echo "$hash $EXTRAS" > "$stamp"
fi
export CIBA_VENV="$VENV"
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
