//! The short TCP links between monitor, engine and central: framed, checksummed, acknowledged.

pub mod client;
pub mod frame;

pub use client::{FrameClient, LinkError, Reply};
pub use frame::{FrameCodec, Packet};
