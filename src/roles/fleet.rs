//! `evcharge fleet cps|drivers|ocpp`: many simulated charging points, many drivers, or many
//! OCPP charge points in one process, for benchmarks and load tests (see docs/PERFORMANCE.md).

use crate::actors::cp::engine::TakingCommands;
use crate::actors::cp::health_checks::serve_health_checks;
use crate::actors::fleet::cp_fleet::{health_target, CpFleet, EngineDirectory, FleetParts};
use crate::actors::fleet::driver_fleet::DriverFleet;
use crate::actors::fleet::key_router::KeyRouter;
use crate::actors::fleet::ocpp_fleet::{FleetPlan, OcppFleet};
use crate::bus::{Bus, StartAt};
use crate::configuration::Settings;
use crate::messages::{CpCommand, DriverUpdate, Secret};
use crate::proof::OwnKeys;
use crate::store::GroupFlush;
use actix::Actor;
use anyhow::Context;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Which entities a fleet runs: `count` of them numbered from `first`, e.g. CP00001.
#[derive(Debug, Clone)]
pub struct Numbering {
    pub prefix: String,
    pub first: u32,
    pub count: u32,
}

impl Numbering {
    /// The ids, with five digits at least so that they sort as numbers do.
    pub fn ids(&self) -> Vec<String> {
        (self.first..self.first + self.count)
            .map(|n| format!("{}{n:05}", self.prefix))
            .collect()
    }
}

/// The secret of every CP or driver in `ids`, from a file of `ID SECRET` lines.
fn read_secrets(path: &Path, ids: &[String]) -> anyhow::Result<HashMap<String, Secret>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secrets in {}", path.display()))?;
    let secrets: HashMap<String, Secret> = text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, secret)| (id.to_owned(), Secret::new(secret.trim())))
        .collect();
    if let Some(missing) = ids.iter().find(|id| !secrets.contains_key(*id)) {
        anyhow::bail!("{} has no secret for {missing}", path.display());
    }
    Ok(secrets)
}

/// The consumer group of a fleet, named after its first member: one group per fleet, so
/// that fleets side by side each get every record.
fn group_of(ids: &[String]) -> String {
    format!("evcharge-fleet-{}", ids.first().map_or("", |id| id))
}

/// A control endpoint to serve: its address, bound before the fleet starts (so that a bad
/// address stops the process at once), and the token that opens it.
struct Control {
    address: String,
    listener: std::net::TcpListener,
    token: String,
}

fn bind_control(settings: &Settings, address: Option<String>) -> anyhow::Result<Option<Control>> {
    let Some(address) = address else {
        return Ok(None);
    };
    let listener = crate::web::control::fleet::bind(&address)?;
    let token = super::control_token(&settings.control, &super::default_token_file("fleet"))?;
    Ok(Some(Control {
        address,
        listener,
        token,
    }))
}

/// Runs `cps.count` charging points until stopped.
pub async fn run_cps(
    settings: Settings,
    cps: Numbering,
    secrets: &Path,
    data: Option<PathBuf>,
    control: Option<String>,
) -> anyhow::Result<()> {
    let ids = cps.ids();
    let secrets = read_secrets(secrets, &ids)?;
    let control = bind_control(&settings, control)?;
    // Per CP: the monitor's two links and the engine end of one of them.
    super::raise_open_files_limit(3 * ids.len() as u64 + 1024);
    let central_link = super::tls::central_link(&settings)?;
    let keys = secrets
        .iter()
        .fold(OwnKeys::default(), |keys, (id, secret)| {
            keys.cp(id, secret.expose())
        });
    let bus = Bus::new(&settings.kafka, "fleet").with_keys(Arc::new(keys));
    bus.ensure_topics().await?;
    let publisher = bus.publisher()?;
    let data = data.unwrap_or_else(|| {
        PathBuf::from(format!(
            "evcharge-data/fleet-{}",
            ids.first().map_or("", |id| id)
        ))
    });
    let db = crate::store::open(&data).with_context(|| {
        format!(
            "cannot open the fleet's data in {} (is another fleet using it?)",
            data.display()
        )
    })?;
    let listener = super::engine::bind_health_checks(&settings.engine).await?;
    let mut monitor = settings.monitor.clone();
    monitor.engine = listener.local_addr()?.to_string();
    log::info!("fleet: engines answer health checks on {}", monitor.engine);
    let engines = EngineDirectory::default();
    let directory = engines.clone();
    serve_health_checks(listener, move |id: &str| health_target(&directory, id));

    let router = KeyRouter::<CpCommand>::default().start();
    let (refusals, mut refused) = tokio::sync::mpsc::unbounded_channel();
    let fleet = CpFleet::new(
        FleetParts {
            engine: settings.engine.clone(),
            monitor,
            secrets,
            publisher,
            flush: GroupFlush::start(db.clone()),
            db,
            router: router.clone(),
            engines,
            refusals,
            central_link,
        },
        ids.clone(),
    )
    .start();
    let group = group_of(&ids);
    let (holds, mut held) = tokio::sync::watch::channel(false);
    let topic = bus.topics().cp_commands.clone();
    bus.spawn_consumer(
        &group,
        &topic,
        StartAt::Earliest,
        router.recipient(),
        Some(holds),
    )?;
    let taking = fleet.clone();
    actix::spawn(async move {
        while held.changed().await.is_ok() {
            let holds = *held.borrow_and_update();
            taking.do_send(TakingCommands(holds));
        }
    });
    if let Some(control) = control {
        let port = crate::web::control::fleet::serve_cps(control.listener, &control.token, fleet)?;
        log::info!(
            "fleet control on http://{}:{port}/fleet/status",
            crate::web::shown_host(&control.address)
        );
    }
    tokio::select! {
        _ = super::shutdown_signal() => Ok(()),
        Some(why) = refused.recv() => {
            // One CP refused (its id is live elsewhere) does not stop the others.
            log::error!("fleet: {why}");
            std::future::pending::<anyhow::Result<()>>().await
        }
    }
}

/// Runs `drivers.count` drivers, driver `i` paired with CP `i` of `cps`, until stopped.
pub async fn run_drivers(
    settings: Settings,
    drivers: Numbering,
    secrets: &Path,
    cps: Numbering,
    control: Option<String>,
) -> anyhow::Result<()> {
    let ids = drivers.ids();
    let keys = read_secrets(secrets, &ids)?
        .iter()
        .fold(OwnKeys::default(), |keys, (id, secret)| {
            keys.driver(id, secret.expose())
        });
    let control = bind_control(&settings, control)?;
    let bus = Bus::new(&settings.kafka, "fleet").with_keys(Arc::new(keys));
    bus.ensure_topics().await?;
    let publisher = bus.publisher()?;
    let router = KeyRouter::<DriverUpdate>::default().start();
    let fleet = DriverFleet::new(
        ids.clone(),
        cps.ids(),
        settings.driver.heartbeat,
        publisher,
        router.clone(),
    )
    .start();
    let group = group_of(&ids);
    let (holds, mut held) = tokio::sync::watch::channel(false);
    let topic = bus.topics().driver_updates.clone();
    // Answers to requests made before this start are of no use to anyone.
    bus.spawn_consumer(
        &group,
        &topic,
        StartAt::Latest,
        router.recipient(),
        Some(holds),
    )?;
    let consuming = Arc::new(AtomicBool::new(false));
    let flag = consuming.clone();
    actix::spawn(async move {
        while held.changed().await.is_ok() {
            let holds = *held.borrow_and_update();
            if holds {
                log::info!("fleet: the drivers' consumer holds its partitions");
            }
            flag.store(holds, Ordering::Relaxed);
        }
    });
    if let Some(control) = control {
        let port = crate::web::control::fleet::serve_drivers(
            control.listener,
            &control.token,
            fleet,
            consuming,
        )?;
        log::info!(
            "fleet control on http://{}:{port}/fleet/status",
            crate::web::shown_host(&control.address)
        );
    }
    super::shutdown_signal().await;
    Ok(())
}

/// Runs `chargers.count` OCPP charge points against a gateway until stopped.
pub async fn run_ocpp(
    settings: Settings,
    chargers: Numbering,
    args: &crate::cli::FleetOcppArgs,
) -> anyhow::Result<()> {
    let ids = chargers.ids();
    let secrets = read_secrets(&args.secrets, &ids)?;
    let control = bind_control(&settings, args.control.clone())?;
    // One WebSocket a charger.
    super::raise_open_files_limit(ids.len() as u64 + 1024);
    log::info!(
        "fleet: {} OCPP charge points joining {} at {} a second",
        ids.len(),
        args.gateway,
        args.connect_rate
    );
    let fleet = OcppFleet::start(
        ids,
        secrets,
        FleetPlan {
            gateway: args.gateway.clone(),
            meter_interval: args.meter_interval.into(),
            connect_rate: args.connect_rate,
        },
    );
    if let Some(control) = control {
        let port = crate::web::control::fleet::serve_ocpp(control.listener, &control.token, fleet)?;
        log::info!(
            "fleet control on http://{}:{port}/fleet/status",
            crate::web::shown_host(&control.address)
        );
    }
    super::shutdown_signal().await;
    Ok(())
}
