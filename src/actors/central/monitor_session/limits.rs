//! The bounds of the monitor port: how many links may be open (overall and per address),
//! how long a link may stay unauthenticated, how many bad requests one link may send, and
//! how many log lines all of that may write.

use crate::actors::line_rate::LineRate;
use crate::configuration::CentralSettings;
use crate::link::frame::{FrameCodec, Packet};
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Encoder;

/// Links open now, overall and per address, against the configured maximums.
#[derive(Debug)]
pub struct LinkLimits {
    max_links: usize,
    max_per_address: usize,
    auth_timeout: Duration,
    silence_window: Duration,
    open: Mutex<OpenLinks>,
}

#[derive(Debug, Default)]
struct OpenLinks {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl LinkLimits {
    pub fn new(settings: &CentralSettings) -> Arc<LinkLimits> {
        Arc::new(LinkLimits {
            max_links: settings.max_links,
            max_per_address: settings.max_links_per_address,
            auth_timeout: settings.auth_timeout,
            silence_window: settings.silence_window,
            open: Mutex::new(OpenLinks::default()),
        })
    }

    /// A slot for one more link from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<LinkSlot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_links {
            return Err(Refused(format!(
                "the central has its maximum of {} monitor links",
                self.max_links
            )));
        }
        let from_ip = open.per_address.entry(ip).or_default();
        if *from_ip >= self.max_per_address {
            return Err(Refused(format!(
                "{ip} already has its maximum of {} monitor links",
                self.max_per_address
            )));
        }
        *from_ip += 1;
        open.total += 1;
        Ok(LinkSlot {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// Links open now.
    pub fn open_links(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// One open link's place within the limits, given back when dropped.
#[derive(Debug)]
pub struct LinkSlot {
    limits: Arc<LinkLimits>,
    ip: IpAddr,
}

impl LinkSlot {
    pub fn auth_timeout(&self) -> Duration {
        self.limits.auth_timeout
    }

    /// How long an authenticated link may go without a report before it must AUTH again.
    pub fn silence_window(&self) -> Duration {
        self.limits.silence_window
    }
}

impl Drop for LinkSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_address.remove(&self.ip);
            }
        }
    }
}

/// A connection turned away at the door, and why.
#[derive(Debug)]
pub struct Refused(String);

impl Refused {
    /// Tells the peer why in one reply, if it can take it at once, then hangs up. A peer of
    /// a TLS port is not told in plain text: it just sees the connection close.
    pub fn tell(self, stream: TcpStream, tls: bool) {
        if logs_allowed() {
            log::warn!(
                "monitor connection from {} refused: {}",
                stream
                    .peer_addr()
                    .map_or_else(|_| "?".into(), |a| a.to_string()),
                self.0
            );
        }
        if tls {
            return;
        }
        let mut bytes = BytesMut::new();
        for packet in [
            Packet::Nack,
            Packet::frame(["REFUSED".to_owned(), self.0.replace('#', " ")]),
        ] {
            let _ = FrameCodec::default().encode(packet, &mut bytes);
        }
        // Never waits: a peer that does not read simply misses the reason.
        let _ = stream.try_write(&bytes);
    }
}

/// Bad requests one link may send within a minute before it is closed, and how many of
/// them are logged.
const BAD_REQUESTS_PER_MINUTE: u32 = 20;
const LOGGED_PER_LINK: u32 = 3;

/// One link's bad requests (corrupt frames, malformed or out-of-order requests).
#[derive(Debug)]
pub struct ErrorBudget {
    window_start: Instant,
    in_window: u32,
    logged: u32,
}

impl Default for ErrorBudget {
    fn default() -> Self {
        ErrorBudget {
            window_start: Instant::now(),
            in_window: 0,
            logged: 0,
        }
    }
}

impl ErrorBudget {
    /// Counts one bad request; true when the link has now spent its budget.
    pub fn spend(&mut self) -> bool {
        if self.window_start.elapsed() > Duration::from_secs(60) {
            self.window_start = Instant::now();
            self.in_window = 0;
        }
        self.in_window += 1;
        self.in_window > BAD_REQUESTS_PER_MINUTE
    }

    /// Whether the next bad request should be logged: the first few of each link, within
    /// a cap for the whole port, so that a flood writes a bounded number of lines.
    pub fn worth_logging(&mut self) -> bool {
        self.logged += 1;
        self.logged <= LOGGED_PER_LINK && logs_allowed()
    }
}

/// At most this many lines a second about bad monitor links, whatever their number.
const LINES_PER_SECOND: u32 = 20;

pub(super) fn logs_allowed() -> bool {
    static LINES: LineRate = LineRate::new(LINES_PER_SECOND);
    LINES.allows()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_links: usize, max_links_per_address: usize) -> Arc<LinkLimits> {
        LinkLimits::new(&CentralSettings {
            max_links,
            max_links_per_address,
            ..CentralSettings::default()
        })
    }

    #[test]
    fn links_are_limited_overall_and_per_address_and_given_back() {
        let limits = limits(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_err(), "a third link from one address");
        let _third = limits.admit(b).unwrap();
        assert!(limits.admit(b).is_err(), "a fourth link overall");
        drop(first);
        assert_eq!(limits.open_links(), 2);
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn a_link_that_keeps_sending_bad_requests_spends_its_budget() {
        let mut budget = ErrorBudget::default();
        let spent = (0..100).position(|_| budget.spend());
        assert_eq!(spent, Some(BAD_REQUESTS_PER_MINUTE as usize));
        let logged = (0..100).filter(|_| budget.worth_logging()).count();
        assert!(logged <= LOGGED_PER_LINK as usize);
    }
}
