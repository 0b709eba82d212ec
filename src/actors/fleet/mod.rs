//! Runs in `evcharge fleet`: many real engines and monitors ([`cp_fleet`]) or simulated
//! drivers ([`driver_fleet`]) in one process, sharing a consumer behind a
//! [`key_router::KeyRouter`].

pub mod cp_fleet;
pub mod driver_fleet;
pub mod key_router;
pub mod simulated_driver;
