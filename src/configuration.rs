//! Typed settings, layered: built-in defaults < config file < `EVCHARGE_…` environment
//! variables (`__` between levels, e.g. `EVCHARGE_CENTRAL__LISTEN`) < command-line flags.
//! A key that is no setting, in the file or a variable, is refused by name.

mod central;
mod gateway;
mod keys;
mod security;

pub use central::{CentralSettings, PartitionAssignment, SessionTimeout};
pub use gateway::GatewaySettings;
pub use security::{SaslMechanism, SecurityProtocol, TlsSettings};

use crate::domain::registration::{check_cp_id, check_driver_id};
use crate::messages::Secret;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub central: CentralSettings,
    pub cp: CpSettings,
    pub engine: EngineSettings,
    pub monitor: MonitorSettings,
    pub driver: DriverSettings,
    pub demo: DemoSettings,
    pub control: ControlSettings,
    pub tls: TlsSettings,
    pub gateway: GatewaySettings,
}

/// The control endpoint of an engine, monitor, CP or driver process: status, simulated
/// faults and, when allowed, crash injection. The token guards it, and every other control
/// endpoint of the process (the broker's, the demo's, a fleet's).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ControlSettings {
    /// HTTP address of the control endpoint; none when absent.
    pub listen: Option<String>,
    /// `POST /control/crash` makes the process die abruptly.
    pub allow_crash: bool,
    /// The bearer token every control request must carry (at least
    /// [`MIN_CONTROL_TOKEN_LEN`] characters). Never shown, not even in debug output.
    pub token: Option<String>,
    /// A file holding the token, used when `token` is not set; created with a new random
    /// token (mode 0600) when absent. Neither set: a new token in a file of its own, whose
    /// path is logged.
    pub token_file: Option<PathBuf>,
}

/// The shortest control token accepted.
pub const MIN_CONTROL_TOKEN_LEN: usize = 16;

impl ControlSettings {
    /// The token given in the settings, if any (an empty one is none).
    pub fn given_token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty())
    }
}

impl std::fmt::Debug for ControlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSettings")
            .field("listen", &self.listen)
            .field("allow_crash", &self.allow_crash)
            .field("token", &self.token.as_ref().map(|_| "•••"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated.
    pub bootstrap: String,
    /// Prefix of every topic name.
    pub topic_prefix: String,
    /// Partitions of each topic created at start-up.
    pub partitions: i32,
    /// Replication factor of each topic created at start-up.
    pub replication: i32,
    /// Pause between attempts while the broker cannot be reached.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest a consumer's fetch waits at the broker for new records. Kafka answers as
    /// soon as records arrive, so this only bounds idle polling; the embedded broker waits
    /// it out every time, so roles on it use a few milliseconds.
    #[serde(with = "humantime_serde")]
    pub fetch_wait: Duration,
    /// Longest a record waits in its producer for others to share its batch.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How old (or, for a clock ahead, how new) a record that acts on the present may be:
    /// a driver's request, an engine's hello, a crash command. Older ones are set aside as
    /// stale, and each is taken once within the window, so a replay changes nothing.
    #[serde(with = "humantime_serde")]
    pub replay_window: Duration,
    /// How the centrals share the CPs' partitions: `cooperative-sticky` (a partition moves
    /// only when it must, the others' CPs undisturbed) or `range` (every change moves all
    /// of them; for brokers whose groups do not follow the cooperative protocol, tansu 0.6).
    pub partition_assignment: PartitionAssignment,
    /// `plaintext` (a one-machine lab only), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`, with a SASL protocol.
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    /// Best given as `EVCHARGE_KAFKA__SASL_PASSWORD` or through `sasl_password_file`.
    pub sasl_password: Option<Secret>,
    /// A file holding the SASL password (its first line).
    pub sasl_password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the brokers' certificates (`ssl`, `sasl_ssl`); the
    /// system's CAs when unset.
    pub ssl_ca_location: Option<PathBuf>,
}

/// The identity of one charging point, shared by its engine and its monitor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CpSettings {
    pub id: String,
    /// The secret issued when the CP was registered (better: `secret_file`). Its location
    /// and tariff are the registration's, not the CP's to claim.
    pub secret: Option<Secret>,
    /// A file holding the secret (what `evcharge cp-register --secret-file` writes).
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EngineSettings {
    /// TCP address of the health-check socket.
    pub listen: String,
    /// Delivered power while supplying.
    pub power_kw: f64,
    /// Unattended runs plug the vehicle in this long after authorisation; 0 = wait for a person.
    #[serde(with = "humantime_serde")]
    pub plug_in_delay: Duration,
    /// Unattended runs unplug after supplying this long; 0 = wait for a person.
    #[serde(with = "humantime_serde")]
    pub supply_duration: Duration,
    /// How often telemetry is sent while supplying.
    #[serde(with = "humantime_serde")]
    pub report_period: Duration,
    /// Read keyboard commands (plug, unplug, ko, ok) from standard input.
    pub interactive: bool,
    /// How often the engine tells the central it is alive.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// An engine the central keeps refusing (its CP id is live elsewhere) stops after this long.
    #[serde(with = "humantime_serde")]
    pub refusal_grace: Duration,
    /// Where the supply in progress is kept; `evcharge-data/engine-<id>` when absent.
    pub data: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MonitorSettings {
    /// Health-check socket of the engine.
    pub engine: String,
    /// TCP address of the central.
    pub central: String,
    #[serde(with = "humantime_serde")]
    pub health_period: Duration,
    /// How long to wait for an answer from the engine, and to connect and send to the
    /// central.
    #[serde(with = "humantime_serde")]
    pub answer_timeout: Duration,
    /// How long to wait for the central's answer to a request sent (at least
    /// `answer_timeout`): a central past its capacity answers late, and a new link would
    /// cost it more than the late answer.
    #[serde(with = "humantime_serde")]
    pub central_patience: Duration,
    /// A monitor the central keeps refusing (its CP id is held by another live monitor)
    /// stops after this long.
    #[serde(with = "humantime_serde")]
    pub refusal_grace: Duration,
    /// HTTP address of the monitor page (health checks, faults); none when absent.
    pub http: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DriverSettings {
    pub id: String,
    /// The secret issued when the driver was registered (better: `secret_file`): the
    /// driver proves its requests on the bus with it.
    pub secret: Option<Secret>,
    /// A file holding the secret (what `evcharge driver-register --secret-file` writes).
    pub secret_file: Option<PathBuf>,
    /// Pause after each service, whether it succeeded or failed.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// Give up on a request the central has not answered after this long.
    #[serde(with = "humantime_serde")]
    pub answer_timeout: Duration,
    /// Give up waiting for the ticket of an accepted request after this long.
    #[serde(with = "humantime_serde")]
    pub supply_timeout: Duration,
    /// How often the driver tells the central it is alive.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A driver the central keeps refusing (its id is live elsewhere) stops after this long.
    #[serde(with = "humantime_serde")]
    pub refusal_grace: Duration,
    /// HTTP address of the driver dashboard; none when absent.
    pub http: Option<String>,
    /// How long the dashboard waits for the central to answer a sign-in, a list of
    /// available CPs or a history before saying it cannot reach the central.
    #[serde(with = "humantime_serde")]
    pub ask_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DemoSettings {
    /// Number of centrals: one network, their CPs shared between them.
    pub centrals: u32,
    /// Brokers of the embedded Kafka cluster (1 to 5): with 3, one can be taken down.
    pub brokers: i32,
    /// Number of charging points.
    pub cps: u32,
    /// Number of drivers, each serving the demo file.
    pub drivers: u32,
    /// Working directory of the demo (databases, demo file); a fresh temporary one if empty.
    pub dir: Option<PathBuf>,
    /// HTTP address of the demo's control endpoint (crash and restart parts, broker outage).
    pub control: String,
    /// A part that fails on its own (e.g. an engine crashed from the console) is started
    /// again after this long; `0s` leaves it down.
    #[serde(with = "humantime_serde")]
    pub restart_failed: Duration,
    /// Port of the first driver's dashboard on 127.0.0.1; the next drivers' are 10 apart.
    /// 0 serves none.
    pub driver_pages: u16,
    /// Port of the first CP's monitor page on 127.0.0.1; the next CPs' are 10 apart.
    /// 0 serves none.
    pub monitor_pages: u16,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            bootstrap: "127.0.0.1:9092".into(),
            topic_prefix: "evcharge.".into(),
            partitions: 6,
            replication: 1,
            retry_backoff: Duration::from_secs(2),
            fetch_wait: Duration::from_millis(100),
            linger: Duration::from_millis(1),
            replay_window: Duration::from_secs(300),
            partition_assignment: PartitionAssignment::CooperativeSticky,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            sasl_password_file: None,
            ssl_ca_location: None,
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            listen: "127.0.0.1:6000".into(),
            power_kw: 22.0,
            plug_in_delay: Duration::from_secs(2),
            supply_duration: Duration::from_secs(10),
            report_period: Duration::from_secs(1),
            interactive: false,
            heartbeat: Duration::from_secs(2),
            refusal_grace: Duration::from_secs(8),
            data: None,
        }
    }
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            engine: "127.0.0.1:6000".into(),
            central: "127.0.0.1:5000".into(),
            health_period: Duration::from_secs(1),
            answer_timeout: Duration::from_millis(800),
            central_patience: Duration::from_secs(3),
            refusal_grace: Duration::from_secs(5),
            http: None,
        }
    }
}

impl Default for DriverSettings {
    fn default() -> Self {
        DriverSettings {
            id: String::new(),
            secret: None,
            secret_file: None,
            pause: Duration::from_secs(4),
            answer_timeout: Duration::from_secs(30),
            supply_timeout: Duration::from_secs(600),
            heartbeat: Duration::from_secs(2),
            refusal_grace: Duration::from_secs(8),
            http: None,
            ask_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for DemoSettings {
    fn default() -> Self {
        DemoSettings {
            centrals: 1,
            brokers: 1,
            cps: 5,
            drivers: 2,
            dir: None,
            control: "127.0.0.1:8010".into(),
            restart_failed: Duration::from_secs(5),
            driver_pages: 8001,
            monitor_pages: 8003,
        }
    }
}

/// A bad setting, said in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {key}: {why}")]
    Invalid { key: &'static str, why: String },
    #[error("unknown setting {name} (in the {found_in}); known here: {choices}")]
    Unknown {
        name: String,
        found_in: String,
        choices: String,
    },
}

/// The environment variable that carries an operator's API token for the commands that
/// call a running central's API (`evcharge cp-register --api`): not a setting.
pub const API_TOKEN_VARIABLE: &str = "EVCHARGE_API_TOKEN";

/// Builds the settings from every layer; `overrides` are the flags given on the command line,
/// as (dotted key, value) pairs.
pub fn load(
    file: Option<&Path>,
    overrides: &[(&'static str, String)],
) -> Result<Settings, SettingsError> {
    let mut builder =
        config::Config::builder().add_source(config::Config::try_from(&Settings::default())?);
    if let Some(path) = file {
        let source = config::File::from(path).required(true);
        keys::file(&config::Source::collect(&source)?, path)?;
        builder = builder.add_source(source);
    }
    let variables = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    builder = builder.add_source(
        config::Environment::with_prefix("EVCHARGE")
            .prefix_separator("_")
            .separator("__")
            .source(Some(keys::environment(variables)?)),
    );
    for (key, value) in overrides {
        builder = builder.set_override(*key, value.as_str())?;
    }
    let mut settings: Settings = builder.build()?.try_deserialize()?;
    settings.kafka.read_password_file()?;
    settings.validate()?;
    Ok(settings)
}

impl Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, why: &str| {
            Err(SettingsError::Invalid {
                key,
                why: why.to_owned(),
            })
        };
        if !self.cp.id.is_empty() {
            if let Err(why) = check_cp_id(&self.cp.id) {
                return invalid("cp.id", &why);
            }
        }
        if !self.driver.id.is_empty() {
            if let Err(why) = check_driver_id(&self.driver.id) {
                return invalid("driver.id", &why);
            }
        }
        // The instance name is a Kafka member id and shows on the console: the id rule.
        if let Err(why) = check_cp_id(&self.central.instance) {
            return invalid(
                "central.instance",
                &why.replacen("a CP id", "an instance name", 1),
            );
        }
        if matches!(self.central.session_timeout, SessionTimeout::Fixed(d) if d < Duration::from_secs(1))
        {
            return invalid("central.session_timeout", "must be 1s or more");
        }
        if !(1..=crate::domain::MAX_EMBEDDED_BROKERS).contains(&self.demo.brokers) {
            return invalid("demo.brokers", "the embedded cluster runs 1 to 5 brokers");
        }
        if self.demo.centrals == 0 {
            return invalid("demo.centrals", "a network has 1 central or more");
        }
        if self.central.max_links == 0 || self.central.max_links_per_address == 0 {
            return invalid("central.max_links", "link limits must be 1 or more");
        }
        if !(self.engine.power_kw.is_finite() && self.engine.power_kw > 0.0) {
            return invalid("engine.power_kw", "must be above zero");
        }
        if self.kafka.partitions < 1 || self.kafka.replication < 1 {
            return invalid(
                "kafka.partitions",
                "partitions and replication must be 1 or more",
            );
        }
        if self.engine.report_period.is_zero() || self.monitor.health_period.is_zero() {
            return invalid("engine.report_period", "periods must be above zero");
        }
        if self
            .control
            .given_token()
            .is_some_and(|t| t.chars().count() < MIN_CONTROL_TOKEN_LEN || t.trim() != t)
        {
            return invalid(
                "control.token",
                "must have at least 16 characters, and no spaces around them",
            );
        }
        if self.central.login_lockout.is_zero() {
            return invalid("central.login_lockout", "must be above zero");
        }
        self.kafka.validate_security()?;
        self.tls.validate()
    }

    /// Fails with a clear message when a role needs an id that was not given.
    pub fn require_cp_id(&self) -> Result<&str, SettingsError> {
        require_id(&self.cp.id, "cp.id", "--id or EVCHARGE_CP__ID")
    }

    /// The engine's data directory.
    pub fn engine_data(&self) -> PathBuf {
        self.engine
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("evcharge-data/engine-{}", self.cp.id)))
    }

    pub fn require_driver_id(&self) -> Result<&str, SettingsError> {
        require_id(&self.driver.id, "driver.id", "--id or EVCHARGE_DRIVER__ID")
    }
}

fn require_id<'a>(id: &'a str, key: &'static str, how: &str) -> Result<&'a str, SettingsError> {
    if id.trim().is_empty() {
        Err(SettingsError::Invalid {
            key,
            why: format!("an id is required (give it with {how})"),
        })
    } else {
        Ok(id)
    }
}

#[cfg(test)]
mod tests;
