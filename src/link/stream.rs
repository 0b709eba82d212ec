//! The byte stream under a link: plain TCP, or TLS over TCP with the same frames inside.
//! [`Connector`] opens one from the client's side, [`Acceptor`] wraps an accepted one.

use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Anything a link's frames can travel over.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// An open link: TCP, with or without TLS.
pub type LinkStream = Box<dyn Duplex>;

/// How a client reaches its server: plain TCP, or TLS checked against a trusted CA and the
/// name the server's certificate must carry. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls {
            None => f.write_str("Connector(plain)"),
            Some((_, name)) => write!(f, "Connector(tls, {})", name.to_str()),
        }
    }
}

impl Connector {
    pub fn plain() -> Connector {
        Connector { tls: None }
    }

    /// TLS with `config`, expecting a certificate for `server_name`.
    pub fn tls(
        config: Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> Connector {
        Connector {
            tls: Some((config.into(), server_name)),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a stream to `addr`; with TLS, once the handshake has checked the server.
    pub async fn connect(&self, addr: &str) -> io::Result<LinkStream> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => Ok(Box::new(connector.connect(name.clone(), tcp).await?)),
        }
    }
}

/// How a server takes an accepted connection: as is, or after a TLS handshake. Cheap to clone.
#[derive(Clone)]
pub struct Acceptor {
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Acceptor {
    pub fn plain() -> Acceptor {
        Acceptor { tls: None }
    }

    pub fn tls(config: Arc<rustls::ServerConfig>) -> Acceptor {
        Acceptor {
            tls: Some(config.into()),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The accepted `tcp` as a link; with TLS, once the client's handshake succeeded (a
    /// client that does not speak TLS fails here).
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<LinkStream> {
        let _ = tcp.set_nodelay(true);
        let Some(acceptor) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(stream) => Ok(Box::new(stream?)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
            )),
        }
    }
}
