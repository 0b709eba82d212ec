//! `evcharge gateway`: OCPP 1.6J charge points join the network through this process (see
//! docs/OCPP.md). One consumer of `cp.commands` serves every connected charge point.

use crate::actors::fleet::key_router::KeyRouter;
use crate::actors::gateway::{CentralAccess, ChargerSettings, Gateway, GatewayParts};
use crate::bus::{Bus, StartAt};
use crate::configuration::Settings;
use crate::messages::CpCommand;
use crate::proof::SharedKeys;
use actix::Actor;
use std::sync::Arc;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let gateway_settings = &settings.gateway;
    // Bound first: a bad address stops the process before anything else starts.
    let listener =
        crate::web::gateway::bind(&gateway_settings.listen, super::tls::listeners(&settings)?)?;
    // Per charge point: its WebSocket and its link to the central.
    super::raise_open_files_limit(2 * gateway_settings.max_connections as u64 + 1024);
    let keys = SharedKeys::default();
    let bus = Bus::new(&settings.kafka, "gateway").with_keys(Arc::new(keys.clone()));
    bus.ensure_topics().await?;
    let publisher = bus.publisher()?;
    let router = KeyRouter::<CpCommand>::default().start();
    let gateway = Gateway::new(GatewayParts {
        settings: ChargerSettings {
            report_period: settings.monitor.health_period,
            engine_heartbeat: settings.engine.heartbeat,
            heartbeat_interval: gateway_settings.heartbeat_interval,
        },
        central: CentralAccess {
            addresses: settings.monitor.central.clone(),
            answer_timeout: settings.monitor.answer_timeout,
            patience: settings.monitor.central_patience,
            connector: super::tls::central_link(&settings)?,
        },
        publisher,
        ledger: bus.ocpp_ledger(),
        keys,
        router: router.clone(),
        max_connections: gateway_settings.max_connections,
        profile: if settings.tls.cert.is_some() { 2 } else { 1 },
    });
    let (holds, mut held) = tokio::sync::watch::channel(false);
    let topic = bus.topics().cp_commands.clone();
    // Commands from before this start are for connections gone with it.
    bus.spawn_consumer(
        &format!("evcharge-gateway-{}", gateway_settings.name),
        &topic,
        StartAt::Latest,
        router.recipient(),
        Some(holds),
    )?;
    let taking = gateway.clone();
    actix::spawn(async move {
        while held.changed().await.is_ok() {
            let holds = *held.borrow_and_update();
            if holds {
                log::info!("gateway: the central's commands reach this gateway");
            }
            taking.set_taking_commands(holds);
        }
    });
    crate::web::gateway::serve(listener, gateway, gateway_settings.ping_interval)?;
    super::shutdown_signal().await;
    Ok(())
}
