//! Test hosts on one machine: Linux network namespaces, each with its own address on a
//! private bridge, so that processes really talk to each other across addresses.
//!
//! Hosts `evc-mh-<pid>-<n>-a`, `…-b`, … get `10.77.X.1`, `10.77.X.2`, … on a bridge in
//! the test's own namespace, which holds `10.77.X.254` so the test reaches every host. `X` is
//! chosen from the test's pid among the subnets no interface uses. Everything is removed
//! when the value is dropped, panics included; leftovers of runs whose process is gone are
//! removed first. Needs root and iproute2's `ip`.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Namespaces of these tests start with this.
const NS_PREFIX: &str = "evc-mh-";
/// Links of these tests (the bridge, the test's ends of the veth pairs) start with this.
const LINK_PREFIX: &str = "evmh";

/// Hosts made in this process so far: names stay unique when tests run in parallel.
static MADE: AtomicUsize = AtomicUsize::new(0);

/// A set of hosts sharing one subnet; removed on drop.
#[derive(Debug)]
pub struct Hosts {
    ip: String,
    subnet: u8,
    bridge: String,
    namespaces: Vec<String>,
}

impl Hosts {
    /// `count` hosts (at most 26), their loopback and their address up.
    pub fn create(count: usize) -> Hosts {
        assert!((1..=26).contains(&count));
        let ip = ip_binary();
        require_root();
        remove_leftovers(&ip);
        let pid = std::process::id();
        let n = MADE.fetch_add(1, Ordering::SeqCst);
        let subnet = free_subnet(&ip, pid);
        let mut hosts = Hosts {
            ip,
            subnet,
            bridge: format!("{LINK_PREFIX}{pid}n{n}br"),
            namespaces: Vec::new(),
        };
        // From here on a failure leaves things behind only until the drop below runs.
        hosts.run(&["link", "add", &hosts.bridge, "type", "bridge"]);
        hosts.run(&[
            "addr",
            "add",
            &format!("10.77.{subnet}.254/24"),
            "dev",
            &hosts.bridge,
        ]);
        hosts.run(&["link", "set", &hosts.bridge, "up"]);
        for i in 0..count {
            let letter = (b'a' + i as u8) as char;
            let ns = format!("{NS_PREFIX}{pid}-{n}-{letter}");
            hosts.run(&["netns", "add", &ns]);
            hosts.namespaces.push(ns.clone());
            let outer = hosts.outer_link(i);
            hosts.run(&[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            hosts.run(&["link", "set", &outer, "master", &hosts.bridge, "up"]);
            let address = format!("{}/24", hosts.addr(i));
            hosts.run(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            hosts.run(&["-n", &ns, "link", "set", "eth0", "up"]);
            hosts.run(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// The address of host `i` (0 for the first).
    pub fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }

    /// The test's own address on the hosts' bridge.
    pub fn own_addr(&self) -> String {
        format!("10.77.{}.254", self.subnet)
    }

    /// The program and arguments that run `program args…` on host `i`. `ip netns exec`
    /// execs the program, so the process started is the program itself (a SIGKILL reaches it).
    pub fn command_on(&self, i: usize, program: &str, args: &[String]) -> (String, Vec<String>) {
        let mut all = vec![
            "netns".to_string(),
            "exec".into(),
            self.namespaces[i].clone(),
            program.into(),
        ];
        all.extend(args.iter().cloned());
        (self.ip.clone(), all)
    }

    /// The test's end of host `i`'s veth pair, on the bridge.
    fn outer_link(&self, i: usize) -> String {
        let letter = (b'a' + i as u8) as char;
        format!("{}{letter}", self.bridge.trim_end_matches("br"))
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new(&self.ip)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.ip));
        assert!(
            out.status.success(),
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            // Deleting a namespace deletes its veth end, and with it the peer on the bridge.
            let _ = Command::new(&self.ip).args(["netns", "del", ns]).output();
        }
        let _ = Command::new(&self.ip)
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// iproute2's `ip`, or a clear failure: the test must run, never be skipped.
fn ip_binary() -> String {
    let on_path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| format!("{d}/ip"))
        .chain([
            "/usr/sbin/ip".into(),
            "/sbin/ip".into(),
            "/usr/bin/ip".into(),
        ])
        .find(|p| std::path::Path::new(p).exists());
    on_path.expect(
        "the multi-host test needs iproute2's `ip` (Debian: apt-get install iproute2) \
         to make network namespaces",
    )
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    assert_eq!(
        euid, "0",
        "the multi-host test makes network namespaces and needs root: run the README's test \
         command (scripts/test.sh) as root, as CI does"
    );
}

/// The pid that made a namespace or link of these tests, from its name.
fn owner(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn is_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces and links of earlier runs whose process has gone.
fn remove_leftovers(ip: &str) {
    let listed = |args: &[&str]| {
        Command::new(ip)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for line in listed(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if owner(name, NS_PREFIX).is_some_and(|pid| !is_alive(pid)) {
            let _ = Command::new(ip).args(["netns", "del", name]).output();
        }
    }
    for line in listed(&["-o", "link", "show"]).lines() {
        // "7: evmh123n0b: <…" or "8: evmh123n0a@if2: <…"
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if owner(name, LINK_PREFIX).is_some_and(|pid| !is_alive(pid)) {
            let _ = Command::new(ip).args(["link", "del", name]).output();
        }
    }
}

/// A `10.77.X.0/24` no interface of this namespace uses, starting from the pid.
fn free_subnet(ip: &str, pid: u32) -> u8 {
    let used = Command::new(ip)
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let start = pid % 250;
    (0..250)
        .map(|k| ((start + k) % 250 + 1) as u8)
        .find(|x| !used.contains(&format!(" 10.77.{x}.")))
        .expect("a free 10.77.X.0/24 subnet for the test hosts")
}
