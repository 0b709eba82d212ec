//! Runs in a charging point's process (`evcharge engine`, `monitor` or `cp`): the engine
//! that supplies the energy and the monitor that watches it.

pub mod engine;
pub mod health_checks;
pub mod monitor;

pub use engine::Engine;
pub use monitor::Monitor;
