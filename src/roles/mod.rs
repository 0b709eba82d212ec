//! One runner per subcommand: each reads its settings, starts its actors and runs until
//! stopped.

pub mod bench;
pub mod broker;
pub mod central;
pub mod cp;
pub mod demo;
pub mod driver;
pub mod engine;
pub mod fleet;
pub mod gateway;
pub mod monitor;
pub mod operator;
pub mod register;
pub mod tls;

/// Starts the process's control endpoint when `control.listen` is set.
pub fn serve_control(
    settings: &crate::configuration::Settings,
    role: &'static str,
    engine: Option<actix::Addr<crate::actors::Engine>>,
) -> anyhow::Result<()> {
    let Some(listen) = &settings.control.listen else {
        return Ok(());
    };
    let id = match role {
        "driver" => settings.driver.id.clone(),
        _ => settings.cp.id.clone(),
    };
    let target = crate::web::control::ControlTarget {
        role,
        id,
        allow_crash: settings.control.allow_crash,
        engine,
    };
    let token = control_token(&settings.control, &default_token_file(role))?;
    crate::web::control::serve(listen, &token, target)?;
    Ok(())
}

/// Where a process keeps the control token it made itself: a file of its own in the
/// temporary directory (created afresh, this user's alone).
pub fn default_token_file(role: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "evcharge-{role}-{}.control-token",
        std::process::id()
    ))
}

/// The token that opens this process's control endpoints: `control.token`, else the one in
/// `control.token_file` (a new one written there when the file does not exist yet), else a
/// new one written to `made_here`. The log names the file, never the token.
pub fn control_token(
    control: &crate::configuration::ControlSettings,
    made_here: &std::path::Path,
) -> anyhow::Result<String> {
    use crate::accounts::{credentials::new_secret, secret_file};
    use anyhow::Context;
    if let Some(token) = control.given_token() {
        return Ok(token.to_owned());
    }
    let file = control.token_file.as_deref().unwrap_or(made_here);
    let read = secret_file::read(file)
        .with_context(|| format!("cannot read the control token in {}", file.display()))?;
    if let Some(token) = read {
        if token.chars().count() < crate::configuration::MIN_CONTROL_TOKEN_LEN {
            anyhow::bail!(
                "the control token in {} is too short: at least {} characters",
                file.display(),
                crate::configuration::MIN_CONTROL_TOKEN_LEN
            );
        }
        log::info!("control token read from {}", file.display());
        return Ok(token);
    }
    let token = new_secret();
    secret_file::write(file, &token)
        .with_context(|| format!("cannot write the control token to {}", file.display()))?;
    log::info!(
        "control token written to {} (readable by this user only)",
        file.display()
    );
    Ok(token)
}

/// Binds the monitor page's address when `monitor.http` is set; serve it with
/// [`crate::web::monitor::serve`] once the monitor runs.
pub fn bind_monitor_page(
    settings: &crate::configuration::Settings,
) -> anyhow::Result<Option<crate::web::monitor::PageListener>> {
    let Some(address) = settings.monitor.http.as_deref() else {
        return Ok(None);
    };
    let tls = tls::listeners(settings)?;
    crate::web::monitor::bind(address, tls).map(Some)
}

pub use crate::actors::Refusals;

/// Runs until the process is asked to stop (Ok) or one of its parts is refused (Err).
pub async fn until_stopped_or_refused(
    mut refused: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<()> {
    tokio::select! {
        _ = shutdown_signal() => Ok(()),
        Some(why) = refused.recv() => Err(anyhow::anyhow!("{why}; stopping")),
    }
}

/// The central's answer to a probing hello.
pub enum Claim {
    Welcome,
    InUse(String),
}

/// Makes sure no other instance holds this id before the caller joins its consumer group.
/// `ask` sends one probing hello and waits for the answer. A refusal is retried for `grace`,
/// long enough for a crashed predecessor to be forgotten; a central that does not answer is
/// not waited for.
pub async fn claim_id<'a, F>(
    who: &str,
    grace: std::time::Duration,
    pause: std::time::Duration,
    mut ask: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> futures_util::future::LocalBoxFuture<
        'a,
        Result<Option<Claim>, crate::bus::BusError>,
    >,
{
    let mut refused_since: Option<std::time::Instant> = None;
    loop {
        match ask().await? {
            Some(Claim::Welcome) => {
                log::info!("{who}: the central welcomes this instance");
                return Ok(());
            }
            Some(Claim::InUse(detail)) => {
                let since = *refused_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= grace {
                    anyhow::bail!("{detail}: this one is refused");
                }
                log::warn!("{detail}; trying again in case it has just stopped");
                tokio::time::sleep(pause).await;
            }
            None => {
                log::warn!(
                    "{who}: the central did not answer; going on without checking that no other \
                     instance runs (if this goes on, check that its secret is the one registered: \
                     the central sets aside records it cannot prove, on the dead-letter topic)"
                );
                return Ok(());
            }
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Lets this process open at least `wanted` files and sockets if it may: thousands of CPs
/// each hold a few connections. Says so plainly when the system will not allow it.
/// The CP a monitor speaks for: its id and the secret issued at its registration.
fn cp_identity(
    settings: &crate::configuration::Settings,
) -> anyhow::Result<crate::actors::cp::monitor::CpIdentity> {
    Ok(crate::actors::cp::monitor::CpIdentity {
        id: settings.require_cp_id()?.to_owned(),
        secret: settings.require_cp_secret()?,
    })
}

pub fn raise_open_files_limit(wanted: u64) {
    use rlimit::Resource;
    let Ok((soft, hard)) = Resource::NOFILE.get() else {
        return;
    };
    if soft >= wanted {
        return;
    }
    // Raising the hard limit needs privileges; without them, take what the hard limit gives.
    if Resource::NOFILE.set(wanted, hard.max(wanted)).is_ok() {
        return;
    }
    let _ = Resource::NOFILE.set(hard, hard);
    if hard < wanted {
        log::warn!(
            "this process may open only {hard} files and sockets; about {wanted} are needed \
             (raise the limit with `ulimit -n {wanted}` as root)"
        );
    }
}
