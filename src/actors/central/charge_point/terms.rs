//! What an operator changes of a CP (its location and tariff) and reads of it (its view).

use super::ChargePoint;
use crate::domain::registration::CpTerms;
use crate::domain::CpView;
use actix::prelude::*;

/// An operator changed the CP's location or tariff: the next reservation uses them; a
/// supply in progress keeps the price it was reserved at.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangeTerms(pub CpTerms);

impl Handler<ChangeTerms> for ChargePoint {
    type Result = ();

    fn handle(&mut self, msg: ChangeTerms, _ctx: &mut Self::Context) {
        if self.retired {
            return;
        }
        self.location = msg.0.location;
        self.tariff = msg.0.tariff;
        self.save_record(self.state());
        self.publish_view();
    }
}

/// Ask for the CP's current view.
#[derive(Message)]
#[rtype(result = "CpView")]
pub struct GetView;

impl Handler<GetView> for ChargePoint {
    type Result = MessageResult<GetView>;

    /// Returns what the console would show now.
    fn handle(&mut self, _msg: GetView, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.view())
    }
}
