//! A CP's monitor: checks its engine every period and reports to the central at once.

use crate::configuration::{CpSettings, MonitorSettings};
use crate::link::{FrameClient, LinkError};
use actix::prelude::*;

/// What the last health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineCheck {
    Ok,
    Ko(String),
    Unreachable(String),
}

/// How the last exchange with the central went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CentralLink {
    /// Reported; the central shows this state.
    Reported(String),
    Refused(String),
    Unreachable(String),
}

pub struct Monitor {
    cp: CpSettings,
    settings: MonitorSettings,
    /// Taken while a check is in flight, so that checks never overlap.
    clients: Option<(FrameClient, FrameClient)>,
    authenticated: bool,
    last_engine: Option<EngineCheck>,
    last_central: Option<CentralLink>,
    /// Since when the central has refused this monitor without a break.
    refused_since: Option<std::time::Instant>,
    /// Told why, when the monitor gives up.
    gave_up: Option<crate::roles::Refusals>,
}

impl Monitor {
    /// `gave_up` hears why, if the central refuses this monitor for good.
    pub fn new(
        cp: CpSettings,
        settings: MonitorSettings,
        gave_up: crate::roles::Refusals,
    ) -> Monitor {
        let engine = FrameClient::new(settings.engine.clone(), settings.answer_timeout);
        let central = FrameClient::new(settings.central.clone(), settings.answer_timeout);
        Monitor {
            cp,
            settings,
            clients: Some((engine, central)),
            authenticated: false,
            last_engine: None,
            last_central: None,
            refused_since: None,
            gave_up: Some(gave_up),
        }
    }

    /// Stops for good once the central has refused this monitor for the whole grace period.
    fn check_refusal(&mut self, link: &CentralLink) {
        let CentralLink::Refused(why) = link else {
            self.refused_since = None;
            return;
        };
        let since = *self
            .refused_since
            .get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= self.settings.refusal_grace {
            if let Some(gave_up) = self.gave_up.take() {
                let _ = gave_up.send(format!(
                    "the central refuses {} for {:?}: {why}",
                    self.cp.id, self.settings.refusal_grace
                ));
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let Some((mut engine, mut central)) = self.clients.take() else {
            return;
        };
        let cp = self.cp.clone();
        let authenticated = self.authenticated;
        let check = async move {
            let health = check_engine(&mut engine, &cp.id).await;
            let (link, authenticated) =
                report_to_central(&mut central, &cp, authenticated, &health).await;
            (engine, central, health, link, authenticated)
        };
        ctx.spawn(check.into_actor(self).map(
            |(engine, central, health, link, authenticated), act, _| {
                act.note_engine(&health);
                act.note_central(&link, central.addr());
                act.check_refusal(&link);
                act.authenticated = authenticated;
                act.clients = Some((engine, central));
            },
        ));
    }

    /// Logs a change in the engine's health, once.
    fn note_engine(&mut self, health: &EngineCheck) {
        if self.last_engine.as_ref() == Some(health) {
            return;
        }
        match health {
            EngineCheck::Ok => log::info!("{}: engine OK", self.cp.id),
            EngineCheck::Ko(why) => log::warn!("{}: engine KO: {why}", self.cp.id),
            EngineCheck::Unreachable(why) => {
                log::warn!(
                    "{}: engine not answering ({why}); reported as a fault",
                    self.cp.id
                )
            }
        }
        self.last_engine = Some(health.clone());
    }

    /// Logs a change in the link with the central, once.
    fn note_central(&mut self, link: &CentralLink, addr: &str) {
        let same_kind = matches!(
            (&self.last_central, link),
            (Some(CentralLink::Reported(_)), CentralLink::Reported(_))
                | (
                    Some(CentralLink::Unreachable(_)),
                    CentralLink::Unreachable(_)
                )
        );
        if self.last_central.as_ref() == Some(link) || same_kind {
            if let (Some(CentralLink::Reported(old)), CentralLink::Reported(new)) =
                (&self.last_central, link)
            {
                if old != new {
                    log::info!("{}: the central shows {new}", self.cp.id);
                }
            }
            self.last_central = Some(link.clone());
            return;
        }
        match link {
            CentralLink::Reported(state) => log::info!(
                "{}: connected to the central at {addr}, which shows {state}",
                self.cp.id
            ),
            CentralLink::Refused(why) => {
                log::error!(
                    "{}: the central at {addr} refused this CP: {why}",
                    self.cp.id
                )
            }
            CentralLink::Unreachable(why) => log::warn!(
                "{}: cannot reach the central at {addr} ({why}); retrying",
                self.cp.id
            ),
        }
        self.last_central = Some(link.clone());
    }
}

async fn check_engine(engine: &mut FrameClient, cp_id: &str) -> EngineCheck {
    match engine.request(vec!["HEALTH".into(), cp_id.into()]).await {
        Ok(reply) => match reply.fields.as_slice() {
            [ok, _] if reply.accepted && ok == "OK" => EngineCheck::Ok,
            [ko, _, why @ ..] if reply.accepted && ko == "KO" => EngineCheck::Ko(why.join(" ")),
            other => EngineCheck::Ko(format!("unexpected health answer: {}", other.join("#"))),
        },
        Err(e) => EngineCheck::Unreachable(e.to_string()),
    }
}

/// Authenticates if needed, then reports the engine's health. Returns how it went and
/// whether the link is authenticated afterwards.
async fn report_to_central(
    central: &mut FrameClient,
    cp: &CpSettings,
    mut authenticated: bool,
    health: &EngineCheck,
) -> (CentralLink, bool) {
    let unreachable = |e: LinkError| (CentralLink::Unreachable(e.to_string()), false);
    if !authenticated || !central.is_connected() {
        let auth = vec![
            "AUTH".into(),
            cp.id.clone(),
            cp.location.clone(),
            cp.price_eur_kwh.to_string(),
        ];
        match central.request(auth).await {
            Ok(reply) if reply.accepted => authenticated = true,
            Ok(reply) => {
                return (
                    CentralLink::Refused(reply.fields.get(1).cloned().unwrap_or_default()),
                    false,
                )
            }
            Err(e) => return unreachable(e),
        }
    }
    let mut status = vec!["STATUS".to_string(), cp.id.clone()];
    match health {
        EngineCheck::Ok => status.push("OK".into()),
        EngineCheck::Ko(why) | EngineCheck::Unreachable(why) => {
            status.push("KO".into());
            status.push(why.replace('#', " "));
        }
    }
    match central.request(status).await {
        Ok(reply) if reply.accepted => (
            CentralLink::Reported(reply.fields.get(2).cloned().unwrap_or_default()),
            authenticated,
        ),
        Ok(reply) => (
            CentralLink::Refused(reply.fields.get(1).cloned().unwrap_or_default()),
            false,
        ),
        Err(e) => unreachable(e),
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        log::info!(
            "{}: monitoring the engine at {} every {:?}, reporting to the central at {}",
            self.cp.id,
            self.settings.engine,
            self.settings.health_period,
            self.settings.central
        );
        self.tick(ctx);
        ctx.run_interval(self.settings.health_period, |act, ctx| act.tick(ctx));
    }
}
