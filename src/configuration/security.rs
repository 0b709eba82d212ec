//! The settings that protect what travels: TLS for a process's listeners and for the
//! monitor's link to the central, Kafka's security protocol and SASL credentials, and the
//! secrets of CPs and drivers.

use super::{KafkaSettings, Settings, SettingsError};
use crate::messages::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// TLS of one process. With `cert` and `key`, every listener of the process that carries a
/// secret — the console and API, the driver dashboard, the monitor page, the central's port
/// for monitors — serves TLS only; without them it serves plain text, with a warning.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TlsSettings {
    /// PEM file of the certificate chain this process's listeners present.
    pub cert: Option<PathBuf>,
    /// PEM file of the private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM file of the CA (or self-signed certificate) a monitor trusts for the central;
    /// when set, the monitor links to the central over TLS.
    pub ca: Option<PathBuf>,
    /// The name the central's certificate must carry; the host of `monitor.central` if unset.
    pub server_name: Option<String>,
}

/// `security.protocol` of every Kafka client.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication: for a one-machine lab only.
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The value librdkafka takes.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// `sasl.mechanism` of every Kafka client.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The value librdkafka takes.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl Settings {
    /// The CP's secret, from `cp.secret` or the file `cp.secret_file`, or a clear error.
    pub fn require_cp_secret(&self) -> Result<Secret, SettingsError> {
        let why = "the CP's secret is required (give the file `evcharge cp-register` wrote \
                   with --secret-file FILE or EVCHARGE_CP__SECRET_FILE, or the secret itself \
                   with EVCHARGE_CP__SECRET)";
        read_secret(
            &self.cp.secret,
            &self.cp.secret_file,
            ("cp.secret", "cp.secret_file"),
            why,
        )
    }

    /// The driver's secret, from `driver.secret` or the file `driver.secret_file`, or a
    /// clear error.
    pub fn require_driver_secret(&self) -> Result<Secret, SettingsError> {
        let why = "the driver's secret is required (give the file `evcharge driver-register` \
                   wrote with --secret-file FILE or EVCHARGE_DRIVER__SECRET_FILE, or the secret \
                   itself with EVCHARGE_DRIVER__SECRET)";
        read_secret(
            &self.driver.secret,
            &self.driver.secret_file,
            ("driver.secret", "driver.secret_file"),
            why,
        )
    }
}

/// A secret given itself, or in a file (its first line), or `why` it is missing.
fn read_secret(
    given: &Option<Secret>,
    file: &Option<PathBuf>,
    (key, file_key): (&'static str, &'static str),
    why: &str,
) -> Result<Secret, SettingsError> {
    if let Some(secret) = given {
        return Ok(secret.clone());
    }
    let path = file.as_ref().ok_or_else(|| SettingsError::Invalid {
        key,
        why: why.into(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Invalid {
        key: file_key,
        why: format!("cannot read {}: {e}", path.display()),
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SettingsError::Invalid {
            key: file_key,
            why: format!("{} is empty", path.display()),
        });
    }
    Ok(Secret::new(secret))
}

fn invalid(key: &'static str, why: impl Into<String>) -> Result<(), SettingsError> {
    Err(SettingsError::Invalid {
        key,
        why: why.into(),
    })
}

impl TlsSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        match (&self.cert, &self.key) {
            (Some(_), None) => invalid("tls.key", "tls.cert is set: give its key too"),
            (None, Some(_)) => invalid("tls.cert", "tls.key is set: give its certificate too"),
            _ => Ok(()),
        }
    }
}

impl KafkaSettings {
    /// Reads `sasl_password_file` into `sasl_password`, so that the password never has to
    /// be written in the configuration file or on a command line.
    pub(super) fn read_password_file(&mut self) -> Result<(), SettingsError> {
        let Some(path) = &self.sasl_password_file else {
            return Ok(());
        };
        if self.sasl_password.is_some() {
            return invalid(
                "kafka.sasl_password_file",
                "kafka.sasl_password is set too: give the password one way only",
            );
        }
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Invalid {
            key: "kafka.sasl_password_file",
            why: format!("cannot read {}: {e}", path.display()),
        })?;
        self.sasl_password = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
        Ok(())
    }

    pub(super) fn validate_security(&self) -> Result<(), SettingsError> {
        let protocol = self.security_protocol;
        if protocol.uses_sasl() {
            if self.sasl_mechanism.is_none() {
                return invalid(
                    "kafka.sasl_mechanism",
                    "SASL needs a mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                );
            }
            if self.sasl_username.as_deref().is_none_or(str::is_empty) {
                return invalid("kafka.sasl_username", "SASL needs a user name");
            }
            if self.sasl_password.is_none() {
                return invalid(
                    "kafka.sasl_password",
                    "SASL needs a password: EVCHARGE_KAFKA__SASL_PASSWORD or kafka.sasl_password_file",
                );
            }
        } else if self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some()
        {
            return invalid(
                "kafka.security_protocol",
                format!(
                    "SASL credentials are given but the protocol is {}: \
                     use sasl_ssl (or sasl_plaintext)",
                    protocol.as_str()
                ),
            );
        }
        if self.ssl_ca_location.is_some() && !protocol.uses_tls() {
            return invalid(
                "kafka.security_protocol",
                format!(
                    "kafka.ssl_ca_location is given but the protocol is {}: use ssl or sasl_ssl",
                    protocol.as_str()
                ),
            );
        }
        Ok(())
    }
}
