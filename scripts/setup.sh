#!/usr/bin/env bash
# Idempotent setup: Python virtualenv with the app (and test tools), and the pinned browser assets.
#   scripts/setup.sh          app only
#   scripts/setup.sh --test   app, test tools, and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.workspace-installed
extras=""
[ "$want_test" = 1 ] && extras="[test]"
if [ ! -f "$stamp$extras" ] || [ pyproject.toml -nt "$stamp$extras" ]; then
  echo "==> installing Python packages"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".$extras"
  touch "$stamp$extras"
fi

if [ ! -f build/node_modules/htmx.org/dist/htmx.min.js ] || [ ! -f build/node_modules/swagger-ui-dist/swagger-ui-bundle.js ] \
   || [ build/package-lock.json -nt build/node_modules/htmx.org/dist/htmx.min.js ]; then
  echo "==> installing pinned browser assets (npm ci)"
  npm ci --prefix build --no-audit --no-fund --ignore-scripts --loglevel=error
fi

if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "!! could not install chromium; browser tests will be skipped (or fail with CI=true)"
  else
    echo "!! /usr/bin/chromium is missing: install Debian's chromium package for the browser tests"
  fi
fi
