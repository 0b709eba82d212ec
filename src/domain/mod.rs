//! The vocabulary every layer shares, with no I/O: a CP's state and view, reservations and
//! denials, what a driver knows of its supply, a monitor's health history, the rule of one
//! instance per id, and what an operator registers of a CP.

pub mod cp;
pub mod health_history;
pub mod presence;
pub mod registration;
pub mod supply_view;

pub use cp::{CpState, CpView, Denial, EngineHealth, Reservation};
