//! A child process of a test, on the harness's [`Child`]: its output in files, killed with
//! SIGKILL when dropped (its last lines shown if the test failed), and the addresses it
//! announces once its listeners are bound.

use super::{wait_for, DEADLINE};
use evcharge::harness::{Child, Program};
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A child process whose output goes to files, killed with SIGKILL when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn spawn(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Proc {
        Proc::start(dir, name, program, args, env, false)
    }

    /// Like `spawn`, with a standard input the test can type into.
    pub fn spawn_typed(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Proc {
        Proc::start(dir, name, program, args, env, true)
    }

    fn start(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[String],
        env: &[(&str, &str)],
        typed: bool,
    ) -> Proc {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let mut program_ = Program::new(program)
            .named(name)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        if typed {
            program_ = program_.typed_input();
        }
        let child = program_
            .spawn_to_files(&stdout, &stderr)
            .unwrap_or_else(|e| panic!("cannot start {program}: {e:#}"));
        Proc {
            name: name.into(),
            child,
            stdout,
            stderr,
        }
    }

    /// Types one line into the process's standard input.
    pub fn type_line(&mut self, line: &str) {
        self.child
            .type_line(line)
            .unwrap_or_else(|e| panic!("cannot type into {}: {e:#}", self.name));
    }

    /// SIGKILL: the process dies at once, the way a crash does.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// Waits for the process to end by itself; its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        self.child
            .wait_exit(deadline)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn stdout_text(&self) -> String {
        self.child.stdout_text()
    }

    pub fn stderr_text(&self) -> String {
        self.child.stderr_text()
    }

    /// Every stdout line that is a JSON object.
    pub fn json_lines(&self) -> Vec<Value> {
        let Ok(file) = File::open(&self.stdout) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .collect()
    }

    /// The process id while it runs (to send it a signal other than SIGKILL).
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// SIGTERM: asks the process to stop cleanly, the way an operator or systemd does.
    pub fn terminate(&mut self) {
        self.signal("TERM");
    }

    /// SIGSTOP: the process stops dead with its sockets open, sending nothing more, not even
    /// a close (as when its machine loses power). `kill` still ends it.
    pub fn freeze(&mut self) {
        self.signal("STOP");
    }

    /// SIGCONT: a frozen process carries on.
    pub fn thaw(&mut self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        if self.child.pid().is_some() {
            self.child
                .signal(name)
                .unwrap_or_else(|e| panic!("cannot send SIG{name} to {}: {e:#}", self.name));
        }
    }

    fn tail(&self, lines: usize) -> String {
        let mut text = String::new();
        for path in [&self.stdout, &self.stderr] {
            let all = std::fs::read_to_string(path).unwrap_or_default();
            let v: Vec<&str> = all.lines().collect();
            let start = v.len().saturating_sub(lines);
            text.push_str(&v[start..].join("\n"));
            text.push('\n');
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- last output of {} -----\n{}",
                self.name,
                self.tail(40)
            );
        }
        self.kill();
    }
}

/// What each role logs when a listener is bound, followed by the address as bound (with
/// port 0, the port the system chose): `… on 127.0.0.1:PORT` or `… on http(s)://127.0.0.1:PORT/…`.
pub mod announces {
    /// The central's TCP listener for monitors.
    pub const MONITORS: &str = "listening for monitors on ";
    /// The central's admin console and API.
    pub const CONSOLE: &str = "admin console and API on ";
    /// An engine's health-check socket (`evcharge engine` and `evcharge cp`).
    pub const ENGINE: &str = "answering health checks on ";
    /// A monitor's page (`evcharge monitor --http` and `evcharge cp --http`).
    pub const MONITOR_PAGE: &str = "monitor page on ";
    /// A driver's dashboard (`evcharge driver --http`).
    pub const DASHBOARD: &str = "driver dashboard on ";
    /// The control endpoint of an engine, monitor, CP or driver (`--control`).
    pub const CONTROL: &str = "control endpoint on ";
    /// The embedded broker's control (`evcharge broker --control`).
    pub const BROKER_CONTROL: &str = "outage injection on ";
    /// The demo's control (`evcharge demo --control`).
    pub const DEMO_CONTROL: &str = "demo control on ";
    /// The OCPP gateway's WebSocket endpoint (`evcharge gateway`).
    pub const GATEWAY: &str = "OCPP gateway for charge points on ";
}

/// What a process says when an address it was told to bind is taken.
pub const ADDRESS_IN_USE: &str = "Address already in use";

/// The address announced after `marker` in `text` (the first such line), as `host:port`.
pub fn address_after(text: &str, marker: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.split_once(marker)?.1;
        let rest = rest
            .strip_prefix("http://")
            .or_else(|| rest.strip_prefix("https://"))
            .unwrap_or(rest);
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(rest.len());
        let address: std::net::SocketAddr = rest[..end].parse().ok()?;
        Some(address.to_string())
    })
}

/// Everything the process has written so far, standard error then standard output.
fn all_output(proc: &Proc) -> String {
    proc.stderr_text() + &proc.stdout_text()
}

/// Waits until `proc` announces the address it bound after `marker`; that address.
pub fn announced(proc: &Proc, marker: &str) -> String {
    wait_for(
        &format!("{} to announce \"{}\"", proc.name, marker.trim()),
        DEADLINE,
        || address_after(&all_output(proc), marker),
    )
}

/// The port of [`announced`].
pub fn announced_port(proc: &Proc, marker: &str) -> u16 {
    port_of(&announced(proc, marker))
}

/// The port of a `host:port` address.
pub fn port_of(address: &str) -> u16 {
    address
        .parse::<std::net::SocketAddr>()
        .unwrap_or_else(|e| panic!("{address} is not an address: {e}"))
        .port()
}

/// Starts a process with `start` (given the attempt's number, from 1) until it announces an
/// address after each of `markers`, starting it again while an address it was given is
/// taken ([`ADDRESS_IN_USE`]). For processes whose address must be known before they start;
/// `start` may keep the address (a restart that others will reconnect to) or choose new
/// ones. Returns the process and the announced addresses, in the order of `markers`.
pub fn start_announcing(
    mut start: impl FnMut(usize) -> Proc,
    markers: &[&str],
) -> (Proc, Vec<String>) {
    let mut attempt = 0;
    wait_for("a start whose addresses are free", DEADLINE, || {
        attempt += 1;
        let proc = start(attempt);
        let bound = wait_for(
            &format!("{} to announce its addresses", proc.name),
            DEADLINE,
            || {
                let text = all_output(&proc);
                if text.contains(ADDRESS_IN_USE) {
                    return Some(None);
                }
                markers
                    .iter()
                    .map(|m| address_after(&text, m))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
            },
        );
        match bound {
            Some(addresses) => Some((proc, addresses)),
            None => {
                eprintln!("{}: an address was taken; starting again", proc.name);
                None
            }
        }
    })
}

/// Whether process `pid` has a listening TCP socket on `port` (any address), from
/// `/proc/net/tcp{,6}` and the process's open files.
pub fn listens_on(pid: u32, port: u16) -> bool {
    // 0A: LISTEN.
    sockets_of(pid, |local, _, state| state == "0A" && local == port) > 0
}

/// How many TCP connections process `pid` has open to `port` (on any host), established.
pub fn connections_to(pid: u32, port: u16) -> usize {
    // 01: ESTABLISHED.
    sockets_of(pid, |_, remote, state| state == "01" && remote == port)
}

/// How many of process `pid`'s TCP sockets `matches` their local port, remote port and
/// state (as `/proc/net/tcp` writes it).
fn sockets_of(pid: u32, matches: impl Fn(u16, u16, &str) -> bool) -> usize {
    let port_in = |address: &str| {
        address
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, local, remote, state, _, _, _, _, _, inode, ..] = fields[..] else {
                continue;
            };
            if let (Some(local), Some(remote)) = (port_in(local), port_in(remote)) {
                if matches(local, remote, state) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
        .count()
}
