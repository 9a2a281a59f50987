//! Everything that touches wgpu.

pub mod adapter;
pub mod params;
pub mod pipelines;
pub mod pool;
pub mod scale;
pub mod words;
