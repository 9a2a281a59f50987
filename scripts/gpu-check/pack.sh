#!/usr/bin/env bash
# Packs what the GPU check needs for a machine that has an NVIDIA driver and CUDA 13 libraries
# but no GStreamer, no ONNX Runtime GPU build and no network (the `device` machines):
#   .gpu/a  first half of ONNX Runtime's CUDA provider, with only the sm_90 GPU code kept
#   .gpu/c  its second half
#   .gpu/b  edge-bench, the compositor's golden tests, GStreamer (with nvcodec) and the
#           libraries they link, ONNX Runtime, models, assets, the MIME database, run.sh
# Each part stays under the 64 MiB a call may carry. Usage: scripts/gpu-check/pack.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
here=scripts/gpu-check
ort_version=1.31.1
work=.gpu/work
rm -rf .gpu && mkdir -p .gpu/a .gpu/b .gpu/c "$work" .gpu/stage/{bin,lib,gst,ort,assets}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >>.git/info/exclude

cargo build --release -p edge-bench
golden=$(cargo test --release -p edge-compose --test golden --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d "$work" "onnxruntime-gpu==$ort_version"
unzip -q -o "$work"/onnxruntime_gpu-*.whl 'onnxruntime/capi/*.so*' -d "$work"
capi=$work/onnxruntime/capi
cp "$capi/libonnxruntime_providers_cuda.so" "$work/cuda.so"
python3 "$here/keep_sm.py" "$work/cuda.so" 90
zstd -T0 -15 --long=27 -q -f -o "$work/cuda.zst" "$work/cuda.so"
split -b 40000000 "$work/cuda.zst" "$work/cuda.zst."
mv "$work/cuda.zst.aa" .gpu/a/ && mv "$work/cuda.zst.ab" .gpu/c/
cp /usr/bin/zstd .gpu/a/
ldd /usr/bin/zstd | awk '/=> \//{print $3}' | grep -vE '/(libc|libm|libgcc_s)\.so' | xargs -I{} cp -L {} .gpu/a/

s=.gpu/stage
strip -o $s/bin/edge-bench target/release/edge-bench
strip -o $s/bin/golden "$golden"
cp /usr/bin/gst-inspect-1.0 /usr/bin/gst-launch-1.0 \
    /usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner $s/bin/
for p in coreelements app typefindfunctions playback isomp4 matroska videoparsersbad nvcodec \
    videoconvertscale x264 videotestsrc gdkpixbuf compositor; do
    cp /usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgst$p.so $s/gst/
done
# Everything they link but the C runtime, which the target's newer glibc provides.
ldd $s/bin/* $s/gst/*.so | awk '/=> \//{print $3}' | sort -u |
    grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libgcc_s|libstdc\+\+)\.so' |
    xargs -I{} cp -L {} $s/lib/
cp -L /usr/lib/x86_64-linux-gnu/libvulkan.so.1 $s/lib/
cp "$capi/libonnxruntime.so.$ort_version" "$capi/libonnxruntime_providers_shared.so" $s/ort/
cp -r models $s/models && cp .cache/assets/*.png $s/assets/
mkdir -p $s/share && cp -r /usr/share/mime $s/share/
tar -C $s -cf - . | zstd -T0 --ultra -20 --long=27 -q -o .gpu/b/payload.tar.zst
cp "$here/unpack.sh" .gpu/a/ && cp "$here/run.sh" .gpu/b/
du -sh .gpu/a .gpu/b .gpu/c
