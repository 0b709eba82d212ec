//! Ports free on loopback.
//!
//! Racy by nature: a port is free when looked at and released at once, so another process
//! may take it before ours binds it. Where a listener can be handed over instead (bound to
//! port 0 by the one that serves on it), prefer that; these are for a child process that
//! must be told its address on the command line.

use anyhow::Context;
use std::net::TcpListener;

/// One port free on 127.0.0.1 right now.
pub fn free_port() -> anyhow::Result<u16> {
    let [port] = free_ports()?;
    Ok(port)
}

/// `N` different ports free on 127.0.0.1 right now.
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    // Held together, so that they differ; released just before the processes bind them.
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find a free port on 127.0.0.1")?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_found_together_differ() {
        let ports: [u16; 4] = free_ports().unwrap();
        let mut sorted = ports.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "{ports:?}");
        assert!(ports.iter().all(|p| *p != 0));
        assert_ne!(free_port().unwrap(), 0);
    }
}
