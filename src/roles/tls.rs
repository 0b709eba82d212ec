//! `evcharge tls self-signed`, and the TLS each role takes from its `tls` settings: the
//! certificate its listeners present, and how a monitor reaches the central.

use crate::configuration::Settings;
use crate::link::{Acceptor, Connector};
use crate::tls::Identity;
use crate::web::ServerTls;
use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// The TLS configuration of this process's listeners: `None` (plain text) without
/// `tls.cert`. A certificate or key that cannot be read stops the role here, at start.
pub fn listeners(settings: &Settings) -> anyhow::Result<ServerTls> {
    let (Some(cert), Some(key)) = (&settings.tls.cert, &settings.tls.key) else {
        return Ok(None);
    };
    let identity = Identity {
        cert: cert.clone(),
        key: key.clone(),
    };
    let config = crate::tls::server_config(&identity).context("invalid setting tls.cert")?;
    Ok(Some(config))
}

/// How the central takes a monitor's connection: a TLS handshake when it has a
/// certificate. Says so, with a warning in plain text.
pub fn monitor_port(tls: &ServerTls, address: &str) -> Acceptor {
    match tls {
        Some(config) => Acceptor::tls(config.clone()),
        None => {
            crate::tls::warn_plain_text("the port for monitors", address);
            Acceptor::plain()
        }
    }
}

/// How a monitor reaches the central: over TLS when `tls.ca` is set, trusting that CA and
/// expecting `tls.server_name` (or the central's host) on its certificate.
pub fn central_link(settings: &Settings) -> anyhow::Result<Connector> {
    let central = &settings.monitor.central;
    let Some(ca) = &settings.tls.ca else {
        log::warn!(
            "linking to the central at {central} in plain text: for a one-machine lab only \
             (set tls.ca to link over TLS)"
        );
        return Ok(Connector::plain());
    };
    let config = crate::tls::client_config(ca).context("invalid setting tls.ca")?;
    let name = crate::tls::server_name(central, settings.tls.server_name.as_deref())
        .context("invalid setting tls.server_name")?;
    log::info!(
        "linking to the central at {central} over TLS, expecting a certificate for {}",
        name.to_str()
    );
    Ok(Connector::tls(config, name))
}

/// Writes a self-signed `cert.pem` and its `key.pem` (readable by this user only) into
/// `out`, for `hosts` and this machine's loopback names. Never overwrites a file.
pub fn self_signed(out: &Path, hosts: &[String]) -> anyhow::Result<()> {
    let (cert, key) = crate::tls::self_signed(hosts)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let cert_path = out.join("cert.pem");
    let key_path = out.join("key.pem");
    for path in [&cert_path, &key_path] {
        anyhow::ensure!(
            !path.exists(),
            "{} exists already: remove it first, or choose another --out",
            path.display()
        );
    }
    write_new(&key_path, &key, 0o600)?;
    write_new(&cert_path, &cert, 0o644)?;
    println!(
        "wrote {} and {} (self-signed: for a lab; clients trust it with tls.ca = \"{}\")",
        cert_path.display(),
        key_path.display(),
        cert_path.display()
    );
    Ok(())
}

fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
