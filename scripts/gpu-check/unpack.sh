#!/usr/bin/env bash
# First call on the GPU machine: keep the first half of the CUDA provider and zstd in /root/gpu.
set -eu
d=$(dirname "$0")
mkdir -p /root/gpu/ort /root/gpu/zstd
cp "$d"/zstd "$d"/lib*.so* /root/gpu/zstd/
cp "$d"/cuda.zst.aa /root/gpu/
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
