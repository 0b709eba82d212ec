//! The monitor port is open to anyone: links are limited overall and per address, a link
//! that does not authenticate in time is dropped, and neither a flood of corrupt bytes nor
//! a peer that never reads its replies can grow the central's memory or its log.

use super::support::link::{answer, ask, closed_by_peer, connect, frame, ACK, NACK};
use super::support::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// The central's resident memory, in MiB.
fn resident_mib(net: &Network) -> u64 {
    let pid = net.central.as_ref().unwrap().pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

fn central_log_lines(net: &Network) -> usize {
    net.central.as_ref().unwrap().stderr_text().lines().count()
}

/// Writes `bytes` from another thread, as a peer that never reads would; ends when the
/// central closes the link (the write fails) or all was written.
fn flood(mut link: TcpStream, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for chunk in bytes.chunks(64 * 1024) {
            if link.write_all(chunk).is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_link_that_does_not_authenticate_in_time_is_dropped() {
    let mut net = Network::start_with_env(
        BrokerKind::Embedded,
        &[],
        &[("EVCHARGE_CENTRAL__AUTH_TIMEOUT", "1s")],
    );
    let mut idle = connect(net.central_tcp);
    let (verdict, text) = answer(&mut idle);
    assert_eq!(verdict, NACK);
    assert!(text.starts_with("ERR#no AUTH within 1s"), "{text}");
    wait_for("the idle link to be closed", DEADLINE, || {
        closed_by_peer(&mut idle).then_some(())
    });
    // A real CP authenticates in time and stays.
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");
}

#[test]
fn links_are_limited_per_address_and_the_limit_is_given_back() {
    let mut net = Network::start_with_env(
        BrokerKind::Embedded,
        &[],
        &[
            ("EVCHARGE_CENTRAL__MAX_LINKS_PER_ADDRESS", "10"),
            ("EVCHARGE_CENTRAL__AUTH_TIMEOUT", "10m"),
        ],
    );
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");
    // CP001's monitor holds one of this address's ten links.
    let idle: Vec<TcpStream> = (0..9).map(|_| connect(net.central_tcp)).collect();
    let mut refused = connect(net.central_tcp);
    let (verdict, text) = answer(&mut refused);
    assert_eq!(verdict, NACK);
    assert_eq!(
        text,
        "REFUSED#127.0.0.1 already has its maximum of 10 monitor links"
    );
    assert!(closed_by_peer(&mut refused));
    // The CP already in goes on; once the idle links close, a new one is let in.
    net.wait_state("CP001", "available");
    drop(idle);
    wait_for("a link to be let in again", DEADLINE, || {
        let mut link = connect(net.central_tcp);
        link.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let (verdict, _) = ask(&mut link, "STATUS#CP001#OK");
        // Let in: answered as a link that has not authenticated yet.
        (verdict == NACK && !closed_by_peer(&mut link)).then_some(())
    });
}

#[test]
fn corrupt_floods_and_peers_that_never_read_are_cut_off() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");
    let lines_before = central_log_lines(&net);
    let memory_before = resident_mib(&net);

    // 20 MB of STX bytes, never reading the answers: one frame too long, answered once,
    // then dropped as it comes until the link is closed for want of an AUTH, having cost a
    // few log lines.
    let mut link = connect(net.central_tcp);
    link.set_read_timeout(None).unwrap();
    let writer = flood(link.try_clone().unwrap(), vec![0x02; 20 << 20]);
    wait_for("the flooding link to be closed", DEADLINE, || {
        closed_by_peer(&mut link).then_some(())
    });
    writer.join().unwrap();

    // An authenticated peer that sends reports without ever reading the answers: once its
    // replies back up, the link is closed.
    let secret = std::fs::read_to_string(net.register("CP002", 0.30)).unwrap();
    let mut greedy = connect(net.central_tcp);
    assert_eq!(ask(&mut greedy, &format!("AUTH#CP002#{secret}")).0, ACK);
    let reports: Vec<u8> = frame("STATUS#CP002#OK").repeat(400_000);
    let writer = flood(greedy.try_clone().unwrap(), reports);
    wait_for(
        "the central to close a link that does not read",
        DEADLINE * 2,
        || {
            net.central
                .as_ref()
                .unwrap()
                .stderr_text()
                .contains("is not reading its replies: closing")
                .then_some(())
        },
    );
    writer.join().unwrap();

    let written = central_log_lines(&net) - lines_before;
    assert!(written < 50, "the attacks wrote {written} log lines");
    let grown = resident_mib(&net).saturating_sub(memory_before);
    assert!(grown < 200, "the central grew by {grown} MiB");
    // The network still serves: the real CP goes on reporting.
    net.wait_state("CP001", "available");
}
