//! `edge-node`: the rendering node a telco runs at each 5G MEC site for live-commerce video.
//!
//! Upstream → decode once → compose per rendering on the GPU (wgpu, planar YUV) → H.264 once
//! per rendering → moq-lite over WebTransport on quinn to every viewer who shares it.

/// jemalloc, with its background thread: memory a burst freed (a connection flood, a crowd
/// leaving) goes back to the system within seconds, where glibc's arenas kept the peak.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    edge_node::cli::main()
}
