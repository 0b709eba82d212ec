//! The OCPP gateway of a test network.

use super::*;

impl Network {
    /// Starts `evcharge gateway` named `name` on any free port; returns it and the address
    /// charge points connect to.
    pub fn start_gateway(&mut self, name: &str, extra: &[&str]) -> (Proc, String) {
        let mut args = strings(&[
            "--kafka",
            &self.broker.bootstrap,
            "gateway",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--central",
            &self.monitor_centrals(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc_name = self.next_name(name);
        let gateway = Proc::spawn(self.dir.path(), &proc_name, evcharge(), &args, &FAST_ENV);
        let address = announced(&gateway, announces::GATEWAY);
        (gateway, address)
    }

    /// Registers OCPP charge point `id` at `price` for OCPP security profile `profile`, as
    /// an operator would through the API; returns the file that holds its key.
    pub fn register_ocpp(&mut self, id: &str, price: f64, profile: u8) -> String {
        let registration = serde_json::json!({
            "id": id, "location": format!("Street of {id}"), "price_eur_kwh": price,
            "ocpp_security_profile": profile,
        });
        let (status, body) = self.send("POST", "/api/cps", Some(registration));
        assert_eq!(status, 201, "cannot register {id}: {body}");
        assert_eq!(body["ocpp_security_profile"], profile, "{body}");
        let file = self.dir.path().join(format!("{id}.secret"));
        std::fs::write(&file, body["secret"].as_str().unwrap()).unwrap();
        let file = file.display().to_string();
        self.registered.insert(id.into(), (file.clone(), price));
        file
    }
}
