//! OCPP 1.6J, the protocol real charge points speak: JSON over WebSocket. [`rpc`] reads
//! and writes its messages; [`core`] has the Core profile's payloads. The gateway
//! (`crate::actors::gateway`) speaks it with each charge point; docs/OCPP.md says what it
//! supports and how it maps onto the network.
//!
//! The payloads are written here rather than taken from the `rust-ocpp` crate: that crate
//! turns on `serde_json`'s arbitrary-precision numbers for the whole program (through
//! `rust_decimal`), which changes how every other message reads its figures.

pub mod core;
pub mod rpc;

/// The WebSocket subprotocol of OCPP 1.6J.
pub const SUBPROTOCOL: &str = "ocpp1.6";
