//! Runs in a driver's process (`evcharge driver`): the driver's session with the central.

pub mod session;

pub use session::Driver;
