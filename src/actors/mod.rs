//! Every actor, in a folder named after the process that runs it:
//!
//! - [`central`]: the central. [`CpSupervisor`] owns one [`ChargePoint`] per CP and routes
//!   Kafka records to them; [`DriverDesk`] starts one [`DriverRequest`] per request;
//!   [`MonitorSession`] serves one monitor's TCP link; the console hub gathers what the
//!   console shows.
//! - [`cp`]: a charging point's process, its [`Engine`] and its [`Monitor`].
//! - [`driver`]: a driver's process, its [`Driver`].
//! - [`fleet`]: `evcharge fleet`, many engines and monitors or drivers in one process.
//! - [`demo`]: `evcharge demo`, the supervisor of the demo's child processes.

pub mod central;
pub mod cp;
pub mod demo;
pub mod driver;
pub mod fleet;
pub mod gateway;
pub mod line_rate;

pub use central::{ChargePoint, CpSupervisor, DriverDesk, DriverRequest, MonitorSession};
pub use cp::{Engine, Monitor};
pub use driver::Driver;

/// Where a part of a process says it was refused for good (its id is live elsewhere), so
/// that the process can stop with the reason.
pub type Refusals = tokio::sync::mpsc::UnboundedSender<String>;
