//! Bad input never hurts (SPEC §11): malformed records are set aside on the dead-letter topic
//! with the reason while good ones keep flowing; corrupt frames get a NACK on a link that
//! stays up; bad HTTP gets a 4xx with a message.

mod support;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::io::Write;
use std::time::Duration;
use support::link::{answer, connect, frame, ACK, NACK};
use support::*;

#[test]
fn corrupt_frames_get_a_nack_and_the_link_stays_up() {
    let mut net = Network::start(BrokerKind::Embedded);
    let engine = net.start_engine("CP001", 0, &[]);
    let port = net.engine_port(engine);

    // The engine's health socket.
    let mut engine = connect(port);
    let mut bad = frame("HEALTH#CP001");
    *bad.last_mut().unwrap() ^= 0x55;
    engine.write_all(&bad).unwrap();
    let (verdict, text) = answer(&mut engine);
    assert_eq!(verdict, NACK);
    assert!(text.starts_with("ERR#bad LRC"), "{text}");
    // The engine answers OK on the same link (whether the central's commands reach it yet is
    // for the central to hear on the bus).
    wait_for("the engine to answer OK", DEADLINE, || {
        engine.write_all(&frame("HEALTH#CP001")).unwrap();
        let (verdict, text) = answer(&mut engine);
        assert_eq!(verdict, ACK);
        (text == "OK#CP001").then_some(())
    });
    engine.write_all(&frame("HEALTH#CP999")).unwrap();
    assert_eq!(answer(&mut engine).0, NACK);

    // The central's monitor socket.
    let mut central = connect(net.central_tcp);
    // Bytes outside any frame get no answer: the next answer is the next frame's.
    central.write_all(b"\xff\xfegarbage").unwrap();
    central.write_all(&frame("STATUS#CP001#OK")).unwrap();
    let (verdict, text) = answer(&mut central);
    assert_eq!(verdict, NACK);
    assert!(text.contains("not authenticated"), "{text}");
    central
        .write_all(&frame("AUTH#CP001#Somewhere#0.3"))
        .unwrap();
    assert_eq!(answer(&mut central).0, NACK);
    let secret = std::fs::read_to_string(net.register("CP001", 0.3)).unwrap();
    // Until the central runs CP001 (its partition given, restored), it says ELSEWHERE, as
    // the protocol lets it: AUTH again, as a monitor does.
    let welcome = wait_for("the central to take CP001's AUTH", DEADLINE, || {
        central
            .write_all(&frame(&format!("AUTH#CP001#{secret}")))
            .unwrap();
        let (verdict, text) = answer(&mut central);
        if verdict == NACK {
            assert!(text.starts_with("ELSEWHERE#"), "{text}");
            std::thread::sleep(Duration::from_millis(200));
            return None;
        }
        Some((verdict, text))
    });
    assert_eq!(welcome, (ACK, "WELCOME#CP001#Street of CP001#0.3".into()));
    // Starting until the central hears the engine on the bus, then available.
    wait_for("the central to show CP001 available", DEADLINE, || {
        central.write_all(&frame("STATUS#CP001#OK")).unwrap();
        let (verdict, text) = answer(&mut central);
        assert_eq!(verdict, ACK);
        assert!(text.starts_with("STATE#CP001#"), "{text}");
        (text == "STATE#CP001#available").then_some(())
    });
    net.wait_state("CP001", "available");
}

#[test]
fn bad_records_are_set_aside_and_good_ones_still_flow() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &net.broker.bootstrap)
        .create()
        .unwrap();
    let valid = |v: u32, driver: &str| {
        format!(
            r#"{{"type":"supply_request","v":{v},"id":"6f1c7a52-3a7e-4c8e-9d5e-1f2a3b4c5d6e","ts":"2026-11-23T10:00:00Z","request_id":"6f1c7a52-3a7e-4c8e-9d5e-1f2a3b4c5d6f","driver_id":"{driver}","cp_id":"CP001"}}"#
        )
    };
    let bad: Vec<(&str, Option<&str>, String)> = vec![
        ("evcharge.cp.events", Some("CP001"), "hello".into()),
        (
            "evcharge.cp.events",
            Some("CP001"),
            r#"{"type":"warp_drive","v":1,"id":"6f1c7a52-3a7e-4c8e-9d5e-1f2a3b4c5d60","ts":"2026-11-23T10:00:00Z","cp_id":"CP001"}"#.into(),
        ),
        ("evcharge.driver.requests", Some("D9"), valid(2, "D9")),
        ("evcharge.driver.requests", Some("D8"), valid(1, "D9")),
        ("evcharge.driver.requests", None, valid(1, "D9")),
    ];
    for (topic, key, payload) in &bad {
        let mut record = BaseRecord::<str, str>::to(topic).payload(payload.as_str());
        if let Some(key) = key {
            record = record.key(key);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    // Good input still flows after the bad.
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    assert_eq!(of_type(&driver.json_lines(), "ticket").len(), 1);

    // Every bad record is on the dead-letter topic with its reason.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &net.broker.bootstrap)
        .set("group.id", "test-dead-letters")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["evcharge.deadletter"]).unwrap();
    let mut letters: Vec<serde_json::Value> = Vec::new();
    wait_for("five dead letters", DEADLINE, || {
        while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            letters.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
        }
        (letters.len() >= 5).then_some(())
    });
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    for expected in [
        "not a valid message",
        "warp_drive",
        "version 2",
        "does not match",
        "no key",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason mentions {expected}: {reasons:#?}"
        );
    }
    let hello = letters
        .iter()
        .find(|l| l["payload"] == "hello")
        .expect("the payload is kept");
    assert_eq!(hello["topic"], "evcharge.cp.events");
    assert_eq!(hello["type"], "dead_letter");
    assert_eq!(net.cp("CP001").unwrap()["state"], "available");
}

#[test]
fn bad_http_gets_a_4xx_with_a_message() {
    let net = Network::start(BrokerKind::Embedded);
    for (method, path) in [
        ("GET", "/api/nothing"),
        ("POST", "/api/cps/%FF%FE/stop"),
        ("DELETE", "/api/cps"),
    ] {
        let response = ureq::request(method, &net.url(path)).call();
        let Err(ureq::Error::Status(code, body)) = response else {
            panic!("{method} {path} was accepted");
        };
        assert!((400..500).contains(&code), "{method} {path}: {code}");
        let body: serde_json::Value = body.into_json().unwrap();
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
}
