//! HTTP to our own endpoints (the central's API, the control endpoints) through `ureq`.

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// The longest any request waits for its answer: every endpoint of ours answers at once.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP server of ours, and the operator token to show it if it wants one.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Like `http://127.0.0.1:8000`, without a trailing slash.
    base: String,
    token: Option<String>,
}

impl Endpoint {
    /// `base` like `http://127.0.0.1:8000`; a bare `host:port` is taken as plain HTTP.
    pub fn new(base: impl Into<String>) -> Endpoint {
        let base = base.into();
        let base = if base.contains("://") {
            base
        } else {
            format!("http://{base}")
        };
        Endpoint {
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// Every request carries `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: impl Into<String>) -> Endpoint {
        self.token = Some(token.into());
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with the token if there is one, for what the helpers below do
    /// not cover (other methods, headers, reading the status of a GET).
    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        // Bounded, so that a server that accepts and never answers cannot outlast the wait
        // a caller put around it.
        let request = ureq::request(method, &self.url(path)).timeout(ANSWER_TIMEOUT);
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// GET; the body as text. An answer of 4xx or 5xx is an error.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .request("GET", path)
            .call()
            .with_context(|| format!("GET {}", self.url(path)))?;
        Ok(response.into_string()?)
    }

    /// GET; the body as JSON. An answer of 4xx or 5xx is an error.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .request("GET", path)
            .call()
            .with_context(|| format!("GET {}", self.url(path)))?;
        response
            .into_json()
            .with_context(|| format!("GET {}: not the JSON expected", self.url(path)))
    }

    /// POST, with `body` as JSON when given; the answer's JSON, or null when it has none.
    /// An answer of 4xx or 5xx is an error.
    pub fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let request = self.request("POST", path);
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        }
        .with_context(|| format!("POST {}", self.url(path)))?;
        let text = response.into_string()?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POST, with `body` as JSON when given; the status and JSON body (null when it has
    /// none) of any answer, 4xx and 5xx included: only an answer that never came is an error.
    pub fn post_for_status(&self, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let request = self.request("POST", path);
        let answer = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match answer {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => return Err(e).with_context(|| format!("POST {}", self.url(path))),
        };
        let status = response.status();
        Ok((status, response.into_json().unwrap_or(Value::Null)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// Answers one request with `status` and `body`; hands back the request it read.
    fn answer_once(status: &str, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let status = status.to_owned();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
                request.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut content = vec![0; length];
            reader.read_exact(&mut content).unwrap();
            request.push_str(&String::from_utf8(content).unwrap());
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            request
        });
        (address, server)
    }

    #[test]
    fn a_get_shows_the_token_and_reads_json() {
        let (address, server) = answer_once("200 OK", r#"{"state":"available"}"#);
        let api = Endpoint::new(address).with_token("secret");
        let cp: Value = api.get_json("/api/cps/CP1").unwrap();
        assert_eq!(cp["state"], "available");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /api/cps/CP1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Authorization: Bearer secret\r\n"),
            "{request}"
        );
    }

    #[test]
    fn a_post_sends_its_body_and_a_refusal_is_an_error_or_a_status() {
        let (address, server) = answer_once("409 Conflict", r#"{"error":"no"}"#);
        let control = Endpoint::new(format!("http://{address}/"));
        let (status, body) = control
            .post_for_status("/fleet/run", Some(serde_json::json!({"rate": 2})))
            .unwrap();
        assert_eq!((status, body["error"].as_str()), (409, Some("no")));
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /fleet/run "), "{request}");
        assert!(request.ends_with(r#"{"rate":2}"#), "{request}");
        assert!(!request.contains("Authorization"), "{request}");

        let (address, server) = answer_once("409 Conflict", r#"{"error":"no"}"#);
        let error = Endpoint::new(address).post("/x", None).unwrap_err();
        assert!(format!("{error:#}").contains("409"), "{error:#}");
        server.join().unwrap();

        let (address, server) = answer_once("202 Accepted", "");
        assert_eq!(
            Endpoint::new(address).post("/x", None).unwrap(),
            Value::Null
        );
        server.join().unwrap();
    }
}
