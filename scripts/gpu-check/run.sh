#!/usr/bin/env bash
# Last call on the GPU machine: the GPU paths on NVIDIA, each step bounded, logged to $OUT.
#   wgpu on the NVIDIA Vulkan driver: the compositor's golden tests against the ideal picture
#   NVDEC: 4K decode alone, then the node's benches with decodebin made to pick nvh264dec
#   ONNX Runtime on CUDA: the bench with understanding on CUDA, then on the CPU, same machine
d=$(cd "$(dirname "$0")" && pwd); r=/root/gpu
exec > >(tee -a "$OUT/log.txt") 2>&1
step() { echo; echo "=== $(date +%T) $*"; }
if [ ! -x $r/bin/edge-bench ]; then
    cat $r/cuda.zst.aa $r/cuda.zst.ab | LD_LIBRARY_PATH=$r/zstd $r/zstd/zstd -d -q -f \
        -o $r/ort/libonnxruntime_providers_cuda.so
    LD_LIBRARY_PATH=$r/zstd $r/zstd/zstd -d -q -c "$d/payload.tar.zst" | tar -x -C $r
fi
cuda_libs=$(find /opt/torch/.venv/lib/python3.12/site-packages/nvidia -maxdepth 3 -type d -name lib | tr '\n' ':')
export LD_LIBRARY_PATH=$r/lib:${cuda_libs}/usr/local/nvidia/lib64
export GST_PLUGIN_SYSTEM_PATH=$r/gst GST_PLUGIN_SCANNER=$r/bin/gst-plugin-scanner GST_REGISTRY=/tmp/gst-registry.bin
export GST_PLUGIN_FEATURE_RANK=nvh264dec:MAX XDG_DATA_DIRS=$r/share:/usr/share
[ -f /usr/share/vulkan/icd.d/nvidia_icd.json ] || export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export ORT_DYLIB_PATH=$r/ort/libonnxruntime.so.1.31.1 EDGE_NODE_ASSET_DIR=$r/assets
export XDG_RUNTIME_DIR=/tmp/rt XDG_CACHE_HOME=/tmp/cache && mkdir -p /tmp/rt /tmp/cache
bench() { timeout 150 $r/bin/edge-bench "$@" 2>&1 | grep -v 'upstream event\|upstream lost' | tail -22; }

step "H.264 decoders GStreamer sees"
$r/bin/gst-inspect-1.0 2>/dev/null | grep -i h264
step "4K30 zone plate, 10 s (x264), then decode only with NVDEC: 300 frames"
[ -f /tmp/zp4k.mp4 ] || timeout 120 $r/bin/gst-launch-1.0 -q videotestsrc num-buffers=300 pattern=zone-plate \
    kx2=40 ky2=40 kt=1 ! video/x-raw,width=3840,height=2160,framerate=30/1,format=I420 \
    ! x264enc speed-preset=ultrafast tune=zerolatency bitrate=20000 key-int-max=30 ! h264parse \
    ! mp4mux ! filesink location=/tmp/zp4k.mp4
time timeout 60 $r/bin/gst-launch-1.0 -q filesrc location=/tmp/zp4k.mp4 ! qtdemux ! h264parse \
    ! nvh264dec ! videoconvert ! video/x-raw,format=I420 ! fakesink sync=false
step "golden picture tests on this adapter"
timeout 120 $r/bin/golden --test-threads 1 2>&1 | grep -E '^test |test result|panicked|GL adapter'
step "720p30, one rendering, understanding on CUDA (models warmed up before the frame path)"
EDGE_NODE_UNDERSTANDING_EXECUTION_PROVIDER=cuda bench --resolution 1280x720 --fps 30 --duration 6 --warmup 2 --json "$OUT/bench-720p-cuda.json"
step "4K30 file upstream (the zone plate), one full-frame and one 4x-zoomed 720p viewer, understanding on CUDA"
EDGE_NODE_UNDERSTANDING_EXECUTION_PROVIDER=cuda bench --upstream-file /tmp/zp4k.mp4 --duration 8 --warmup 3 --json "$OUT/bench-4k-file-cuda.json"
step "the same, understanding off"
bench --upstream-file /tmp/zp4k.mp4 --no-understanding --duration 8 --warmup 3 --json "$OUT/bench-4k-file.json"
step "capacity ramp at 720p30 on a GStreamer-made upstream (no ffmpeg here), bounded"
timeout 60 $r/bin/gst-launch-1.0 -q videotestsrc num-buffers=300 pattern=ball \
    ! video/x-raw,width=1280,height=720,framerate=30/1,format=I420 \
    ! x264enc speed-preset=ultrafast tune=zerolatency bitrate=2764 key-int-max=60 ! h264parse \
    ! mp4mux ! filesink location=/tmp/up720.mp4
timeout ${CAPACITY_S:-150} $r/bin/edge-bench --capacity --no-understanding --no-ffmpeg \
    --upstream-file /tmp/up720.mp4 --bitrate-kbps 2500 --step 2 --settle 1 --max-groups 48 \
    --crowd-duration 3 --json "$OUT/capacity.json" 2>&1 | grep -v 'INFO\|WARN' | tail -30
step done
