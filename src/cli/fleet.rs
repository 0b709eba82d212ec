//! `evcharge fleet`'s flags: many charging points, or many drivers, in one process.

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Many charging points, each a real engine and monitor actor with its own TCP links
    Cps(FleetCpsArgs),
    /// Many drivers; driver i asks CP i when told to through the control endpoint
    Drivers(FleetDriversArgs),
    /// Many simulated OCPP 1.6J charge points, each on its own WebSocket to a gateway
    Ocpp(FleetOcppArgs),
}

#[derive(Debug, Args)]
pub struct FleetCpsArgs {
    /// Number of charging points
    #[arg(long, value_name = "N")]
    pub count: u32,
    /// Number of the first one
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub first: u32,
    /// Id prefix: CP00001, CP00002, …
    #[arg(long, value_name = "TEXT", default_value = "CP")]
    pub prefix: String,
    /// TCP address of the central [default: 127.0.0.1:5000]
    #[arg(long, value_name = "ADDR:PORT")]
    pub central: Option<String>,
    /// The CPs' secrets: one `ID SECRET` line each, as `evcharge cp-register --count` wrote
    #[arg(long, value_name = "FILE")]
    pub secrets: PathBuf,
    /// Address of the engines' shared health-check socket [default: 127.0.0.1:0]
    #[arg(long, value_name = "ADDR:PORT")]
    pub engine_listen: Option<String>,
    /// Plug in this long after authorisation; 0 never [default: 2s]
    #[arg(long, value_name = "DURATION")]
    pub plug_in_delay: Option<String>,
    /// Unplug after supplying this long; 0 never [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub supply_duration: Option<String>,
    /// Directory of the engines' shared database [default: evcharge-data/fleet-<first id>]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Serve the fleet's control endpoint (status, crash, restart) on this HTTP address
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<String>,
}

#[derive(Debug, Args)]
pub struct FleetDriversArgs {
    /// Number of drivers
    #[arg(long, value_name = "N")]
    pub count: u32,
    /// Number of the first one
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub first: u32,
    /// Id prefix: D00001, D00002, …
    #[arg(long, value_name = "TEXT", default_value = "D")]
    pub prefix: String,
    /// The drivers' secrets: one `ID SECRET` line each, as `evcharge driver-register --count`
    /// wrote
    #[arg(long, value_name = "FILE")]
    pub secrets: PathBuf,
    /// Id prefix of the CPs the drivers are paired with
    #[arg(long, value_name = "TEXT", default_value = "CP")]
    pub cp_prefix: String,
    /// Number of the CP paired with the first driver
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cp_first: u32,
    /// Serve the fleet's control endpoint (status, paced requests) on this HTTP address
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<String>,
}

#[derive(Debug, Args)]
pub struct FleetOcppArgs {
    /// Number of charge points
    #[arg(long, value_name = "N")]
    pub count: u32,
    /// Number of the first one
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub first: u32,
    /// Id prefix: CP00001, CP00002, …
    #[arg(long, value_name = "TEXT", default_value = "CP")]
    pub prefix: String,
    /// The gateway's charge point URL, each charger's id appended
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9000/ocpp")]
    pub gateway: String,
    /// The charge points' keys: one `ID SECRET` line each, as `evcharge cp-register --count`
    /// wrote
    #[arg(long, value_name = "FILE")]
    pub secrets: PathBuf,
    /// MeterValues while supplying, one per charge point this often
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub meter_interval: humantime::Duration,
    /// New connections a second
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub connect_rate: u32,
    /// Serve the fleet's control endpoint (status, plug-in) on this HTTP address
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<String>,
}
