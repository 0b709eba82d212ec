//! The TCP links keep their contract (docs/PROTOCOL.md § "TCP links"), spoken to as an outside
//! monitor would, over real sockets to the real binary: every frame answered exactly once and
//! in order, bytes outside frames never; a link speaks for one CP; a silent link must AUTH
//! again; a bad id is refused with the rule it breaks.

mod support;

use std::io::Write;
use std::net::TcpStream;
use support::link::{answer, ask, closed_by_peer, connect, frame, ACK, ETX, NACK, STX};
use support::*;

const CENTRAL_TAKES: &str = "the central takes AUTH and STATUS";
const ENGINE_TAKES: &str = "the engine takes HEALTH";

/// Asks `PROBE<n>`, an unknown command: its answer names it, so it shows that every answer
/// before it belonged to an earlier frame.
fn probe(link: &mut TcpStream, n: u32, takes: &str) {
    assert_eq!(
        ask(link, &format!("PROBE{n}")),
        (NACK, format!("ERR#unknown command \"PROBE{n}\": {takes}")),
        "the answer to PROBE{n}"
    );
}

/// Every kind of bad frame, and bytes outside frames, on one link: each bad frame gets one
/// answer, the stray bytes none, and the link stays up.
fn answers_each_frame_once(link: &mut TcpStream, takes: &str) {
    link.write_all(&frame("AUTH#CP\u{2}1#x")).unwrap();
    assert_eq!(answer(link), (NACK, "ERR#STX inside a frame".into()));
    probe(link, 1, takes);

    // A frame cut short, and a whole one after it: one frame with an STX inside.
    link.write_all(&[STX, b'A', b'U']).unwrap();
    link.write_all(&frame("PROBE")).unwrap();
    assert_eq!(answer(link), (NACK, "ERR#STX inside a frame".into()));
    probe(link, 2, takes);

    // Far too long, STX bytes inside included: one answer, however long.
    link.write_all(&frame(&"\u{2}x".repeat(2000))).unwrap();
    assert_eq!(
        answer(link),
        (NACK, "ERR#frame longer than 1024 bytes".into())
    );
    probe(link, 3, takes);

    let mut bad_lrc = frame("PROBE");
    *bad_lrc.last_mut().unwrap() ^= 0x55;
    link.write_all(&bad_lrc).unwrap();
    let (verdict, text) = answer(link);
    assert_eq!(verdict, NACK);
    assert!(text.starts_with("ERR#bad LRC: got 0x"), "{text}");
    probe(link, 4, takes);

    link.write_all(&[STX, 0xff, 0xfe, ETX, 0x01]).unwrap();
    assert_eq!(answer(link), (NACK, "ERR#frame data is not UTF-8".into()));
    probe(link, 5, takes);

    // Bytes outside any frame, a peer's ACK and NACK among them: no answer, so the next
    // answer is the probe's.
    link.write_all(b"\r\nhello\x06\x15\x03").unwrap();
    probe(link, 6, takes);
}

#[test]
fn every_bad_frame_is_answered_once_and_bytes_outside_frames_never() {
    let mut net = Network::start(BrokerKind::Embedded);
    let engine = net.start_engine("CP001", 0, &[]);
    let mut central = connect(net.central_tcp);
    answers_each_frame_once(&mut central, CENTRAL_TAKES);
    let mut engine = connect(net.engine_port(engine));
    answers_each_frame_once(&mut engine, ENGINE_TAKES);
    assert_eq!(
        ask(&mut engine, "HEALTH#CP001#now"),
        (NACK, "ERR#HEALTH takes the CP id: 1 field, got 2".into())
    );
    assert_eq!(
        ask(&mut engine, "HEALTH#CP002"),
        (NACK, "ERR#this engine is CP001, not CP002".into())
    );
}

#[test]
fn past_its_budget_a_link_gets_one_last_answer_and_is_closed() {
    let net = Network::start(BrokerKind::Embedded);
    let mut link = connect(net.central_tcp);
    // 21 bad frames at once: 20 within the budget, each answered with its reason.
    link.write_all(&frame("AUTH#\u{2}").repeat(21)).unwrap();
    for n in 1..=20 {
        assert_eq!(
            answer(&mut link),
            (NACK, "ERR#STX inside a frame".into()),
            "bad frame {n}"
        );
    }
    assert_eq!(
        answer(&mut link),
        (NACK, "ERR#too many bad requests: closing".into())
    );
    assert!(closed_by_peer(&mut link), "the link stayed open");
}

#[test]
fn bad_ids_are_refused_with_the_rule_and_are_no_failed_auth() {
    let mut net = Network::start(BrokerKind::Embedded);
    let secret = std::fs::read_to_string(net.register("CP001", 0.3)).unwrap();
    let mut link = connect(net.central_tcp);
    let long = "x".repeat(1000);
    let rule = "ERR#a CP id has 1 to 32 letters, digits, '-', '_' or '.'";
    let bad_ids = [
        ("CP 1", r#""CP 1""#.to_string()),
        ("CP\n1", r#""CP\n1""#.to_string()),
        ("\u{1b}[31mCP1", r#""\u{1b}[31mCP1""#.to_string()),
        (long.as_str(), format!("\"{}…\"", "x".repeat(40))),
        ("", r#""""#.to_string()),
        ("CP1/../CP2", r#""CP1/../CP2""#.to_string()),
    ];
    for (id, shown) in &bad_ids {
        assert_eq!(
            ask(&mut link, &format!("AUTH#{id}#x")),
            (NACK, format!("{rule} (got {shown})")),
            "AUTH for {id:?}"
        );
    }
    // A '#' always separates fields: this is an AUTH of three.
    assert_eq!(
        ask(&mut link, "AUTH#PX#D28#secret"),
        (
            NACK,
            "ERR#AUTH takes the CP id and its secret: 2 fields, got 3".into()
        )
    );
    // Seven malformed AUTHs from this address, none of them a failed AUTH: five failed
    // ones would have locked the address out.
    assert_eq!(
        ask(&mut link, &format!("AUTH#CP001#{secret}")),
        (ACK, "WELCOME#CP001#Street of CP001#0.3".into())
    );
    assert!(net
        .audit()
        .iter()
        .all(|e| !e["what"].as_str().unwrap_or_default().contains("refused")));
}

#[test]
fn a_link_speaks_for_one_cp() {
    let mut net = Network::start(BrokerKind::Embedded);
    let first = std::fs::read_to_string(net.register("CP001", 0.3)).unwrap();
    let second = std::fs::read_to_string(net.register("CP002", 0.3)).unwrap();
    let mut link = connect(net.central_tcp);
    assert_eq!(
        ask(&mut link, &format!("AUTH#CP001#{first}")).0,
        ACK,
        "the first AUTH"
    );
    // The right secret for another CP does not move the link.
    assert_eq!(
        ask(&mut link, &format!("AUTH#CP002#{second}")),
        (
            NACK,
            "ERR#this link speaks for CP001: one CP per link, open another link for CP002".into()
        )
    );
    assert_eq!(
        ask(&mut link, "STATUS#CP002#KO#forged"),
        (NACK, "ERR#this link speaks for CP001, not \"CP002\"".into())
    );
    let (verdict, text) = ask(&mut link, "STATUS#CP001#OK");
    assert_eq!(verdict, ACK);
    assert!(text.starts_with("STATE#CP001#"), "{text}");
    // Its own CP, again: checked again and welcomed.
    assert_eq!(
        ask(&mut link, &format!("AUTH#CP001#{first}")).0,
        ACK,
        "AUTH again for the link's own CP"
    );
    assert_eq!(net.cp("CP002").unwrap()["state"], "disconnected");
    let mut other = connect(net.central_tcp);
    assert_eq!(
        ask(&mut other, &format!("AUTH#CP002#{second}")),
        (ACK, "WELCOME#CP002#Street of CP002#0.3".into())
    );
}

/// Central timers short enough for a test to see them run out.
const SHORT_TIMERS: [(&str, &str); 2] = [
    ("EVCHARGE_CENTRAL__SILENCE_WINDOW", "1s"),
    ("EVCHARGE_CENTRAL__AUTH_TIMEOUT", "1s"),
];

#[test]
fn a_silent_link_must_auth_again() {
    let mut net = Network::start_with_env(BrokerKind::Embedded, &[], &SHORT_TIMERS);
    let secret = std::fs::read_to_string(net.register("CP001", 0.3)).unwrap();
    let mut link = connect(net.central_tcp);
    assert_eq!(ask(&mut link, &format!("AUTH#CP001#{secret}")).0, ACK);
    assert_eq!(ask(&mut link, "STATUS#CP001#OK").0, ACK);
    let central = net.central.as_ref().unwrap();
    wait_for(
        "the central to find CP001's monitor silent",
        DEADLINE,
        || {
            central
                .stderr_text()
                .contains("CP001: monitor silent for more than 1s")
                .then_some(())
        },
    );
    assert_eq!(
        ask(&mut link, "STATUS#CP001#OK"),
        (NACK, "ERR#silent for more than 1s: send AUTH again".into())
    );
    assert_eq!(
        ask(&mut link, "STATUS#CP001#OK"),
        (NACK, "ERR#not authenticated: send AUTH first".into())
    );
    net.wait_state("CP001", "disconnected");
    assert_eq!(ask(&mut link, &format!("AUTH#CP001#{secret}")).0, ACK);
    let (verdict, text) = ask(&mut link, "STATUS#CP001#OK");
    assert_eq!(verdict, ACK, "{text}");

    // Unframed text is bytes outside any frame: no answer, until the link is closed for
    // want of an AUTH, saying what it ignored.
    let mut unframed = connect(net.central_tcp);
    unframed.write_all(b"AUTH#CP001#x\r\n").unwrap();
    assert_eq!(
        answer(&mut unframed),
        (
            NACK,
            "ERR#no AUTH within 1s: closing (14 bytes outside any frame ignored)".into()
        )
    );
    assert!(closed_by_peer(&mut unframed), "the link stayed open");
}

#[test]
fn a_monitor_told_to_auth_again_does_so_at_once() {
    let mut net = Network::start_with_env(BrokerKind::Embedded, &[], &SHORT_TIMERS);
    let engine = net.start_engine("CP001", 0, &[]);
    let port = net.engine_port(engine);
    // Reporting less often than the central's window: every report finds its link silent.
    let config = net.write_file(
        "slow-monitor.toml",
        "[monitor]\nhealth_period = \"1500ms\"\n",
    );
    let monitor = net.start_monitor("CP001", port, 0.3, &["--config", &config]);
    let central = net.central.as_ref().unwrap();
    wait_for("the link to be found silent twice", DEADLINE, || {
        let text = central.stderr_text();
        (text
            .matches("CP001: monitor silent for more than 1s")
            .count()
            >= 2)
            .then_some(())
    });
    net.wait_state("CP001", "available");
    let log = net.cps[monitor].stderr_text();
    assert!(
        !log.contains("refused"),
        "the monitor took 'send AUTH again' for a refusal:\n{log}"
    );
}
