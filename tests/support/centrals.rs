//! More centrals for a test network: each with its own instance name, database and ports,
//! sharing the first central's cluster key, as the centrals of one network do.

use super::network::{Network, FAST_ENV};
use super::process::{port_of, start_announcing, Proc};
use super::{announces, wait_for, DEADLINE};
use serde_json::Value;
use std::path::PathBuf;

/// A central beside the network's first.
pub struct OtherCentral {
    pub proc: Proc,
    pub instance: String,
    pub http: u16,
    pub data: PathBuf,
}

impl Network {
    /// Starts central `instance` on the network's broker. CPs started after it link to
    /// every central.
    pub fn start_another_central(&mut self, instance: &str) -> OtherCentral {
        let dir = self.dir.path().to_owned();
        let data = dir.join(format!("{instance}-data"));
        let key = dir.join("central-data").join("cluster-key");
        let args: Vec<String> = [
            "--kafka",
            &self.broker.bootstrap,
            "central",
            "--instance",
            instance,
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--data",
            &data.display().to_string(),
            "--cluster-key-file",
            &key.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut env = FAST_ENV.to_vec();
        let central_env = self.central_env.clone();
        env.extend(central_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (proc, addresses) = start_announcing(
            |_| {
                let name = self.next_name(instance);
                Proc::spawn(&dir, &name, super::evcharge(), &args, &env)
            },
            &[announces::MONITORS, announces::CONSOLE],
        );
        self.other_centrals.push(port_of(&addresses[0]));
        let central = OtherCentral {
            proc,
            instance: instance.to_owned(),
            http: port_of(&addresses[1]),
            data,
        };
        wait_for("the other central's API", DEADLINE, || {
            ureq::get(&central.url("/api/health")).call().ok()
        });
        central
    }
}

impl OtherCentral {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// `GET path` as the network's operator (whose token every central knows, from the
    /// changelog); `None` while it does not answer 200.
    pub fn get(&self, net: &Network, path: &str) -> Option<Value> {
        ureq::get(&self.url(path))
            .set("Authorization", &net.bearer())
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    /// The CPs this central shows.
    pub fn cps(&self, net: &Network) -> Vec<Value> {
        self.get(net, "/api/cps")
            .and_then(|cps| cps.as_array().cloned())
            .unwrap_or_default()
    }
}
