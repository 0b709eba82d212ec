//! Every actor of every role, one per file.
//!
//! Central: [`CpSupervisor`] owns one [`ChargePoint`] per CP and routes Kafka records to them;
//! [`DriverDesk`] takes driver requests and starts one [`DriverRequest`] per request;
//! [`MonitorSession`] serves one monitor's TCP link. Elsewhere: [`Engine`], [`Monitor`],
//! [`Driver`].

pub mod charge_point;
pub mod console_hub;
pub mod cp_supervisor;
pub mod demo_parts;
pub mod driver;
pub mod driver_desk;
pub mod driver_request;
pub mod engine;
pub mod monitor;
pub mod monitor_session;

pub use charge_point::{ChargePoint, CpState, CpView, EngineHealth};
pub use cp_supervisor::CpSupervisor;
pub use driver::Driver;
pub use driver_desk::DriverDesk;
pub use driver_request::DriverRequest;
pub use engine::Engine;
pub use monitor::Monitor;
pub use monitor_session::MonitorSession;
