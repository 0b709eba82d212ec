//! Runs in `evcharge fleet`: many real engines and monitors ([`cp_fleet`]) or simulated
//! drivers ([`driver_fleet`]) in one process, sharing a consumer behind a
//! [`key_router::KeyRouter`]; or many simulated OCPP charge points ([`ocpp_fleet`]), each on
//! its own WebSocket to a gateway.

pub mod cp_fleet;
pub mod driver_fleet;
pub mod key_router;
pub mod ocpp_charger;
pub mod ocpp_fleet;
pub mod simulated_driver;
