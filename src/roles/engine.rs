//! `evcharge engine`.

use crate::actors::engine::{serve_health_checks, Action};
use crate::actors::Engine;
use crate::bus::{Bus, StartAt};
use crate::configuration::Settings;
use crate::supply_log::SupplyLog;
use actix::{Actor, Addr};
use anyhow::Context;
use std::io::BufRead;
use tokio::net::TcpListener;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let engine = start(&settings).await?;
    super::serve_control(&settings, "engine", Some(engine.clone()))?;
    if settings.engine.interactive {
        read_keyboard(engine);
    }
    super::shutdown_signal().await;
    Ok(())
}

/// Starts the engine actor, its health-check socket and its Kafka consumer; returns the
/// engine and the address the health checks are served on.
pub async fn start(settings: &Settings) -> anyhow::Result<Addr<Engine>> {
    let (engine, _) = start_with_address(settings).await?;
    Ok(engine)
}

pub async fn start_with_address(
    settings: &Settings,
) -> anyhow::Result<(Addr<Engine>, std::net::SocketAddr)> {
    let cp_id = settings.require_cp_id()?.to_owned();
    let bus = Bus::new(&settings.kafka, &format!("engine-{cp_id}"));
    let publisher = bus.publisher()?;
    let data = settings.engine_data();
    let log = SupplyLog::open(&data).with_context(|| {
        format!(
            "cannot open the engine's data in {} (is another engine for {cp_id} running here?)",
            data.display()
        )
    })?;
    let engine = Engine::new(cp_id.clone(), settings.engine.clone(), publisher, log).start();

    let listener = TcpListener::bind(&settings.engine.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for health checks on {}",
                settings.engine.listen
            )
        })?;
    let address = listener.local_addr()?;
    log::info!("{cp_id}: answering health checks on {address}");
    serve_health_checks(listener, cp_id.clone(), engine.clone());

    let recipient = engine.clone().recipient();
    actix::spawn(async move {
        if let Err(e) = bus.ensure_topics().await {
            log::error!("cannot prepare the Kafka topics: {e}");
            return;
        }
        let group = format!("evcharge-engine-{cp_id}");
        let topic = bus.topics().cp_commands.clone();
        if let Err(e) = bus.spawn_consumer(&group, &topic, StartAt::Earliest, recipient) {
            log::error!("cannot consume from Kafka: {e}");
        }
    });
    Ok((engine, address))
}

/// Reads keyboard commands on a thread of its own and hands them to the engine.
pub fn read_keyboard(engine: Addr<Engine>) {
    println!("engine keys: p = plug in, u = unplug, k = KO, o = OK, s = status");
    let system = actix::System::current();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let action = match line.trim() {
                "p" | "plug" => Action::PlugIn,
                "u" | "unplug" => Action::Unplug,
                "k" | "ko" => Action::Fault("simulated fault (keyboard)".into()),
                "o" | "ok" => Action::Clear,
                "s" | "status" | "" => Action::Status,
                other => {
                    println!("unknown key {other:?}: p, u, k, o or s");
                    continue;
                }
            };
            let engine = engine.clone();
            system.arbiter().spawn(async move {
                match engine.send(action).await {
                    Ok(Ok(status)) => println!("{status}"),
                    Ok(Err(why)) => println!("cannot: {why}"),
                    Err(e) => println!("the engine is not answering: {e}"),
                }
            });
        }
    });
}
