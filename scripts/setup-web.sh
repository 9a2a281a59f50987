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

step "node and npm"
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
node --version
# playwright-core 1.65 needs Node 20+ (esbuild 0.28 18+); Debian 12's own nodejs is 18, so take
# Node 20 from wherever this machine gets it (Ubuntu 24.04 ships 18 too; NodeSource packages 20).
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup-web: Node >= 20 is needed, found $(node --version)" >&2
  exit 1
fi

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
