//! Every actor of every role, one per file.
//!
//! Central: [`CpSupervisor`] owns one [`ChargePoint`] per CP and routes Kafka records to them;
//! [`DriverDesk`] takes driver requests and starts one [`DriverRequest`] per request;
//! [`MonitorSession`] serves one monitor's TCP link. Elsewhere: [`Engine`], [`Monitor`],
//! [`Driver`]. `evcharge fleet` hosts many engines and monitors ([`cp_fleet`]) or drivers
//! ([`driver_fleet`]) in one process, behind [`key_router::KeyRouter`]s.

pub mod charge_point;
pub mod console_hub;
pub mod cp_fleet;
pub mod cp_supervisor;
pub mod demo_parts;
pub mod driver;
pub mod driver_desk;
pub mod driver_fleet;
pub mod driver_request;
pub mod engine;
pub mod key_router;
pub mod monitor;
pub mod monitor_session;
pub mod simulated_driver;

pub use charge_point::{ChargePoint, CpState, CpView, EngineHealth};
pub use cp_supervisor::CpSupervisor;
pub use driver::Driver;
pub use driver_desk::DriverDesk;
pub use driver_request::DriverRequest;
pub use engine::Engine;
pub use monitor::Monitor;
pub use monitor_session::MonitorSession;
