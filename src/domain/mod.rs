//! The vocabulary every layer shares, with no I/O: a CP's state and view, what a central
//! instance says of itself, reservations and denials, what a driver knows of its supply, a
//! monitor's health history, the rule of one instance per id, what an operator registers of
//! a CP, and money.

pub mod central_status;
pub mod cp;
pub mod health_history;
pub mod money;
pub mod presence;
pub mod registration;
pub mod supply_view;

pub use cp::{CpState, CpView, Denial, EngineHealth, Reservation};

/// The most brokers the embedded Kafka cluster runs.
pub const MAX_EMBEDDED_BROKERS: i32 = 5;
