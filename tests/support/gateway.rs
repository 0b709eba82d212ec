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
}
