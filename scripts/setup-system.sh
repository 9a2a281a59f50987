#!/usr/bin/env bash
# Installs the system packages edge-node needs to build, run and test.
# Idempotent: skips apt entirely when every package is already present.
set -euo pipefail

PACKAGES=(
  # build
  pkg-config build-essential
  # GStreamer 1.22+: development files and the plugins ingest/encode/view use
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  # wgpu headless: lavapipe (Vulkan) and llvmpipe (GL) for machines without a GPU
  mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri
  # test peers: a real RTMP origin, strict H.264 decode, Python venvs
  nginx libnginx-mod-rtmp ffmpeg python3 python3-venv python3-pip
  # fonts for text cards (CJK capable)
  fonts-noto-cjk
  curl ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-system: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
