//! What the central hears of a CP's engine on the bus: when it last spoke, and whether the
//! central's commands reach it. A CP is available only while its engine is heard so.

use super::ChargePoint;
use crate::bus::StreamClock;
use crate::messages::{CpEvent, Envelope};

impl ChargePoint {
    /// Judges its engine's silence by how far `events_read` has read the CPs' events (by
    /// the wall clock without it): a central behind the bus does not take engines for gone.
    pub fn hearing_its_engine_by(mut self, events_read: StreamClock) -> ChargePoint {
        self.events_read = events_read;
        self
    }

    /// Why the engine cannot take a supply's commands from the bus now, if it cannot: both
    /// the monitor (on its link) and the engine (on the bus) must be heard for a CP to be
    /// available.
    pub(super) fn engine_not_ready(&self) -> Option<String> {
        match self.engine_on_bus {
            None => Some("waiting for its engine: not heard on the bus yet".into()),
            Some((at, _)) if self.events_read.age(at) >= self.settings.liveness => Some(format!(
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
    /// the central's commands reach it. It counts from when it was written, against how
    /// far the bus has been read: a record read from the backlog of a restart, older than
    /// the liveness window, shows nothing alive; one read by a central that fell behind
    /// counts as much as when it was written.
    pub(super) fn engine_heard(&mut self, envelope: &Envelope<CpEvent>) {
        let read_up_to = self.events_read.now();
        let heard = envelope.ts.min(read_up_to);
        if self.events_read.age(heard) >= self.settings.liveness {
            return;
        }
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
