//! `evcharge driver`.

use super::Claim;
use crate::actors::driver::session::{Errand, Output, Typed};
use crate::actors::Driver;
use crate::bus::Publisher;
use crate::bus::{Bus, StartAt};
use crate::configuration::{DriverSettings, Settings};
use crate::messages::{DriverRequest, DriverUpdate};
use actix::{Actor, Addr, AsyncContext};
use anyhow::Context;
use std::io::BufRead;
use std::path::Path;

/// What the driver was asked to do.
#[derive(Debug, Clone)]
pub enum Plan {
    One(Option<String>),
    File(std::path::PathBuf),
    Interactive,
    /// Nothing to do but serve the dashboard (`--http` alone), until stopped.
    Dashboard,
}

pub async fn run(settings: Settings, plan: Plan, json: bool) -> anyhow::Result<()> {
    let driver_id = settings.require_driver_id()?.to_owned();
    let secret = settings.require_driver_secret()?;
    let requests = match &plan {
        Plan::One(cp) => vec![cp.clone()],
        Plan::File(path) => read_plan(path)?,
        Plan::Interactive | Plan::Dashboard => Vec::new(),
    };
    // A driver with a dashboard stays for the person using it once its plan is done.
    let interactive =
        matches!(plan, Plan::Interactive | Plan::Dashboard) || settings.driver.http.is_some();
    // The dashboard answers at once, saying why nothing works while the bus is out of reach.
    let dashboard = match &settings.driver.http {
        Some(address) => {
            let tls = super::tls::listeners(&settings)?;
            let (_, slot) = crate::web::driver::serve(address, &driver_id, &tls)?;
            Some(slot)
        }
        None => None,
    };
    // The driver proves its requests, and seals its dashboard's password, with its key.
    let bus_key = crate::proof::BusKey::derive(secret.expose());
    let keys = crate::proof::OwnKeys::default().driver(&driver_id, secret.expose());
    let bus = Bus::new(&settings.kafka, &format!("driver-{driver_id}"))
        .with_keys(std::sync::Arc::new(keys));
    bus.ensure_topics().await?;
    let publisher = bus.publisher()?;
    let instance = uuid::Uuid::new_v4();
    claim_driver_id(&bus, &publisher, &driver_id, instance, &settings.driver).await?;
    let output = if json { Output::Json } else { Output::Text };
    let (done, finished) = tokio::sync::oneshot::channel();
    let driver = Driver::new(
        driver_id.clone(),
        instance,
        settings.driver.clone(),
        bus_key,
        publisher,
        Errand {
            plan: requests,
            interactive,
            output,
        },
        done,
    );
    // The consumer joins before the first request leaves, so no answer can be missed.
    let driver: Addr<Driver> = Driver::create(|ctx| {
        let group = format!("evcharge-driver-{driver_id}");
        let topic = bus.topics().driver_updates.clone();
        if let Err(e) = bus.spawn_consumer(
            &group,
            &topic,
            StartAt::Earliest,
            ctx.address().recipient(),
            None,
        ) {
            log::error!("cannot consume from Kafka: {e}");
        }
        driver
    });
    super::serve_control(&settings, "driver", None)?;
    if let Some(slot) = dashboard {
        slot.fill(driver.clone());
    }
    if matches!(plan, Plan::Interactive) {
        read_keyboard(driver);
    }
    tokio::select! {
        _ = finished => {}
        _ = super::shutdown_signal() => {}
    }
    Ok(())
}

/// Claims the driver id before joining the driver's consumer group.
async fn claim_driver_id(
    bus: &Bus,
    publisher: &Publisher,
    driver_id: &str,
    instance: uuid::Uuid,
    settings: &DriverSettings,
) -> anyhow::Result<()> {
    use futures_util::FutureExt;
    let who = format!("driver {driver_id}");
    super::claim_id(&who, settings.refusal_grace, settings.heartbeat, || {
        let hello = DriverRequest::Hello {
            driver_id: driver_id.to_owned(),
            instance,
            probe: true,
        };
        let is_answer = move |update: &DriverUpdate| match update {
            DriverUpdate::Welcome { instance: i, .. }
            | DriverUpdate::IdInUse { instance: i, .. } => *i == instance,
            _ => false,
        };
        let asked = bus.ask(
            &bus.topics().driver_updates,
            publisher.driver_request(hello),
            is_answer,
            settings.heartbeat * 3,
        );
        async move {
            Ok(asked.await?.map(|answer| match answer {
                DriverUpdate::IdInUse { detail, .. } => Claim::InUse(detail),
                _ => Claim::Welcome,
            }))
        }
        .boxed_local()
    })
    .await
}

/// One CP id per line; blank lines and `#` comments skipped; `*` or `any` means any CP.
pub fn read_plan(path: &Path) -> anyhow::Result<Vec<Option<String>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the request file {}", path.display()))?;
    let plan: Vec<Option<String>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l {
            "*" | "any" => None,
            id => Some(id.to_owned()),
        })
        .collect();
    if plan.is_empty() {
        anyhow::bail!(
            "the request file {} names no charging point",
            path.display()
        );
    }
    Ok(plan)
}

fn read_keyboard(driver: Addr<Driver>) {
    println!("driver commands: list, request [CP], stop, quit");
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            let typed = match (words.next(), words.next()) {
                (Some("list" | "l"), _) => Typed::List,
                (Some("request" | "r"), cp) => Typed::Request(cp.map(str::to_owned)),
                (Some("stop" | "s"), _) => Typed::Stop,
                (Some("quit" | "q"), _) => Typed::Quit,
                (None, _) => continue,
                (Some(other), _) => {
                    println!("unknown command {other:?}: list, request [CP], stop, quit");
                    continue;
                }
            };
            driver.do_send(typed);
        }
    });
}
