//! `evcharge engine`.

use super::Claim;
use crate::actors::cp::engine::{Action, TakingCommands};
use crate::actors::cp::health_checks::serve_one_engine;
use crate::actors::Engine;
use crate::bus::{Bus, Publisher, StartAt};
use crate::configuration::{EngineSettings, Settings};
use crate::messages::{CpCommand, CpEvent};
use crate::store::supply_log::SupplyLog;
use actix::{Actor, Addr};
use anyhow::Context;
use std::io::BufRead;
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (refusals, refused) = tokio::sync::mpsc::unbounded_channel();
    let (engine, _) = start_with_address(&settings, refusals).await?;
    super::serve_control(&settings, "engine", Some(engine.clone()))?;
    if settings.engine.interactive {
        read_keyboard(engine);
    }
    super::until_stopped_or_refused(refused).await
}

/// Starts the engine actor and its health-check socket; once the central has accepted this
/// instance of the CP id, its Kafka consumer (a refusal goes to `refusals`). Returns the
/// engine and the address the health checks are served on.
pub async fn start_with_address(
    settings: &Settings,
    refusals: super::Refusals,
) -> anyhow::Result<(Addr<Engine>, std::net::SocketAddr)> {
    let cp_id = settings.require_cp_id()?.to_owned();
    // The engine proves its reports, and checks the central's commands, with its CP's key.
    let secret = settings.require_cp_secret()?;
    let keys = crate::proof::OwnKeys::default().cp(&cp_id, secret.expose());
    let bus = Bus::new(&settings.kafka, &format!("engine-{cp_id}")).with_keys(Arc::new(keys));
    let publisher = bus.publisher()?;
    let data = settings.engine_data();
    let log = SupplyLog::open(&data).with_context(|| {
        format!(
            "cannot open the engine's data in {} (is another engine for {cp_id} running here?)",
            data.display()
        )
    })?;
    let instance = uuid::Uuid::new_v4();
    let engine = Engine::new(
        cp_id.clone(),
        instance,
        settings.engine.clone(),
        publisher.clone(),
        log,
    )
    .allowing_crash(settings.control.allow_crash)
    .start();

    let listener = bind_health_checks(&settings.engine).await?;
    let address = listener.local_addr()?;
    log::info!("{cp_id}: answering health checks on {address}");
    serve_one_engine(listener, cp_id.clone(), engine.clone());

    let recipient = engine.clone().recipient();
    let engine_ready = engine.clone();
    let engine_settings = settings.engine.clone();
    actix::spawn(async move {
        if let Err(e) = bus.ensure_topics().await {
            log::error!("cannot prepare the Kafka topics: {e}");
            return;
        }
        let claimed = claim_engine_id(&bus, &publisher, &cp_id, instance, &engine_settings).await;
        if let Err(refusal) = claimed {
            let _ = refusals.send(format!("{refusal:#}"));
            return;
        }
        let group = format!("evcharge-engine-{cp_id}");
        let topic = bus.topics().cp_commands.clone();
        let (holds, mut held) = tokio::sync::watch::channel(false);
        if let Err(e) =
            bus.spawn_consumer(&group, &topic, StartAt::Earliest, recipient, Some(holds))
        {
            log::error!("cannot consume from Kafka: {e}");
            return;
        }
        // The engine is fit to serve only while commands can reach it.
        while held.changed().await.is_ok() {
            let taking = *held.borrow_and_update();
            engine_ready.do_send(TakingCommands(taking));
        }
    });
    Ok((engine, address))
}

/// Binds the engine's health-check socket, saying where if it cannot.
pub async fn bind_health_checks(settings: &EngineSettings) -> anyhow::Result<TcpListener> {
    TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen for health checks on {}", settings.listen))
}

/// Claims the CP id for this engine instance before it joins the engine's consumer group.
async fn claim_engine_id(
    bus: &Bus,
    publisher: &Publisher,
    cp_id: &str,
    instance: uuid::Uuid,
    settings: &EngineSettings,
) -> anyhow::Result<()> {
    use futures_util::FutureExt;
    let who = format!("engine {cp_id}");
    super::claim_id(&who, settings.refusal_grace, settings.heartbeat, || {
        let hello = CpEvent::EngineHello {
            cp_id: cp_id.to_owned(),
            instance,
            probe: true,
            taking_commands: false,
        };
        let is_answer = move |command: &CpCommand| match command {
            CpCommand::EngineWelcome { instance: i, .. }
            | CpCommand::EngineIdInUse { instance: i, .. } => *i == instance,
            _ => false,
        };
        let asked = bus.ask(
            &bus.topics().cp_commands,
            publisher.cp_event(hello),
            is_answer,
            settings.heartbeat * 3,
        );
        async move {
            Ok(asked.await?.map(|answer| match answer {
                CpCommand::EngineIdInUse { detail, .. } => Claim::InUse(detail),
                _ => Claim::Welcome,
            }))
        }
        .boxed_local()
    })
    .await
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
