#!/usr/bin/env bash
# Builds the real MoQ relay (crates.io `moq-relay`), edge-node's fan-out tier, into
# .cache/moq-relay/bin/moq-relay. Idempotent: a binary of the pinned version is kept.
#
# Pinned to the release whose moq-net equals edge-deliver's (0.3.18), so node and relay speak
# the same moq-lite drafts. Only the `noq` QUIC backend is built (WebTransport and raw QUIC);
# the default iroh, LAN discovery, WebSocket and Unix-socket transports are not needed here.
#
# Built from the published crate with its own Cargo.lock (`--locked`), with one documented
# deviation: the lock names webpki-roots 1.0.11, which some crates.io mirrors do not carry yet;
# 1.0.10 differs only in the bundled public CA list, which a relay serving its own certificate
# never consults.
set -euo pipefail

MOQ_RELAY_VERSION="${MOQ_RELAY_VERSION:-0.17.10}"
# sha256 of moq-relay-0.17.10.crate, as listed in the crates.io index.
MOQ_RELAY_SHA256="888587f1cff521c7edf15f4e5695eba2d3a3373c5da57fcb0ccd9ae55cca3cad"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${MOQ_RELAY_ROOT:-$ROOT/.cache/moq-relay}"
BIN="$PREFIX/bin/moq-relay"

if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -qF "$MOQ_RELAY_VERSION"; then
  echo "moq-relay $MOQ_RELAY_VERSION already built: $BIN"
  exit 0
fi

start=$(date +%s)
src="$PREFIX/src/moq-relay-$MOQ_RELAY_VERSION"
if [[ ! -f "$src/Cargo.toml" ]]; then
  mkdir -p "$PREFIX/src"
  crate="$PREFIX/src/moq-relay-$MOQ_RELAY_VERSION.crate"
  curl -sSfL --retry 3 -o "$crate" \
    "https://static.crates.io/crates/moq-relay/moq-relay-$MOQ_RELAY_VERSION.crate"
  if [[ "$MOQ_RELAY_VERSION" == "0.17.10" ]]; then
    echo "$MOQ_RELAY_SHA256  $crate" | sha256sum --check --quiet
  fi
  tar -xzf "$crate" -C "$PREFIX/src"
  # The cache lies inside edge-node's workspace: declare the crate its own workspace root.
  printf '\n[workspace]\n' >> "$src/Cargo.toml"
fi

(cd "$src" && cargo update --quiet -p webpki-roots --precise 1.0.10)

# Own target dir inside the cache, so a rebuild reuses compiled dependencies and the
# workspace's shared target dir is left alone.
cargo install --path "$src" \
  --locked \
  --no-default-features --features noq \
  --root "$PREFIX" \
  --target-dir "$PREFIX/build"
echo "moq-relay $MOQ_RELAY_VERSION built in $(( $(date +%s) - start )) s: $BIN"
