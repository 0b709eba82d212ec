//! Runs in the central: the supervisor of every CP's actor, the driver desk and its
//! requests, one session per monitor link, and the hub that feeds the console.

pub mod charge_point;
pub mod console_hub;
pub mod cp_supervisor;
pub mod driver_desk;
pub mod driver_request;
pub mod monitor_session;
pub mod ocpp_requests;
pub mod thread_lag;

pub use charge_point::ChargePoint;
pub use cp_supervisor::CpSupervisor;
pub use driver_desk::DriverDesk;
pub use driver_request::DriverRequest;
pub use monitor_session::MonitorSession;
