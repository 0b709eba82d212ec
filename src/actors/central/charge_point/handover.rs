//! A CP moving to another central: its partition was revoked from this instance. The actor
//! stops for good, keeping nothing: the next owner restores the CP from the changelog, and
//! its monitor, refused here on its next report, authenticates wherever the CP now runs.

use super::ChargePoint;
use actix::prelude::*;

/// The CP's partition went to another central instance: stop running it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for ChargePoint {
    type Result = ();

    fn handle(&mut self, _msg: Retire, ctx: &mut Self::Context) {
        log::info!("{}: handed over to another central", self.id);
        self.retired = true;
        self.monitor = None;
        // Its supervisor restarts it while a monitor link still holds its address; retired,
        // it then starts nothing, takes nothing, and is gone once the link lets go.
        ctx.stop();
    }
}
