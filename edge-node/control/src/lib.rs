//! The control plane: who may watch (auth), where each viewer belongs (zone from MEC, position,
//! hint or default; rendition; personal items), whether the node has room for it (the admission
//! gate and the costs it learns), and the directory of viewers the engine reads each frame.
//!
//! Everything here runs on network tasks and decides before a session is accepted or while it
//! watches; none of it draws or encodes.

pub mod admission_gate;
pub mod auth;
pub mod delivery_cost;
pub mod mec;
pub mod routing;
pub mod viewer_control;
pub mod viewers;
