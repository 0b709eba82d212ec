//! Helpers for end-to-end tests: real `evcharge` processes, a real broker process, real
//! sockets and HTTP. Every wait is on a condition, with a generous deadline. Processes,
//! waits and HTTP come from the product's own harness (`evcharge::harness`), which the
//! benchmark and the demo use too.

#![allow(dead_code)]

mod broker;
mod centrals;
mod gateway;
pub mod link;
mod network;
mod process;
pub mod records;

// Each test binary uses its own part of these.
#[allow(unused_imports)]
pub use broker::{tansu_binary, Broker, BrokerKind};
#[allow(unused_imports)]
pub use centrals::OtherCentral;
#[allow(unused_imports)]
pub use network::{
    prepare_operator, register_driver_offline, register_offline, wait_line, Network, CONTROL_TOKEN,
    FAST_ENV, OPERATOR, OPERATOR_PASSWORD,
};
#[allow(unused_imports)]
pub use process::{
    address_after, announced, announced_port, announces, connections_to, listens_on, port_of,
    start_announcing, Proc, ADDRESS_IN_USE,
};

use serde_json::Value;
use std::time::Duration;

pub const DEADLINE: Duration = Duration::from_secs(90);

/// The Python of the tests' outside clients (confluent-kafka, ocpp, websockets), in the venv
/// `scripts/test.sh` makes under the target directory.
pub fn venv_python() -> String {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| manifest.join(dir))
        .unwrap_or_else(|| manifest.join("target"));
    let python = target.join("outside-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which makes the venv of the outside clients \
         (confluent-kafka, cryptography, ocpp, websockets) before the tests",
        python.display()
    );
    python.display().to_string()
}

pub fn evcharge() -> &'static str {
    env!("CARGO_BIN_EXE_evcharge")
}

/// A port free right now on loopback, released at once: another process may take it before
/// the one it is meant for binds it. Only for an address that must be known before its
/// process starts; such a start is retried while the port is taken ([`start_announcing`]).
/// Everywhere else a process binds port 0 and the test reads back what it announces.
pub fn free_port() -> u16 {
    evcharge::harness::free_port().expect("a free port")
}

/// The arguments of a central on the broker at `kafka`, its database in `data`, on ports
/// of its choosing (read back from what it announces); `extra` after them.
pub fn central_args(kafka: &str, data: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--kafka",
        kafka,
        "central",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
        data,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Polls `check` until it gives a value or the deadline passes, then fails the test.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    evcharge::harness::wait_for(what, deadline, || Ok(check())).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The control endpoint on `port` of a process a test started, opened with [`CONTROL_TOKEN`].
pub fn control(port: u16) -> evcharge::harness::Endpoint {
    evcharge::harness::Endpoint::new(format!("http://127.0.0.1:{port}")).with_token(CONTROL_TOKEN)
}

/// An address where nothing listens: port 1 (tcpmux) is below the range the system hands
/// out for port 0 and for outgoing connections, and no test binds it, so it stays refused
/// however many tests run side by side.
pub fn nowhere() -> String {
    "127.0.0.1:1".into()
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The driver's JSON lines of one type.
pub fn of_type(lines: &[Value], kind: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["type"] == kind)
        .cloned()
        .collect()
}

/// € = kWh × price, to the cent, half up (docs/PROTOCOL.md, "Money"), worked out here in
/// integers: Wh × hundredths of a cent per kWh, in units of 10⁻⁷ €.
pub fn assert_priced(kwh: f64, eur: f64, price: f64) {
    let wh = (kwh * 1000.0).round() as i64;
    let tariff = (price * 10_000.0).round() as i64;
    let expected_cents = (wh * tariff + 50_000) / 100_000;
    let expected = expected_cents as f64 / 100.0;
    assert!(
        eur == expected,
        "{eur} € is not {kwh} kWh × {price} €/kWh = {expected} €"
    );
}
