//! The central's HTTP side: the only module that knows actix-web.

mod api;
pub mod broker_control;
pub mod control;
pub mod demo_control;
pub mod startup;

pub use startup::{AppState, Application};
