//! Runs in the processes that start other processes — `evcharge bench`, `evcharge demo`
//! and the end-to-end tests: spawning children, waiting on a condition, free ports, and
//! HTTP to our own endpoints.
//!
//! Nothing here is used by a role while it serves; it is the one copy of what used to be
//! written again in each of those places.

pub mod http;
pub mod operator;
pub mod ports;
pub mod process;
pub mod wait;

pub use http::Endpoint;
pub use operator::{add_operator, register_cps, register_drivers};
pub use ports::{free_port, free_ports};
pub use process::{this_binary, Child, Program, StopOnDrop};
pub use wait::{wait_for, wait_until};
