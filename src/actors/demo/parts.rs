//! The demo's supervisor of its child processes: starts each part, crashes one on request
//! (SIGKILL, the way a real failure looks), and brings it back after a delay or leaves it
//! down, as the presenter chooses.

use crate::harness::Program;
use actix::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// How often exits are looked for.
const EXIT_CHECK: Duration = Duration::from_millis(250);

/// One child of the demo.
struct Part {
    args: Vec<String>,
    child: Option<Child>,
    restarts: u32,
    /// A restart is scheduled for this part.
    restart_pending: bool,
    /// The presenter crashed it to stay down: it is not brought back by itself.
    held_down: bool,
}

/// A part as the control endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PartStatus {
    pub name: String,
    pub running: bool,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub restart_pending: bool,
}

pub struct DemoParts {
    exe: PathBuf,
    /// Flags every child gets (the broker's address, the config file).
    common: Vec<String>,
    /// Environment variables every child gets (the control token).
    env: Vec<(String, String)>,
    parts: BTreeMap<String, Part>,
    /// A part that fails on its own (a crash injected from the console, a bug) comes back
    /// after this long; never when `None`.
    restart_failed: Option<Duration>,
}

impl DemoParts {
    pub fn new(
        exe: PathBuf,
        common: Vec<String>,
        env: Vec<(String, String)>,
        restart_failed: Option<Duration>,
    ) -> DemoParts {
        DemoParts {
            exe,
            common,
            env,
            parts: BTreeMap::new(),
            restart_failed,
        }
    }

    /// Starts the part again after `delay`, unless it was started meanwhile.
    fn schedule_restart(&mut self, name: &str, delay: Duration, ctx: &mut Context<Self>) {
        let Some(part) = self.parts.get_mut(name) else {
            return;
        };
        part.restart_pending = true;
        let name = name.to_owned();
        ctx.run_later(delay, move |act, ctx| {
            act.check_exits(ctx);
            let pending = act.parts.get(&name).is_some_and(|p| p.restart_pending);
            if !pending {
                return;
            }
            match act.start_part(&name) {
                Ok(()) => {
                    if let Some(part) = act.parts.get_mut(&name) {
                        part.restarts += 1;
                    }
                    log::info!("{name} restarted");
                }
                Err(why) => log::warn!("cannot restart {name}: {why}"),
            }
        });
    }

    /// Starts a child whose output is read here, each line prefixed with `name`. It keeps
    /// its lifeline (its stdin, in the `Child`) until it is reaped.
    fn spawn(&self, name: &str, args: &[String]) -> Result<Child, String> {
        let built = Program::new(&self.exe)
            .envs(crate::bus::client_fetch_wait())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .args(&self.common)
            .exit_with_parent()
            .into_command();
        let mut child = Command::from(built)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        if let Some(out) = child.stdout.take() {
            actix::spawn(prefix_lines(name.to_owned(), out));
        }
        if let Some(err) = child.stderr.take() {
            actix::spawn(prefix_lines(name.to_owned(), err));
        }
        Ok(child)
    }

    fn start_part(&mut self, name: &str) -> Result<(), String> {
        let part = self
            .parts
            .get(name)
            .ok_or_else(|| format!("no part {name}"))?;
        if part.child.is_some() {
            return Err(format!("{name} is already running"));
        }
        let child = self.spawn(name, &part.args.clone())?;
        let part = self.parts.get_mut(name).expect("looked up above");
        part.child = Some(child);
        part.restart_pending = false;
        part.held_down = false;
        Ok(())
    }

    /// Reaps parts that ended, saying how; a part that failed on its own is brought back
    /// after a while, as a supervisor (systemd, Kubernetes) would.
    fn check_exits(&mut self, ctx: &mut Context<Self>) {
        let mut failed = Vec::new();
        for (name, part) in &mut self.parts {
            let Some(child) = part.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                part.child = None;
                let on_its_own = !status.success() && !part.restart_pending && !part.held_down;
                match self.restart_failed.filter(|_| on_its_own) {
                    Some(delay) => {
                        log::warn!("{name} ended ({status}); back in {delay:?}");
                        failed.push((name.clone(), delay));
                    }
                    None => log::warn!("{name} ended ({status})"),
                }
            }
        }
        for (name, delay) in failed {
            self.schedule_restart(&name, delay, ctx);
        }
    }
}

async fn prefix_lines(name: String, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{name:>8} | {line}");
    }
}

impl Actor for DemoParts {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(EXIT_CHECK, |act, ctx| act.check_exits(ctx));
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        for part in self.parts.values_mut() {
            if let Some(child) = part.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        Running::Stop
    }
}

/// Start a new part with these arguments.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Launch {
    pub name: String,
    pub args: Vec<String>,
}

impl Handler<Launch> for DemoParts {
    type Result = Result<(), String>;

    /// Records the part and starts it.
    fn handle(&mut self, msg: Launch, _ctx: &mut Self::Context) -> Self::Result {
        self.parts.insert(
            msg.name.clone(),
            Part {
                args: msg.args,
                child: None,
                restarts: 0,
                restart_pending: false,
                held_down: false,
            },
        );
        self.start_part(&msg.name)
    }
}

/// Crash a part abruptly; bring it back after `restart_after`, or leave it down.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CrashPart {
    pub name: String,
    pub restart_after: Option<Duration>,
}

impl Handler<CrashPart> for DemoParts {
    type Result = Result<(), String>;

    /// SIGKILLs the part's process and schedules its return if asked.
    fn handle(&mut self, msg: CrashPart, ctx: &mut Self::Context) -> Self::Result {
        let part = self
            .parts
            .get_mut(&msg.name)
            .ok_or_else(|| format!("no part {}", msg.name))?;
        let child = part
            .child
            .as_mut()
            .ok_or_else(|| format!("{} is not running", msg.name))?;
        child
            .start_kill()
            .map_err(|e| format!("cannot kill {}: {e}", msg.name))?;
        match msg.restart_after {
            Some(delay) => {
                log::warn!("crashing {} (back in {delay:?})", msg.name);
                part.held_down = false;
                self.schedule_restart(&msg.name, delay, ctx);
            }
            None => {
                log::warn!("crashing {} (left down)", msg.name);
                part.held_down = true;
            }
        }
        Ok(())
    }
}

/// Start a part that is down.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct StartPart {
    pub name: String,
}

impl Handler<StartPart> for DemoParts {
    type Result = Result<(), String>;

    /// Starts the part again with its original arguments.
    fn handle(&mut self, msg: StartPart, ctx: &mut Self::Context) -> Self::Result {
        self.check_exits(ctx);
        self.start_part(&msg.name)?;
        if let Some(part) = self.parts.get_mut(&msg.name) {
            part.restarts += 1;
        }
        log::info!("{} started again", msg.name);
        Ok(())
    }
}

/// Every part and whether it runs.
#[derive(Message)]
#[rtype(result = "Vec<PartStatus>")]
pub struct ListParts;

impl Handler<ListParts> for DemoParts {
    type Result = MessageResult<ListParts>;

    /// Lists the parts in name order.
    fn handle(&mut self, _msg: ListParts, ctx: &mut Self::Context) -> Self::Result {
        self.check_exits(ctx);
        MessageResult(
            self.parts
                .iter()
                .map(|(name, part)| PartStatus {
                    name: name.clone(),
                    running: part.child.is_some(),
                    pid: part.child.as_ref().and_then(|c| c.id()),
                    restarts: part.restarts,
                    restart_pending: part.restart_pending,
                })
                .collect(),
        )
    }
}
