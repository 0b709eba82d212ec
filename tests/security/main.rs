//! The `security` test binary: attacks on the real binary, one module per door of the
//! security issue, each showing the attack refused with its reason while the network goes
//! on serving; here, what several of them share.

#[path = "../support/mod.rs"]
mod support;

mod bus;
mod doors;
mod kafka_tls;
mod monitor_port;
mod registration;
mod rules;
mod tls;

use serde_json::Value;

/// What came back: the status, the JSON body (`Null` when none) and the headers a test looks
/// at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub set_cookie: Option<String>,
    pub retry_after: Option<String>,
}

/// Sends `request` (with `body` as JSON when given); any answer, 4xx and 5xx included.
pub fn call(request: ureq::Request, body: Option<Value>) -> Answer {
    let sent = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match sent {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no answer: {e}"),
    };
    Answer {
        status: response.status(),
        set_cookie: response.header("set-cookie").map(str::to_owned),
        retry_after: response.header("retry-after").map(str::to_owned),
        body: response.into_json().unwrap_or(Value::Null),
    }
}

/// `name=value` of a `Set-Cookie` header.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

/// The permission bits of a file.
pub fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
