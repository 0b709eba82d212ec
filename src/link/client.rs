//! A request/reply client over one framed TCP link (plain or TLS) that reconnects on demand.

use super::frame::{FrameCodec, Packet};
use super::stream::{Connector, LinkStream};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::timeout;
use tokio_util::codec::Framed;

/// What went wrong on a link; every variant means "drop the connection and try again later".
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("i/o error with {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("unexpected answer from {addr}: {what}")]
    Protocol { addr: String, what: String },
}

/// The answer to one request: ACK or NACK, and the reply frame's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub accepted: bool,
    pub fields: Vec<String>,
}

/// A client for one peer, or any of several (`a:5000,b:5000`). Holds at most one
/// connection, opened on the first request and dropped after any error so that the next
/// request reconnects — to the next peer of the list.
pub struct FrameClient {
    peers: Vec<String>,
    /// The peer of the connection, or of the next one.
    current: usize,
    timeout: Duration,
    /// How long an answer may take once the request is sent (at least `timeout`).
    patience: Duration,
    connector: Connector,
    conn: Option<Framed<LinkStream, FrameCodec>>,
}

impl std::fmt::Debug for FrameClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameClient")
            .field("addr", &self.addr())
            .field("connector", &self.connector)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl FrameClient {
    /// A client of `addr`, or of each address of a comma-separated list in turn.
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Self {
        let addr = addr.into();
        let mut peers: Vec<String> = addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if peers.is_empty() {
            peers.push(addr);
        }
        FrameClient {
            peers,
            current: 0,
            timeout,
            patience: timeout,
            connector: Connector::plain(),
            conn: None,
        }
    }

    /// Waits up to `patience` for each answer (connecting and sending still take at most
    /// the timeout): a peer past its capacity answers late, and dropping the link for it
    /// would cost that peer a new link on top.
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience.max(self.timeout);
        self
    }

    /// Connects through `connector` (TLS or not) from the next connection on.
    pub fn set_connector(&mut self, connector: Connector) {
        self.connector = connector;
        self.conn = None;
    }

    pub fn addr(&self) -> &str {
        &self.peers[self.current]
    }

    /// How many peers it may link to.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Drops the connection; the next request goes to the next peer of the list.
    pub fn move_on(&mut self) {
        self.conn = None;
        self.current = (self.current + 1) % self.peers.len();
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Sends one frame and waits for its ACK/NACK and reply frame.
    pub async fn request(&mut self, fields: Vec<String>) -> Result<Reply, LinkError> {
        let result = self.exchange(fields).await;
        if result.is_err() {
            self.move_on();
        }
        result
    }

    async fn exchange(&mut self, fields: Vec<String>) -> Result<Reply, LinkError> {
        let limit = self.timeout;
        let addr = self.addr().to_owned();
        let timed_out = || LinkError::Timeout {
            addr: addr.clone(),
            after: limit,
        };
        if self.conn.is_none() {
            let stream = timeout(limit, self.connector.connect(&addr))
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| LinkError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            self.conn = Some(Framed::new(stream, FrameCodec::default()));
        }
        let conn = self.conn.as_mut().expect("connection was just opened");
        timeout(limit, conn.send(Packet::Frame(fields)))
            .await
            .map_err(|_| timed_out())?
            .map_err(|source| LinkError::Io {
                addr: addr.clone(),
                source,
            })?;
        let patience = self.patience;
        let no_answer = || LinkError::Timeout {
            addr: addr.clone(),
            after: patience,
        };
        let verdict = timeout(patience, next_packet(conn, &addr))
            .await
            .map_err(|_| no_answer())??;
        let accepted = match verdict {
            Packet::Ack => true,
            Packet::Nack => false,
            other => {
                return Err(LinkError::Protocol {
                    addr,
                    what: format!("expected ACK or NACK, got {other:?}"),
                })
            }
        };
        match timeout(patience, next_packet(conn, &addr))
            .await
            .map_err(|_| no_answer())??
        {
            Packet::Frame(fields) => Ok(Reply { accepted, fields }),
            other => Err(LinkError::Protocol {
                addr,
                what: format!("expected a reply frame, got {other:?}"),
            }),
        }
    }
}

/// The next packet from the server; bytes outside frames are no answer and are skipped.
async fn next_packet(
    conn: &mut Framed<LinkStream, FrameCodec>,
    addr: &str,
) -> Result<Packet, LinkError> {
    loop {
        match conn.next().await {
            Some(Ok(Packet::Stray(_))) => {}
            Some(Ok(packet)) => return Ok(packet),
            Some(Err(source)) => {
                return Err(LinkError::Io {
                    addr: addr.to_owned(),
                    source,
                })
            }
            None => {
                return Err(LinkError::Closed {
                    addr: addr.to_owned(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A peer on a real socket that answers each request `late`.
    async fn slow_peer(late: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("bound").to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut conn = Framed::new(tcp, FrameCodec::default());
                    while let Some(Ok(Packet::Frame(_))) = conn.next().await {
                        tokio::time::sleep(late).await;
                        let answered = conn.send(Packet::Ack).await.is_ok()
                            && conn.send(Packet::frame(["STATE", "late"])).await.is_ok();
                        if !answered {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_late_answer_is_waited_for_up_to_the_patience_and_the_link_kept() {
        runtime().block_on(async {
            let addr = slow_peer(Duration::from_millis(600)).await;
            let mut impatient = FrameClient::new(addr.clone(), Duration::from_millis(200));
            let late = impatient.request(vec!["STATUS".into()]).await;
            assert!(matches!(late, Err(LinkError::Timeout { .. })), "{late:?}");
            assert!(
                !impatient.is_connected(),
                "a link without an answer is dropped"
            );

            let mut patient = FrameClient::new(addr, Duration::from_millis(200))
                .with_patience(Duration::from_secs(3));
            for _ in 0..2 {
                let reply = patient
                    .request(vec!["STATUS".into()])
                    .await
                    .expect("answered");
                assert_eq!(reply.fields, ["STATE", "late"]);
                assert!(
                    patient.is_connected(),
                    "the same link carries the next request"
                );
            }
        });
    }
}
