//! One open console's WebSocket: a snapshot at once, then every batch of changes.

use crate::actors::central::console_hub::{CloseConsole, ConsoleHub, OpenConsole, Push};
use actix::prelude::*;
use actix_web_actors::ws;
use std::time::{Duration, Instant};

/// How often the browser is pinged.
const PING_PERIOD: Duration = Duration::from_secs(10);
/// A browser silent this long is gone.
const GONE_AFTER: Duration = Duration::from_secs(30);

pub struct ConsoleSocket {
    subscription: Option<u64>,
    last_heard: Instant,
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        ConsoleSocket {
            subscription: None,
            last_heard: Instant::now(),
        }
    }
}

impl Actor for ConsoleSocket {
    type Context = ws::WebsocketContext<Self>;

    /// Subscribes to the hub and sends its snapshot; starts pinging.
    fn started(&mut self, ctx: &mut Self::Context) {
        let subscribe = OpenConsole(ctx.address().recipient());
        ConsoleHub::from_registry()
            .send(subscribe)
            .into_actor(self)
            .map(|answer, socket, ctx| match answer {
                Ok((id, snapshot)) => {
                    socket.subscription = Some(id);
                    ctx.text(&*snapshot.0);
                }
                Err(_) => ctx.stop(),
            })
            .wait(ctx);
        ctx.run_interval(PING_PERIOD, |socket, ctx| {
            if socket.last_heard.elapsed() > GONE_AFTER {
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }

    /// Leaves the hub.
    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        if let Some(id) = self.subscription.take() {
            ConsoleHub::from_registry().do_send(CloseConsole(id));
        }
        Running::Stop
    }
}

impl Handler<Push> for ConsoleSocket {
    type Result = ();

    /// Forwards a batch of changes to the browser.
    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        ctx.text(&*msg.0);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ConsoleSocket {
    /// The console sends nothing but pongs and closes; anything else is ignored.
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(e) => {
                log::debug!("console socket: {e}");
                ctx.stop();
            }
            Ok(_) => {}
        }
    }
}
