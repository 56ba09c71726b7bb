//! The gateway data planes.

pub mod ai;
