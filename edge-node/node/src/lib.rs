//! The node: configuration (each subsystem's section lives in its crate), lifecycle (start,
//! drain, stop), admin HTTP, telemetry export, logging, and the subcommands that run it
//! (`serve`, `view`, `demo`, `check-config`, `understand`). The engine and the control plane are
//! crates of their own; the benchmarks are the separate `edge-bench` binary.

pub mod admin;
pub mod campaign_api;
pub mod campaign_check;
pub mod cli;
pub mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod listening;
pub mod log_writer;
pub mod node;
pub mod report;
pub mod serve;
pub mod understand_cli;
pub mod view;
