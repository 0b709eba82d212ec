//! The short TCP links between monitor, engine and central: framed, checksummed, acknowledged;
//! the monitor's link to the central over TLS when it is configured, the frames unchanged.

pub mod client;
pub mod frame;
pub mod stream;

pub use client::{FrameClient, LinkError, Reply};
pub use frame::{FrameCodec, Packet};
pub use stream::{Acceptor, Connector, LinkStream};
