//! The command line: one subcommand per role. Each flag becomes a settings override.

// The doc comments below are `--help` text, written for people at a terminal, not rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod accounts;
mod fleet;

pub use accounts::{
    CentralDataArgs, CpRegisterArgs, DriverRegisterArgs, IssueArgs, OperatorCommand,
};
pub use fleet::{FleetCommand, FleetCpsArgs, FleetDriversArgs, FleetOcppArgs};

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "evcharge",
    version,
    about = "Operates a network of electric-vehicle charging points over Kafka",
    long_about = "Operates a network of electric-vehicle charging points over Kafka.\n\n\
        Every setting can also come from a TOML file (--config) or from EVCHARGE_… environment \
        variables with `__` between levels (EVCHARGE_CENTRAL__LISTEN=0.0.0.0:5000); flags win \
        over variables, variables over the file, the file over built-in defaults.\n\n\
        With no subcommand, runs `demo`."
)]
pub struct Cli {
    /// Kafka bootstrap servers (host:port[,host:port…])
    #[arg(long, global = true, value_name = "BOOTSTRAP")]
    pub kafka: Option<String>,
    /// TOML configuration file
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM certificate chain: this process's console, dashboard, monitor page and port for monitors serve TLS only
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA (or self-signed certificate) the monitor trusts: it links to the central over TLS
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The central: supervises every CP, authorises drivers, keeps the records
    Central(CentralArgs),
    /// A CP's engine: supplies energy, answers health checks, reports over Kafka
    Engine(EngineArgs),
    /// A CP's monitor: checks its engine every second and reports to the central
    Monitor(MonitorArgs),
    /// A whole charging point (engine + monitor) in one process
    Cp(CpArgs),
    /// A driver: requests supplies and follows them to the ticket
    Driver(DriverArgs),
    /// An OCPP 1.6J gateway: real charge points join the network through it (docs/OCPP.md)
    Gateway(GatewayArgs),
    /// A standalone embedded Kafka-protocol broker for one machine
    Broker(BrokerArgs),
    /// A whole network on this machine: broker, central, CPs and drivers
    Demo(DemoArgs),
    /// Manage the console's operators and API tokens (with the central stopped)
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Register charging points and issue their secrets: on the central's database (with the
    /// central stopped) or through a running central's API (--api)
    CpRegister(CpRegisterArgs),
    /// Register drivers and issue their secrets (which prove their requests on the bus): on
    /// the central's database (with the central stopped) or through its API (--api)
    DriverRegister(DriverRegisterArgs),
    /// Many simulated charging points, or many drivers, in one process (load tests)
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Measure a whole network at scale: telemetry, authorisation, crash detection, resources
    Bench(BenchArgs),
    /// Certificates for TLS
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Write a self-signed certificate (cert.pem) and its key (key.pem, mode 0600), for a lab
    SelfSigned {
        /// Directory to write them in
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A name or IP address the certificate is for (repeatable); localhost, 127.0.0.1 and ::1 always are
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Network sizes to measure, one after another, e.g. 100,1000,10000 [default: 1000,
    /// unless only --ocpp-chargers is given]
    #[arg(long, value_name = "N,…", value_delimiter = ',')]
    pub cps: Vec<u32>,
    /// Also measure one OCPP gateway holding this many OCPP 1.6J charge points (connections,
    /// memory a connection, remote-start round trip, meter values a second)
    #[arg(long, value_name = "N")]
    pub ocpp_chargers: Option<u32>,
    /// How often each OCPP charge point sends MeterValues while supplying
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub meter_interval: humantime::Duration,
    /// How long to measure telemetry with every CP supplying
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub duration: humantime::Duration,
    /// Authorisation requests per second
    #[arg(long, value_name = "PER_SECOND", default_value_t = 200.0)]
    pub auth_rate: f64,
    /// Authorisation requests in all
    #[arg(long, value_name = "N", default_value_t = 4000)]
    pub auth_requests: usize,
    /// Engine and monitor crashes to inject (half each)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub crashes: usize,
    /// Centrals sharing the network; with more than one, the failover phase runs
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub centrals: u32,
    /// Each central may use this percent of one core (a CPU cgroup, as a container's limit;
    /// needs root): one central can then be loaded past its capacity, and the scale-out
    /// phase shows what the others change
    #[arg(long, value_name = "PERCENT")]
    pub central_cpu: Option<u32>,
    /// Failover phase: SIGKILLs of a central under load, timed until its CPs are served again
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub failovers: usize,
    /// Write the figures here as JSON
    #[arg(long, value_name = "PATH", default_value = "bench-results.json")]
    pub json: PathBuf,
    /// Working directory (databases, logs of every process) [default: a fresh temporary directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Settings overrides as (dotted key, value) pairs.
pub type Overrides = Vec<(&'static str, String)>;

fn push<T: ToString>(out: &mut Overrides, key: &'static str, value: &Option<T>) {
    if let Some(v) = value {
        out.push((key, v.to_string()));
    }
}

#[derive(Debug, Args)]
pub struct CentralArgs {
    /// This central's name: unique in the network, the same across restarts [default: central-1]
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// File of the key the network's centrals share (made if missing) [default: cluster-key in --data]
    #[arg(long, value_name = "FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// TCP address for monitors [default: 0.0.0.0:5000]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// HTTP address of the API and console [default: 0.0.0.0:8002]
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// Directory of the database [default: evcharge-data/central]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Silence after which a CP is disconnected, e.g. 3s
    #[arg(long, value_name = "DURATION")]
    pub silence_window: Option<String>,
    /// Time a reservation waits for the plug, e.g. 30s
    #[arg(long, value_name = "DURATION")]
    pub reservation_expiry: Option<String>,
    /// Lockout after 5 wrong passwords, doubled after each further one (up to 15 min) [default: 1s]
    #[arg(long, value_name = "DURATION")]
    pub login_lockout: Option<String>,
}

/// Flags shared by the roles that make up a CP.
#[derive(Debug, Args)]
pub struct CpIdentityArgs {
    /// Charging point id, e.g. CP001
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// File holding the CP's secret, as `evcharge cp-register` wrote it (or set
    /// EVCHARGE_CP__SECRET_FILE or EVCHARGE_CP__SECRET): the monitor presents it to the
    /// central, the engine proves its records with it
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

impl CpIdentityArgs {
    fn push(&self, out: &mut Overrides) {
        push(out, "cp.id", &self.id);
        push(
            out,
            "cp.secret_file",
            &self.secret_file.as_ref().map(|p| p.display()),
        );
    }
}

/// Flags of a process's control endpoint.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// Serve the control endpoint (status, faults, crash injection) on this HTTP address
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<String>,
    /// Let `POST /control/crash` kill this process abruptly (for demos)
    #[arg(long)]
    pub allow_crash: bool,
}

impl ControlArgs {
    fn push(&self, out: &mut Overrides) {
        push(out, "control.listen", &self.control);
        if self.allow_crash {
            out.push(("control.allow_crash", "true".into()));
        }
    }
}

/// Flags of the engine's simulation.
#[derive(Debug, Args)]
pub struct EngineSimArgs {
    /// Delivered power in kW [default: 22]
    #[arg(long, value_name = "KW")]
    pub power_kw: Option<f64>,
    /// Plug in this long after authorisation; 0 waits for a person [default: 2s]
    #[arg(long, value_name = "DURATION")]
    pub plug_in_delay: Option<String>,
    /// Unplug after supplying this long; 0 waits for a person [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub supply_duration: Option<String>,
    /// Read keyboard commands from standard input (plug, unplug, ko, ok, status)
    #[arg(long)]
    pub interactive: bool,
    /// Directory where the supply in progress survives a crash [default: evcharge-data/engine-<id>]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub cp: CpIdentityArgs,
    /// Address of the health-check socket [default: 127.0.0.1:6000]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub sim: EngineSimArgs,
}

/// Flags by which a monitor presents its CP to the central.
#[derive(Debug, Args)]
pub struct MonitorLinkArgs {
    /// TCP address of the central, or of several: a:5000,b:5000 [default: 127.0.0.1:5000]
    #[arg(long, value_name = "ADDR:PORT[,ADDR:PORT…]")]
    pub central: Option<String>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub cp: CpIdentityArgs,
    /// Health-check socket of the engine [default: 127.0.0.1:6000]
    #[arg(long, value_name = "ADDR:PORT")]
    pub engine: Option<String>,
    #[command(flatten)]
    pub link: MonitorLinkArgs,
    #[command(flatten)]
    pub page: MonitorPageArgs,
}

/// The monitor page's flag.
#[derive(Debug, Args)]
pub struct MonitorPageArgs {
    /// Serve the monitor page on this HTTP address [default when given alone: 127.0.0.1:8003]
    #[arg(long = "http", value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = "127.0.0.1:8003")]
    pub http: Option<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub cp: CpIdentityArgs,
    #[command(flatten)]
    pub link: MonitorLinkArgs,
    /// Address of the engine's health-check socket [default: 127.0.0.1:0, any free port]
    #[arg(long, value_name = "ADDR:PORT")]
    pub engine_listen: Option<String>,
    #[command(flatten)]
    pub sim: EngineSimArgs,
    #[command(flatten)]
    pub page: MonitorPageArgs,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address charge points connect to, at ws://ADDR:PORT/ocpp/<id> [default: 127.0.0.1:9000]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// This gateway's name, unique among the network's gateways [default: gateway]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub link: MonitorLinkArgs,
    /// Heartbeat interval told to charge points at boot [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub heartbeat_interval: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("plan").args(["cp", "any", "file", "interactive"])))]
pub struct DriverArgs {
    /// Driver id, e.g. D001
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Request one supply at this CP
    #[arg(long, value_name = "CP")]
    pub cp: Option<String>,
    /// Request one supply at any available CP
    #[arg(long)]
    pub any: bool,
    /// Serve every CP id of this file in turn (one per line; `*` for any CP)
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Read commands from standard input (list, request [CP], stop, quit)
    #[arg(long)]
    pub interactive: bool,
    /// Pause after each service [default: 4s]
    #[arg(long, value_name = "DURATION")]
    pub pause: Option<String>,
    /// Print every update as one JSON line instead of text
    #[arg(long)]
    pub json: bool,
    /// File holding the driver's secret, as `evcharge driver-register` wrote it (or set
    /// EVCHARGE_DRIVER__SECRET_FILE or EVCHARGE_DRIVER__SECRET): it proves the driver's
    /// requests on the bus
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Serve the driver dashboard on this HTTP address [default when given alone: 127.0.0.1:8001]
    #[arg(long, value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = "127.0.0.1:8001")]
    pub http: Option<String>,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Also write the bootstrap address to this file
    #[arg(long, value_name = "PATH")]
    pub bootstrap_file: Option<PathBuf>,
    /// Serve outage injection (POST /control/outage, /recover, /brokers/{id}/down|up) here
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<String>,
    /// Brokers in the embedded cluster (1 to 5), each topic replicated on up to 3 of them
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub brokers: i32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Centrals sharing the CPs: crash one and watch its CPs move [default: 1]
    #[arg(long, value_name = "N")]
    pub centrals: Option<u32>,
    /// Brokers of the embedded Kafka cluster (up to 5): with 3, one can go down [default: 1]
    #[arg(long, value_name = "N")]
    pub brokers: Option<i32>,
    /// Number of charging points [default: 5]
    #[arg(long, value_name = "N")]
    pub cps: Option<u32>,
    /// Number of drivers [default: 2]
    #[arg(long, value_name = "N")]
    pub drivers: Option<u32>,
    /// Working directory (databases, demo file) [default: a fresh temporary directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// HTTP address of the central's API [default: 0.0.0.0:8002]
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// TCP address of the central for monitors [default: 0.0.0.0:5000]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// HTTP address of the demo's control endpoint: crash or restart parts, broker outage [default: 127.0.0.1:8010]
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<String>,
    /// Address of the demo's OCPP gateway, where a real charge point may join as OCPP01 [default: 127.0.0.1:9000]
    #[arg(long, value_name = "ADDR:PORT")]
    pub gateway: Option<String>,
    /// Start a part that failed on its own again after this long; 0s leaves it down [default: 5s]
    #[arg(long, value_name = "DURATION")]
    pub restart_failed: Option<String>,
    /// Port of the first driver's dashboard, the next ones 10 apart; 0 for none [default: 8001]
    #[arg(long, value_name = "PORT")]
    pub driver_pages: Option<u16>,
    /// Port of the first CP's monitor page, the next ones 10 apart; 0 for none [default: 8003]
    #[arg(long, value_name = "PORT")]
    pub monitor_pages: Option<u16>,
}

impl Cli {
    /// Every flag given, as settings overrides.
    pub fn overrides(&self) -> Overrides {
        let mut out = Overrides::new();
        push(&mut out, "kafka.bootstrap", &self.kafka);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        push(&mut out, "tls.cert", &path(&self.tls_cert));
        push(&mut out, "tls.key", &path(&self.tls_key));
        push(&mut out, "tls.ca", &path(&self.tls_ca));
        match &self.command {
            Some(Command::Central(a)) => {
                push(&mut out, "central.instance", &a.instance);
                push(
                    &mut out,
                    "central.cluster_key_file",
                    &path(&a.cluster_key_file),
                );
                push(&mut out, "central.listen", &a.listen);
                push(&mut out, "central.http", &a.http);
                push(
                    &mut out,
                    "central.data",
                    &a.data.as_ref().map(|p| p.display()),
                );
                push(&mut out, "central.silence_window", &a.silence_window);
                push(
                    &mut out,
                    "central.reservation_expiry",
                    &a.reservation_expiry,
                );
                push(&mut out, "central.login_lockout", &a.login_lockout);
            }
            Some(Command::Engine(a)) => {
                a.cp.push(&mut out);
                push(&mut out, "engine.listen", &a.listen);
                a.sim.push(&mut out);
                a.control.push(&mut out);
            }
            Some(Command::Monitor(a)) => {
                a.cp.push(&mut out);
                push(&mut out, "monitor.engine", &a.engine);
                push(&mut out, "monitor.http", &a.page.http);
                a.link.push(&mut out);
                a.control.push(&mut out);
            }
            Some(Command::Cp(a)) => {
                a.cp.push(&mut out);
                out.push((
                    "engine.listen",
                    a.engine_listen
                        .clone()
                        .unwrap_or_else(|| "127.0.0.1:0".into()),
                ));
                a.link.push(&mut out);
                push(&mut out, "monitor.http", &a.page.http);
                a.sim.push(&mut out);
                a.control.push(&mut out);
            }
            Some(Command::Driver(a)) => {
                push(&mut out, "driver.id", &a.id);
                push(&mut out, "driver.pause", &a.pause);
                push(&mut out, "driver.http", &a.http);
                push(
                    &mut out,
                    "driver.secret_file",
                    &a.secret_file.as_ref().map(|p| p.display()),
                );
                a.control.push(&mut out);
            }
            Some(Command::Gateway(a)) => {
                push(&mut out, "gateway.listen", &a.listen);
                push(&mut out, "gateway.name", &a.name);
                push(
                    &mut out,
                    "gateway.heartbeat_interval",
                    &a.heartbeat_interval,
                );
                a.link.push(&mut out);
            }
            Some(Command::Demo(a)) => {
                push(&mut out, "demo.centrals", &a.centrals);
                push(&mut out, "demo.brokers", &a.brokers);
                push(&mut out, "demo.cps", &a.cps);
                push(&mut out, "demo.drivers", &a.drivers);
                push(&mut out, "demo.dir", &a.dir.as_ref().map(|p| p.display()));
                push(&mut out, "central.http", &a.http);
                push(&mut out, "central.listen", &a.listen);
                push(&mut out, "demo.control", &a.control);
                push(&mut out, "gateway.listen", &a.gateway);
                push(&mut out, "demo.restart_failed", &a.restart_failed);
                push(&mut out, "demo.driver_pages", &a.driver_pages);
                push(&mut out, "demo.monitor_pages", &a.monitor_pages);
            }
            Some(Command::Operator(
                OperatorCommand::Add { data, .. }
                | OperatorCommand::Token { data, .. }
                | OperatorCommand::Tokens { data }
                | OperatorCommand::Revoke { data, .. }
                | OperatorCommand::List { data },
            ))
            | Some(Command::CpRegister(CpRegisterArgs {
                issue: IssueArgs { data, .. },
                ..
            }))
            | Some(Command::DriverRegister(DriverRegisterArgs {
                issue: IssueArgs { data, .. },
                ..
            })) => push(
                &mut out,
                "central.data",
                &data.data.as_ref().map(|p| p.display()),
            ),
            Some(Command::Fleet(FleetCommand::Cps(a))) => {
                push(&mut out, "monitor.central", &a.central);
                out.push((
                    "engine.listen",
                    a.engine_listen
                        .clone()
                        .unwrap_or_else(|| "127.0.0.1:0".into()),
                ));
                push(&mut out, "engine.plug_in_delay", &a.plug_in_delay);
                push(&mut out, "engine.supply_duration", &a.supply_duration);
            }
            Some(Command::Fleet(FleetCommand::Drivers(_)))
            | Some(Command::Fleet(FleetCommand::Ocpp(_)))
            | Some(Command::Bench(_))
            | Some(Command::Tls(_))
            | Some(Command::Broker(_))
            | None => {}
        }
        out
    }
}

impl EngineSimArgs {
    fn push(&self, out: &mut Overrides) {
        push(out, "engine.power_kw", &self.power_kw);
        push(out, "engine.plug_in_delay", &self.plug_in_delay);
        push(out, "engine.supply_duration", &self.supply_duration);
        push(out, "engine.data", &self.data.as_ref().map(|p| p.display()));
        if self.interactive {
            out.push(("engine.interactive", "true".into()));
        }
    }
}

impl MonitorLinkArgs {
    fn push(&self, out: &mut Overrides) {
        push(out, "monitor.central", &self.central);
    }
}

#[cfg(test)]
mod tests;
