//! One browser's WebSocket on the monitor page: a snapshot first, then every check and
//! fault change as the [`Monitor`] publishes them. Read-only: what the browser sends, other
//! than control frames, is ignored.

use crate::actors::cp::monitor::{MonitorEvent, MonitorStatus, UnwatchHealth, WatchHealth};
use crate::actors::Monitor;
use actix::prelude::*;
use actix_web_actors::ws;
use std::time::{Duration, Instant};

/// How often the browser is pinged.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A browser silent this long (not even a pong) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

pub struct MonitorSocket {
    monitor: Addr<Monitor>,
    /// The subscription's id, once the monitor has answered.
    subscription: Option<u64>,
    last_heard: Instant,
}

impl MonitorSocket {
    pub fn new(monitor: Addr<Monitor>) -> MonitorSocket {
        MonitorSocket {
            monitor,
            subscription: None,
            last_heard: Instant::now(),
        }
    }

    fn send_json(ctx: &mut ws::WebsocketContext<Self>, message: &impl serde::Serialize) {
        match serde_json::to_string(message) {
            Ok(text) => ctx.text(text),
            Err(e) => log::error!("monitor page: cannot encode an update: {e}"),
        }
    }

    fn send_snapshot(ctx: &mut ws::WebsocketContext<Self>, status: &MonitorStatus) {
        let mut snapshot = match serde_json::to_value(status) {
            Ok(serde_json::Value::Object(fields)) => fields,
            Ok(_) | Err(_) => {
                log::error!("monitor page: cannot encode the status");
                return;
            }
        };
        snapshot.insert("type".into(), "snapshot".into());
        Self::send_json(ctx, &snapshot);
    }
}

impl Actor for MonitorSocket {
    type Context = ws::WebsocketContext<Self>;

    /// Subscribes to the monitor and sends the snapshot before anything else; starts the
    /// ping.
    fn started(&mut self, ctx: &mut Self::Context) {
        let subscribe = WatchHealth {
            to: ctx.address().recipient(),
        };
        ctx.wait(self.monitor.send(subscribe).into_actor(self).map(
            |answer, act, ctx| match answer {
                Ok((id, status)) => {
                    act.subscription = Some(id);
                    Self::send_snapshot(ctx, &status);
                }
                Err(e) => {
                    log::warn!("monitor page: the monitor is not answering: {e}");
                    ctx.close(Some(ws::CloseReason {
                        code: ws::CloseCode::Error,
                        description: Some("the monitor is not answering".into()),
                    }));
                    ctx.stop();
                }
            },
        ));
        ctx.run_interval(PING_EVERY, |act, ctx| {
            if act.last_heard.elapsed() > SILENCE_LIMIT {
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }

    /// Tells the monitor to stop sending.
    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let Some(id) = self.subscription.take() {
            self.monitor.do_send(UnwatchHealth { id });
        }
        Running::Stop
    }
}

/// Passes one of the monitor's events on to the browser.
impl Handler<MonitorEvent> for MonitorSocket {
    type Result = ();

    fn handle(&mut self, event: MonitorEvent, ctx: &mut Self::Context) {
        Self::send_json(ctx, &event);
    }
}

/// Answers pings, notes pongs, closes when asked; ignores data, the page being read-only.
impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for MonitorSocket {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match message {
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(e) => {
                log::debug!("monitor page: a browser's WebSocket failed: {e}");
                ctx.stop();
            }
        }
    }
}
