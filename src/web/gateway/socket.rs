//! One charge point's WebSocket: text messages pass to its [`Charger`] and back. Pinged
//! every period; silent for three, it is taken for gone.

use crate::actors::gateway::charger::{Attach, FromSocket, SocketClosed, ToSocket};
use crate::actors::gateway::Charger;
use crate::ocpp::SUBPROTOCOL;
use actix::prelude::*;
use actix_web_actors::ws;
use std::time::{Duration, Instant};

pub struct ChargerSocket {
    cp_id: String,
    /// `None` when the handshake had no OCPP 1.6J subprotocol: the socket closes at once.
    charger: Option<Addr<Charger>>,
    ping_interval: Duration,
    last_heard: Instant,
}

impl ChargerSocket {
    pub fn new(cp_id: String, charger: Option<Addr<Charger>>, ping_interval: Duration) -> Self {
        ChargerSocket {
            cp_id,
            charger,
            ping_interval,
            last_heard: Instant::now(),
        }
    }
}

impl Actor for ChargerSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(charger) = &self.charger else {
            ctx.close(Some(ws::CloseReason {
                code: ws::CloseCode::Protocol,
                description: Some(format!("the {SUBPROTOCOL} subprotocol is required")),
            }));
            return ctx.stop();
        };
        charger.do_send(Attach(ctx.address().recipient()));
        ctx.run_interval(self.ping_interval, |act, ctx| {
            if act.last_heard.elapsed() >= act.ping_interval * 3 {
                log::warn!(
                    "{}: silent for {:?}: taken for gone",
                    act.cp_id,
                    act.last_heard.elapsed()
                );
                return ctx.stop();
            }
            ctx.ping(b"");
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(charger) = &self.charger {
            charger.do_send(SocketClosed);
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ChargerSocket {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let Some(charger) = &self.charger else { return };
        match msg {
            Ok(ws::Message::Text(text)) => charger.do_send(FromSocket(text.to_string())),
            // OCPP-J is text: a binary message is read as text, and refused as what it is.
            Ok(ws::Message::Binary(bytes)) => {
                charger.do_send(FromSocket(String::from_utf8_lossy(&bytes).into_owned()));
            }
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Continuation(_)) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(e) => {
                log::warn!("{}: broken WebSocket: {e}", self.cp_id);
                ctx.stop();
            }
        }
    }
}

impl Handler<ToSocket> for ChargerSocket {
    type Result = ();

    fn handle(&mut self, msg: ToSocket, ctx: &mut Self::Context) {
        match msg {
            ToSocket::Text(text) => ctx.text(text),
            ToSocket::Close(why) => {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Normal,
                    description: Some(why),
                }));
                ctx.stop();
            }
        }
    }
}
