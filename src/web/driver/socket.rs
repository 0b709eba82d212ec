//! One browser's live link to the driver dashboard: the snapshot first, then every step of
//! the driver as it happens.

use crate::actors::driver::session::{DriverNews, UnwatchDriver, WatchDriver};
use crate::actors::Driver;
use actix::prelude::*;
use actix_web_actors::ws;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often the socket pings the browser.
const PING_PERIOD: Duration = Duration::from_secs(10);
/// A browser unheard of for this long (no pong, no message) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

pub struct DriverSocket {
    /// This connection's subscription at the driver.
    id: Uuid,
    driver: Addr<Driver>,
    heard_at: Instant,
}

impl DriverSocket {
    pub fn new(driver: Addr<Driver>) -> DriverSocket {
        DriverSocket {
            id: Uuid::new_v4(),
            driver,
            heard_at: Instant::now(),
        }
    }
}

impl Actor for DriverSocket {
    type Context = ws::WebsocketContext<Self>;

    /// Subscribes to the driver, sends the snapshot before any news, and starts pinging.
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(PING_PERIOD, |act, ctx| {
            if act.heard_at.elapsed() > SILENCE_LIMIT {
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        let subscribe = WatchDriver {
            id: self.id,
            watcher: ctx.address().recipient(),
        };
        // `wait`: no news is written before the snapshot.
        ctx.wait(
            self.driver.send(subscribe).into_actor(self).map(
                |snapshot, _act, ctx| match snapshot {
                    Ok(news) => ctx.text(news.0.to_string()),
                    Err(_) => ctx.stop(),
                },
            ),
        );
    }

    /// Tells the driver this connection is gone.
    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.driver.do_send(UnwatchDriver { id: self.id });
        Running::Stop
    }
}

impl Handler<DriverNews> for DriverSocket {
    type Result = ();

    /// Writes the step to the browser as one JSON text message.
    fn handle(&mut self, msg: DriverNews, ctx: &mut Self::Context) {
        ctx.text(msg.0.to_string());
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for DriverSocket {
    /// Answers pings, notes that the browser is alive, closes on request or bad frames.
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Ping(bytes)) => {
                self.heard_at = Instant::now();
                ctx.pong(&bytes);
            }
            Ok(ws::Message::Pong(_) | ws::Message::Text(_) | ws::Message::Binary(_)) => {
                // The page sends nothing that needs an answer; anything proves it is alive.
                self.heard_at = Instant::now();
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_) | ws::Message::Nop) => {}
            Err(e) => {
                log::debug!("dashboard socket closed on a bad frame: {e}");
                ctx.stop();
            }
        }
    }
}
