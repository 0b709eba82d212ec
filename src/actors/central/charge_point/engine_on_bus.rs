//! What the central hears of a CP's engine on the bus: when it last spoke, and whether the
//! central's commands reach it. A CP is available only while its engine is heard so.

use super::ChargePoint;
use crate::messages::{CpEvent, Envelope};
use std::time::Instant;

impl ChargePoint {
    /// Why the engine cannot take a supply's commands from the bus now, if it cannot: both
    /// the monitor (on its link) and the engine (on the bus) must be heard for a CP to be
    /// available.
    pub(super) fn engine_not_ready(&self) -> Option<String> {
        match self.engine_on_bus {
            None => Some("waiting for its engine: not heard on the bus yet".into()),
            Some((at, _)) if at.elapsed() >= self.settings.liveness => Some(format!(
                "waiting for its engine: not heard on the bus for more than {}",
                humantime::format_duration(self.settings.liveness)
            )),
            Some((_, false)) => {
                Some("waiting for its engine: the central's commands do not reach it yet".into())
            }
            Some(_) => None,
        }
    }

    /// The engine spoke on the bus: any report shows it alive; a hello also says whether
    /// the central's commands reach it. It counts from when it was written: a record read
    /// from the backlog of a restart, older than the liveness window, shows nothing alive.
    pub(super) fn engine_heard(&mut self, envelope: &Envelope<CpEvent>) {
        let age = chrono::Utc::now()
            .signed_duration_since(envelope.ts)
            .to_std()
            .unwrap_or_default();
        if age >= self.settings.liveness {
            return;
        }
        let now = Instant::now();
        let heard = now.checked_sub(age).unwrap_or(now);
        let taking_commands = match &envelope.body {
            // A new instance, welcomed: alive, not yet taking commands.
            CpEvent::EngineHello { probe: true, .. } => false,
            CpEvent::EngineHello {
                taking_commands, ..
            } => *taking_commands,
            _ => self.engine_on_bus.is_none_or(|(_, taking)| taking),
        };
        let was = self.engine_not_ready();
        self.engine_on_bus = Some((heard, taking_commands));
        if was.is_some() != self.engine_not_ready().is_some() {
            self.publish_view();
        }
    }
}
