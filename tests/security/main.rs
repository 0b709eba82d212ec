//! The `security` test binary: real processes defending what travels and what they accept.
//! One module per subject.

#[path = "../support/mod.rs"]
mod support;

mod tls;
