//! The central's HTTP side: the only module that knows actix-web.

mod api;
pub mod control;
pub mod startup;

pub use startup::{AppState, Application};
