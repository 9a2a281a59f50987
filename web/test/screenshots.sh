#!/usr/bin/env bash
# Phone-sized screenshots of the viewer page playing the node's built-in test show, for the
# docs: web/docs/viewer-phone.png (portrait, stats panel open), viewer-phone-landscape.png and
# viewer-phone-card.png (the product card expanded by a tap, its buy button showing).
# Starts `edge-node serve` (the binary named, default target/debug/edge-node) on a free port
# for 40 s from the repository root, where it finds its assets, and drives browser.mjs play.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/edge-node}
OUT=$(mktemp)
"$BIN" serve --listen 127.0.0.1:0 --admin 127.0.0.1:0 --duration 40 >"$OUT" &
NODE=$!
trap 'kill $NODE 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 1 60); do
  grep -q '"serving"' "$OUT" && break
  sleep 1
done
URL=$(sed -n 's/.*"event":"serving".*"url":"https:\([^"]*\)".*/http:\1/p' "$OUT")
[ -n "$URL" ] || { echo "screenshots: the node did not start" >&2; exit 1; }
node web/test/browser.mjs play "${URL}?zone=yintai-mall" 10 web/docs/viewer-phone.png \
  | sed 's/"drawnSeiUs":\[[^]]*\],//'
node web/test/browser.mjs buy "${URL}?zone=yintai-mall" web/docs/viewer-phone-card.png \
  | sed 's/.*"buyEvents":\(\[[^]]*\]\).*/buy events: \1/'
