//! Charging points are registered and prove who they are: a monitor that does not hold its
//! CP's secret is refused, counted, audited and locked out, and creates nothing; location
//! and tariff are the operator's, changed only by an operator.

use super::support::link::{ask, connect, ACK, NACK};
use super::support::*;
use serde_json::{json, Value};

/// The audit log's lines, newest first.
fn audit(net: &Network) -> Vec<String> {
    net.get("/api/audit")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap().to_owned())
        .collect()
}

fn secret_of(file: &str) -> String {
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

#[test]
fn an_impersonating_monitor_is_refused_and_creates_nothing() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");

    let mut link = connect(net.central_tcp);
    let (verdict, text) = ask(&mut link, "AUTH#CP001#evccp_guessed");
    assert_eq!(
        (verdict, text.as_str()),
        (NACK, "REFUSED#wrong secret for CP001")
    );
    let (verdict, text) = ask(&mut link, "AUTH#GHOST#evccp_guessed");
    assert_eq!(verdict, NACK);
    assert!(text.contains("GHOST is not registered"), "{text}");
    // The old form of AUTH, which claimed a location and a price, is refused too.
    let (verdict, text) = ask(&mut link, "AUTH#GHOST2#Somewhere#1e308");
    assert_eq!(verdict, NACK);
    assert!(
        text.contains("AUTH takes the CP id and its secret"),
        "{text}"
    );
    // Nothing was reported for CP001 by the impostor, nothing else was created.
    let (verdict, text) = ask(&mut link, "STATUS#CP001#KO#forged");
    assert_eq!(verdict, NACK);
    assert!(text.contains("not authenticated"), "{text}");
    assert_eq!(
        net.wait_state("CP001", "available")["location"],
        "Street of CP001"
    );
    let ids: Vec<Value> = net
        .get("/api/cps")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("CP001")]);

    // Counted and audited, with the reason.
    let metrics = ureq::get(&net.url("/api/metrics"))
        .set("Authorization", &net.bearer())
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains(r#"evcharge_refusals_total{door="monitor_auth",reason="wrong_secret"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"reason="unknown_cp"} 1"#), "{metrics}");
    let audit = audit(&net);
    assert!(
        audit
            .iter()
            .any(|w| w.contains("refused AUTH as \"CP001\": wrong secret")),
        "{audit:?}"
    );

    // Still nothing after a restart: refusals wrote no CP.
    net.kill_central();
    net.start_central();
    net.wait_state("CP001", "available");
    assert_eq!(net.get("/api/cps").as_array().unwrap().len(), 1);
}

#[test]
fn an_address_that_keeps_failing_is_locked_out_while_good_links_go_on() {
    // A first lock long enough that a loaded machine cannot outlast it between two tries.
    let mut net = Network::start_with_env(
        BrokerKind::Embedded,
        &[],
        &[("EVCHARGE_CENTRAL__AUTH_LOCKOUT", "5s")],
    );
    let secret_file = net.register("CP002", 0.25);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");

    let mut link = connect(net.central_tcp);
    for _ in 0..5 {
        let (verdict, text) = ask(&mut link, "AUTH#CP002#evccp_wrong");
        assert_eq!(
            (verdict, text.as_str()),
            (NACK, "REFUSED#wrong secret for CP002")
        );
    }
    // Five failures lock the CP id and the address; while locked, even the right secret is
    // refused before it is looked at, so guesses gain nothing.
    assert_eq!(ask(&mut link, "AUTH#CP002#evccp_wrong").0, NACK);
    let mut other = connect(net.central_tcp);
    let (verdict, text) = ask(
        &mut other,
        &format!("AUTH#CP002#{}", secret_of(&secret_file)),
    );
    assert_eq!(verdict, NACK);
    assert!(
        text.contains("too many failed AUTHs for \"CP002\" or from 127.0.0.1"),
        "{text}"
    );
    let metrics = ureq::get(&net.url("/api/metrics"))
        .set("Authorization", &net.bearer())
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains(r#"reason="locked_out"} 2"#), "{metrics}");
    // The CP that had authenticated before goes on reporting.
    let cp = net.wait_state("CP001", "available");
    assert_eq!(cp["state"], "available");

    // The lock runs out; then the right secret is welcome.
    let welcome = wait_for("the lock to run out", DEADLINE, || {
        let mut link = connect(net.central_tcp);
        let (verdict, text) = ask(
            &mut link,
            &format!("AUTH#CP002#{}", secret_of(&secret_file)),
        );
        (verdict == ACK).then_some(text)
    });
    assert_eq!(welcome, "WELCOME#CP002#Street of CP002#0.25");
}

#[test]
fn location_and_tariff_are_the_operators() {
    let net = Network::start(BrokerKind::Embedded);
    let register = |net: &Network, body: Value| net.send("POST", "/api/cps", Some(body));
    for (body, why) in [
        (
            json!({"id": "CP9", "location": "Alicante", "price_eur_kwh": 1e308}),
            "tariff",
        ),
        (
            json!({"id": "CP9", "location": "Alicante", "price_eur_kwh": -0.3}),
            "tariff",
        ),
        (
            json!({"id": "PX#D28", "location": "Alicante", "price_eur_kwh": 0.3}),
            "CP id",
        ),
        (
            json!({"id": "CP9", "location": "a\nb", "price_eur_kwh": 0.3}),
            "location",
        ),
    ] {
        let (status, answer) = register(&net, body);
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    let (status, answer) = register(
        &net,
        json!({"id": "CP9", "location": "Alicante", "price_eur_kwh": 0.33}),
    );
    assert_eq!(status, 201, "{answer}");
    let secret = answer["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("evccp_") && secret.len() == 70,
        "{secret}"
    );
    let (status, _) = register(
        &net,
        json!({"id": "CP9", "location": "Elsewhere", "price_eur_kwh": 0.1}),
    );
    assert_eq!(status, 409, "registered twice");
    // Shown at once, disconnected until its monitor authenticates.
    assert_eq!(net.wait_state("CP9", "disconnected")["price_eur_kwh"], 0.33);
    // Anonymous callers register nothing.
    let anonymous = ureq::post(&net.url("/api/cps"))
        .send_json(json!({"id": "CP8", "location": "x", "price_eur_kwh": 0.3}));
    assert!(matches!(anonymous, Err(ureq::Error::Status(401, _))));

    // The monitor's WELCOME carries the registered terms; an operator's change is audited
    // and shown.
    let mut link = connect(net.central_tcp);
    assert_eq!(
        ask(&mut link, &format!("AUTH#CP9#{secret}")),
        (ACK, "WELCOME#CP9#Alicante#0.33".into())
    );
    let (status, answer) = net.send(
        "PATCH",
        "/api/cps/CP9",
        Some(json!({"price_eur_kwh": 0.41})),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, _) = net.send(
        "PATCH",
        "/api/cps/CP9",
        Some(json!({"price_eur_kwh": f64::MAX})),
    );
    assert_eq!(status, 400);
    wait_for("the new tariff", DEADLINE, || {
        net.cp("CP9").filter(|c| c["price_eur_kwh"] == 0.41)
    });
    assert!(audit(&net)
        .iter()
        .any(|w| w == "changed CP9: location Alicante → Alicante, tariff 0.33 → 0.41 €/kWh"));
}

#[test]
fn a_new_secret_ends_the_old_ones_link() {
    let mut net = Network::start(BrokerKind::Embedded);
    let cp = net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");
    let (status, answer) = net.post("/api/cps/CP001/secret");
    assert_eq!(status, 201, "{answer}");
    let new = answer["secret"].as_str().unwrap().to_owned();
    // The running CP still holds the old secret: it is disconnected and refused.
    net.wait_state("CP001", "disconnected");
    wait_for("the CP to be refused", DEADLINE, || {
        net.cps[cp]
            .stderr_text()
            .contains("refused this CP: wrong secret for CP001")
            .then_some(())
    });
    let mut link = connect(net.central_tcp);
    assert_eq!(ask(&mut link, &format!("AUTH#CP001#{new}")).0, ACK);
}
