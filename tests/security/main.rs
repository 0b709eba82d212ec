//! The `security` test binary: each module attacks the real binary at one door, as someone
//! who can reach a port or the bus would, and shows the attack refused with its reason while
//! the network goes on serving (issue 12's "tests that attack").

#[path = "../support/mod.rs"]
mod support;

mod monitor_port;
mod registration;
