//! Runs in `evcharge demo`: the supervisor of the demo's child processes.

pub mod parts;
