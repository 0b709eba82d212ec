//! The central's settings: where it listens and keeps its records, its timers and limits,
//! and how it shares the network with the other centrals.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CentralSettings {
    /// This instance's name among the centrals of one network: unique to each, and kept
    /// across its restarts (it is its static member id in the consumer group).
    pub instance: String,
    /// An instance unheard of this long by the consumer group is out: its CPs go to the
    /// others. Shorter adopts sooner; too short, and a busy instance is taken for dead.
    pub session_timeout: SessionTimeout,
    /// The file holding the key that seals what the centrals write on their own topics;
    /// every central of one network needs the same. Absent: `cluster-key` in `data`,
    /// made on first start.
    pub cluster_key_file: Option<PathBuf>,
    /// TCP address for monitors (authentication and status).
    pub listen: String,
    /// HTTP address of the API and console.
    pub http: String,
    /// Directory of the central's database.
    pub data: PathBuf,
    /// A CP whose monitor stays silent this long is disconnected.
    #[serde(with = "humantime_serde")]
    pub silence_window: Duration,
    /// A reservation never plugged in is released after this long.
    #[serde(with = "humantime_serde")]
    pub reservation_expiry: Duration,
    /// A driver or engine instance unheard of for this long no longer holds its id.
    #[serde(with = "humantime_serde")]
    pub liveness: Duration,
    /// A supply the central asked to stop that its engine has not ended this long after is
    /// closed with the last figures reported: it ends whatever the engine does.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// Monitor links open at most at once, and at most from one address.
    pub max_links: usize,
    pub max_links_per_address: usize,
    /// A monitor link that has not authenticated this long after connecting is closed.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// After 5 failed monitor AUTHs for one CP id or from one address, AUTH is refused this
    /// long; twice as long after each further failure, up to 15 minutes.
    #[serde(with = "humantime_serde")]
    pub auth_lockout: Duration,
    /// After 5 wrong passwords for one operator or driver, or from one address, logins are
    /// refused this long; twice as long after each further wrong one, up to 15 minutes.
    #[serde(with = "humantime_serde")]
    pub login_lockout: Duration,
}

impl Default for CentralSettings {
    fn default() -> Self {
        CentralSettings {
            instance: "central-1".into(),
            session_timeout: SessionTimeout::Auto,
            cluster_key_file: None,
            listen: "0.0.0.0:5000".into(),
            http: "0.0.0.0:8002".into(),
            data: PathBuf::from("evcharge-data/central"),
            silence_window: Duration::from_secs(3),
            reservation_expiry: Duration::from_secs(30),
            liveness: Duration::from_secs(6),
            stop_timeout: Duration::from_secs(5),
            max_links: 20_000,
            max_links_per_address: 1_000,
            auth_timeout: Duration::from_secs(5),
            auth_lockout: Duration::from_secs(1),
            login_lockout: Duration::from_secs(1),
        }
    }
}

/// The consumer group's assignment strategy for the centrals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionAssignment {
    CooperativeSticky,
    Range,
}

impl PartitionAssignment {
    /// librdkafka's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionAssignment::CooperativeSticky => "cooperative-sticky",
            PartitionAssignment::Range => "range",
        }
    }
}

/// How long a central unheard of by its consumer group stays a member, as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimeout {
    /// The shortest the broker allows (its `group.min.session.timeout.ms`), and
    /// [`SessionTimeout::FLOOR`] at least: failover as fast as the broker lets it be.
    Auto,
    Fixed(Duration),
}

impl SessionTimeout {
    /// Six heartbeats of 500 ms: a central must miss all of them to be taken for dead.
    pub const FLOOR: Duration = Duration::from_secs(3);

    /// The session to ask for, given the shortest the broker says it takes (`None`: it
    /// does not say, as the embedded broker and tansu do not).
    pub fn choose(self, broker_minimum: Option<Duration>) -> Duration {
        match self {
            SessionTimeout::Fixed(session) => session,
            SessionTimeout::Auto => broker_minimum.map_or(Self::FLOOR, |min| min.max(Self::FLOOR)),
        }
    }
}

impl std::fmt::Display for SessionTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionTimeout::Auto => f.write_str("auto"),
            SessionTimeout::Fixed(session) => {
                write!(f, "{}", humantime::format_duration(*session))
            }
        }
    }
}

impl Serialize for SessionTimeout {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionTimeout {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim() == "auto" {
            return Ok(SessionTimeout::Auto);
        }
        humantime::parse_duration(text.trim())
            .map(SessionTimeout::Fixed)
            .map_err(|e| serde::de::Error::custom(format!("{e}: give a duration or \"auto\"")))
    }
}
