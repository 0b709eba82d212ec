//! TLS for every listener and link that carries a secret: certificates and keys from PEM
//! files, the rustls configurations built from them (the ring provider, TLS 1.2 and 1.3),
//! and a self-signed pair for a lab. Nothing cryptographic is written here: rustls does the
//! protocol, rcgen makes certificates.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The certificate chain and key a process's listeners present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// A server configuration presenting `identity`, without client certificates.
pub fn server_config(identity: &Identity) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = read_certificates(&identity.cert)?;
    let key = PrivateKeyDer::from_pem_file(&identity.key)
        .with_context(|| format!("cannot read a private key from {}", identity.key.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key {} does not go with the certificate {}",
                identity.key.display(),
                identity.cert.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// A client configuration trusting only the certificates of the PEM file `ca` (a CA, or a
/// self-signed certificate itself).
pub fn client_config(ca: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(ca)? {
        roots.add(cert).with_context(|| {
            format!(
                "{} holds a certificate that cannot be trusted",
                ca.display()
            )
        })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name a server's certificate must carry: `name` if given, else the host part of
/// `address` (`host:port`, `[v6]:port` or an address without a port).
pub fn server_name(address: &str, name: Option<&str>) -> anyhow::Result<ServerName<'static>> {
    let host = match name {
        Some(name) => name,
        None => host_of(address),
    };
    ServerName::try_from(host.to_owned())
        .with_context(|| format!("{host:?} cannot be a TLS server name"))
}

fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => address,
    }
}

/// A self-signed certificate and its key, PEM encoded, for a lab: valid for `hosts` (names
/// or IP addresses) and for this machine's loopback names.
pub fn self_signed(hosts: &[String]) -> anyhow::Result<(String, String)> {
    let mut names: Vec<String> = hosts.to_vec();
    for local in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == local) {
            names.push(local.into());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)
        .context("a host name is not valid in a certificate")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "evcharge lab (self-signed)");
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Says, once at start, that a listener serves in plain text.
pub fn warn_plain_text(what: &str, address: &str) {
    log::warn!(
        "{what} listening in plain text on {address}: for a one-machine lab only \
         (set tls.cert and tls.key to serve it over TLS)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address_unless_given() {
        let name = |a, n| server_name(a, n).unwrap().to_str().into_owned();
        assert_eq!(name("127.0.0.1:5000", None), "127.0.0.1");
        assert_eq!(name("[::1]:5000", None), "::1");
        assert_eq!(name("central.example:5000", None), "central.example");
        assert_eq!(name("10.0.0.1:5000", Some("central.lab")), "central.lab");
        assert!(server_name("bad name:1", None).is_err());
    }

    #[test]
    fn a_self_signed_pair_makes_a_server_its_clients_trust() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&["central.lab".into()]).unwrap();
        let identity = Identity {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&identity.cert, cert).unwrap();
        std::fs::write(&identity.key, key).unwrap();
        server_config(&identity).unwrap();
        client_config(&identity.cert).unwrap();
        // A key file holding a certificate is refused, naming the file.
        let wrong = Identity {
            key: identity.cert.clone(),
            ..identity
        };
        let err = format!("{:#}", server_config(&wrong).unwrap_err());
        assert!(err.contains("cert.pem"), "{err}");
    }
}
