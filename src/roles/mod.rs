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
pub mod monitor;
pub mod operator;
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
    crate::web::control::serve(listen, target)?;
    Ok(())
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
                    "{who}: the central did not answer; going on without checking that no other instance runs"
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
