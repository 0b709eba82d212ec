//! Hands each record of a topic one process consumes for many entities to the actor that
//! owns its key: `evcharge fleet` runs thousands of engines or drivers behind one consumer.

use crate::bus::{Inbound, Rejection};
use actix::prelude::*;
use std::collections::HashMap;

pub struct KeyRouter<T: Send + 'static> {
    owners: HashMap<String, Recipient<Inbound<T>>>,
}

impl<T: Send + 'static> Default for KeyRouter<T> {
    fn default() -> Self {
        KeyRouter {
            owners: HashMap::new(),
        }
    }
}

impl<T: Unpin + Send + 'static> Actor for KeyRouter<T> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Records arrive many at a time (the consumer keeps several in flight).
        ctx.set_mailbox_capacity(crate::bus::MAILBOX_CAPACITY);
    }
}

/// Records keyed `key` go to `owner` from now on; to nobody when `owner` is `None`.
pub struct Own<T: Send + 'static> {
    pub key: String,
    pub owner: Option<Recipient<Inbound<T>>>,
}

impl<T: Send + 'static> Message for Own<T> {
    type Result = ();
}

impl<T: Unpin + Send + 'static> Handler<Own<T>> for KeyRouter<T> {
    type Result = ();

    fn handle(&mut self, msg: Own<T>, _ctx: &mut Self::Context) {
        match msg.owner {
            Some(owner) => self.owners.insert(msg.key, owner),
            None => self.owners.remove(&msg.key),
        };
    }
}

impl<T: Unpin + Send + 'static> Handler<Inbound<T>> for KeyRouter<T> {
    type Result = ResponseFuture<Result<(), Rejection>>;

    /// Waits for the owner's verdict; a record no actor here owns is someone else's and is
    /// passed over, as is one whose owner has just gone (a crash: it is not redelivered).
    fn handle(&mut self, msg: Inbound<T>, _ctx: &mut Self::Context) -> Self::Result {
        let Some(owner) = self.owners.get(&msg.key).cloned() else {
            return Box::pin(async { Ok(()) });
        };
        // Sent now, not when the future first runs, so that records keep their order.
        let sent = owner.send(msg);
        Box::pin(async move { sent.await.unwrap_or(Ok(())) })
    }
}
