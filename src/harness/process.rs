//! Child processes — of this binary or of any program — with their output in files, stopped
//! when their handle is dropped.

use super::wait::wait_for;
use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of the running program, to start more processes of it.
pub fn this_binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find this program's own path")
}

/// How a child is stopped when its [`Child`] is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOnDrop {
    /// SIGKILL at once, the way a crash looks: nothing the child does on leaving can hide a
    /// fault (the tests' choice).
    Kill,
    /// SIGTERM, so that the child leaves as it would in production; SIGKILL if it is still
    /// there after `grace`.
    Terminate { grace: Duration },
}

/// What a child reads on its standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Nothing: end of file at once.
    Closed,
    /// Lines typed with [`Child::type_line`].
    Typed,
    /// A pipe never written to, held open while the parent lives (see [`crate::EXIT_WITH_PARENT`]).
    Lifeline,
}

/// A process to start: the program, its arguments and environment, and how it is to be
/// looked after. Nothing runs until one of the `spawn`/`run` methods is called.
pub struct Program {
    command: Command,
    /// The program's file name and its arguments, for messages.
    shown: Vec<String>,
    name: String,
    input: Input,
    stop: StopOnDrop,
}

impl Program {
    /// `program` (a path, or a name looked up in `PATH`), its input closed, killed with
    /// SIGKILL when dropped.
    pub fn new(program: impl AsRef<OsStr>) -> Program {
        let program = program.as_ref();
        let file_name = Path::new(program)
            .file_name()
            .unwrap_or(program)
            .to_string_lossy()
            .into_owned();
        Program {
            command: Command::new(program),
            shown: vec![file_name.clone()],
            name: file_name,
            input: Input::Closed,
            stop: StopOnDrop::Kill,
        }
    }

    /// Another process of the running program.
    pub fn this_binary() -> anyhow::Result<Program> {
        Ok(Program::new(this_binary()?))
    }

    /// The name messages give the child (the program's file name unless told).
    pub fn named(mut self, name: impl Into<String>) -> Program {
        self.name = name.into();
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Program {
        self.shown.push(arg.as_ref().to_string_lossy().into_owned());
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(self, args: I) -> Program
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Program::arg)
    }

    pub fn env(mut self, variable: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Program {
        self.command.env(variable, value);
        self
    }

    /// Every `(variable, value)` of `vars` (an `Option` of one pair works too).
    pub fn envs<I, K, V>(mut self, vars: I) -> Program
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    /// The child leaves when this process ends, however it ends (even by SIGKILL): it is
    /// told [`crate::EXIT_WITH_PARENT`] and its input is a pipe that only this process holds.
    /// Only for processes of this binary, which watch that pipe.
    pub fn exit_with_parent(mut self) -> Program {
        self.command.env(crate::EXIT_WITH_PARENT, "1");
        self.input = Input::Lifeline;
        self
    }

    /// The child's input is typed with [`Child::type_line`].
    pub fn typed_input(mut self) -> Program {
        self.input = Input::Typed;
        self
    }

    pub fn stop_on_drop(mut self, stop: StopOnDrop) -> Program {
        self.stop = stop;
        self
    }

    /// The program and its arguments as one line, for messages.
    pub fn shown(&self) -> String {
        self.shown.join(" ")
    }

    /// The command as built so far, its input set (output left to the caller), for a caller
    /// that runs it its own way (`tokio::process::Command::from` it to read the output as it
    /// comes). With [`Program::exit_with_parent`], keep the child's stdin open as long as it
    /// is to live: closing it tells the child to leave.
    pub fn into_command(mut self) -> Command {
        self.command.stdin(match self.input {
            Input::Closed => Stdio::null(),
            Input::Typed | Input::Lifeline => Stdio::piped(),
        });
        self.command
    }

    /// Starts the child, its standard output and error both in the file `log`.
    pub fn spawn_to_log(self, log: &Path) -> anyhow::Result<Child> {
        let out = File::create(log)
            .with_context(|| format!("cannot create the log {}", log.display()))?;
        let err = out.try_clone()?;
        self.spawn_with(out, err, log.to_owned(), log.to_owned())
    }

    /// Starts the child, its standard output in the file `stdout`, its errors in `stderr`.
    pub fn spawn_to_files(self, stdout: &Path, stderr: &Path) -> anyhow::Result<Child> {
        let create = |path: &Path| {
            File::create(path).with_context(|| format!("cannot create {}", path.display()))
        };
        let (out, err) = (create(stdout)?, create(stderr)?);
        self.spawn_with(out, err, stdout.to_owned(), stderr.to_owned())
    }

    fn spawn_with(
        self,
        out: File,
        err: File,
        stdout: PathBuf,
        stderr: PathBuf,
    ) -> anyhow::Result<Child> {
        let shown = self.shown();
        let (name, input, stop) = (self.name.clone(), self.input, self.stop);
        let mut command = self.into_command();
        let mut process = command
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        Ok(Child {
            name,
            stdin: process.stdin.take(),
            typed: input == Input::Typed,
            process: Some(process),
            stdout,
            stderr,
            stop,
        })
    }

    /// Runs the program to its end, typing `input` (one line) if given; what it printed.
    /// A failure is an error that quotes the program's own error output.
    pub fn run_to_end(self, input: Option<&str>) -> anyhow::Result<String> {
        let shown = self.shown();
        let mut command = self.typed_input().into_command();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        // Without input, the pipe is closed here: the program reads the end of its input.
        if let (Some(mut stdin), Some(text)) = (child.stdin.take(), input) {
            writeln!(stdin, "{text}")?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "`{shown}` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A running child (see [`Program`]); stopped as its [`StopOnDrop`] says when dropped.
pub struct Child {
    name: String,
    /// `None` once killed or seen to exit.
    process: Option<std::process::Child>,
    /// The input typed into, or the lifeline: held until the child is dropped.
    stdin: Option<ChildStdin>,
    typed: bool,
    stdout: PathBuf,
    stderr: PathBuf,
    stop: StopOnDrop,
}

impl Child {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id until the child is killed or seen to exit.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.id())
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// Everything the child has printed so far (empty if the file cannot be read).
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Types one line into the child's input (started with [`Program::typed_input`]).
    pub fn type_line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .filter(|_| self.typed)
            .with_context(|| format!("{} was not started to be typed into", self.name))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Whether the child is still there (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(process) => process.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// SIGKILL: the child dies at once, the way a crash looks; reaped before this returns.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// SIGTERM: asks the child to stop cleanly, the way an operator or systemd does.
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// SIGSTOP: the child stops dead with its sockets open, sending nothing more, not even a
    /// close (as when its machine loses power). [`Child::kill`] still ends it.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Sends the signal `name` (`TERM`, `STOP`, `CONT`, …) with kill(1): `unsafe` is
    /// forbidden here, and the standard library sends only SIGKILL. Nothing is sent to a
    /// child already killed or exited.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .context("cannot run kill(1)")?;
        if !status.success() {
            bail!("cannot send SIG{name} to {}", self.name);
        }
        Ok(())
    }

    /// Waits up to `limit` for the child to end by itself; its exit code (-1 when a signal
    /// ended it).
    pub fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<i32> {
        let name = self.name.clone();
        let process = self
            .process
            .as_mut()
            .with_context(|| format!("{name} was already stopped"))?;
        let status = wait_for(
            &format!("{name} to exit"),
            limit,
            || Ok(process.try_wait()?),
        )?;
        self.process = None;
        Ok(status.code().unwrap_or(-1))
    }

    /// Stops the child as its [`StopOnDrop`] says, now.
    pub fn stop(&mut self) {
        let grace = match self.stop {
            StopOnDrop::Kill => return self.kill(),
            StopOnDrop::Terminate { grace } => grace,
        };
        if self.process.is_none() {
            return;
        }
        let _ = self.signal("TERM");
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Some(Ok(Some(_))) = self.process.as_mut().map(|p| p.try_wait()) {
                self.process = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log::warn!("{} did not stop within {grace:?}; killing it", self.name);
        self.kill();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::wait::wait_until;

    fn sh(script: &str) -> Program {
        Program::new("sh").args(["-c", script])
    }

    fn gone(pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_childs_output_lands_in_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = sh("echo printed; echo complained >&2; exit 3")
            .named("talker")
            .spawn_to_files(&out, &err)
            .unwrap();
        assert_eq!(child.name(), "talker");
        assert_eq!(child.wait_exit(Duration::from_secs(10)).unwrap(), 3);
        assert_eq!(child.stdout_text(), "printed\n");
        assert_eq!(child.stderr_text(), "complained\n");
        assert_eq!(child.pid(), None);
        assert!(!child.is_running());

        let log = dir.path().join("both.log");
        let mut both = sh("echo one; echo two >&2").spawn_to_log(&log).unwrap();
        both.wait_exit(Duration::from_secs(10)).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn a_child_reads_what_is_typed_and_is_told_to_exit_with_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let mut typed = sh("read line; echo \"got $line\"")
            .typed_input()
            .spawn_to_files(&out, &err)
            .unwrap();
        typed.type_line("hello").unwrap();
        typed.wait_exit(Duration::from_secs(10)).unwrap();
        assert_eq!(typed.stdout_text(), "got hello\n");

        let log = dir.path().join("lifeline.log");
        let variable = crate::EXIT_WITH_PARENT;
        let mut held = sh(&format!(
            "echo \"${variable}\"; read nothing; echo unreachable"
        ))
        .exit_with_parent()
        .spawn_to_log(&log)
        .unwrap();
        assert!(held.type_line("x").is_err(), "a lifeline is not typed into");
        wait_until_printed(&held, "1\n");
        assert!(
            held.is_running(),
            "the lifeline stays open while the parent lives"
        );
    }

    fn wait_until_printed(child: &Child, text: &str) {
        wait_until("the child's output", Duration::from_secs(10), || {
            Ok(child.stdout_text() == text)
        })
        .unwrap();
    }

    #[test]
    fn a_dropped_child_is_killed_or_terminated_as_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let killed = sh("exec sleep 30").spawn_to_log(&log).unwrap();
        let pid = killed.pid().unwrap();
        drop(killed);
        assert!(gone(pid), "killed and reaped on drop");

        let graceful = StopOnDrop::Terminate {
            grace: Duration::from_secs(20),
        };
        let began = Instant::now();
        let terminated = sh("exec sleep 30")
            .stop_on_drop(graceful)
            .spawn_to_log(&log)
            .unwrap();
        let pid = terminated.pid().unwrap();
        drop(terminated);
        assert!(gone(pid));
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "SIGTERM ended it"
        );

        let stubborn = sh("trap '' TERM; echo ready; exec sleep 30")
            .stop_on_drop(StopOnDrop::Terminate {
                grace: Duration::from_millis(300),
            })
            .spawn_to_log(&log)
            .unwrap();
        wait_until_printed(&stubborn, "ready\n");
        let pid = stubborn.pid().unwrap();
        drop(stubborn);
        assert!(gone(pid), "SIGKILL after the grace");
    }

    #[test]
    fn signals_freeze_and_terminate_a_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = sh("exec sleep 30")
            .spawn_to_log(&dir.path().join("log"))
            .unwrap();
        let pid = child.pid().unwrap();
        child.freeze().unwrap();
        wait_until("the child to be stopped", Duration::from_secs(10), || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
            Ok(stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T')))
        })
        .unwrap();
        child.signal("CONT").unwrap();
        child.terminate().unwrap();
        assert_eq!(child.wait_exit(Duration::from_secs(10)).unwrap(), -1);
        assert!(
            child.terminate().is_ok(),
            "nothing is sent to a child that ended"
        );
        child.kill();
    }

    #[test]
    fn a_run_to_the_end_gives_the_output_or_the_error() {
        let printed = sh("read word; echo \"said $word\"")
            .run_to_end(Some("hi"))
            .unwrap();
        assert_eq!(printed, "said hi\n");
        assert_eq!(sh("cat").run_to_end(None).unwrap(), "");
        let error = sh("echo 'no such operator' >&2; exit 2")
            .run_to_end(None)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "`sh -c echo 'no such operator' >&2; exit 2` failed: no such operator"
        );
    }
}
