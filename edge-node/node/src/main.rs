//! `edge-node`: the rendering node a telco runs at each 5G MEC site for live-commerce video.
//!
//! Upstream → decode once → compose per rendering on the GPU (wgpu, planar YUV) → H.264 once
//! per rendering → moq-lite over WebTransport on quinn to every viewer who shares it.

fn main() -> std::process::ExitCode {
    edge_node::cli::main()
}
