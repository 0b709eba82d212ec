//! The OCPP gateway's settings (`evcharge gateway`). Its links to the central are a
//! monitor's (`monitor.central`, its timeouts and period); its hellos an engine's
//! (`engine.heartbeat`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GatewaySettings {
    /// Address charge points connect to: `ws://<listen>/ocpp/<id>` (`wss://` with `tls.cert`).
    pub listen: String,
    /// This gateway's name among the network's gateways: each needs its own (it names the
    /// consumer group that brings it the central's commands).
    pub name: String,
    /// The heartbeat interval told to charge points at boot.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A WebSocket ping this often; a charge point silent for three of them is dropped.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Charge points connected at most at once.
    pub max_connections: usize,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            listen: "127.0.0.1:9000".into(),
            name: "gateway".into(),
            heartbeat_interval: Duration::from_secs(60),
            ping_interval: Duration::from_secs(10),
            max_connections: 20_000,
        }
    }
}
