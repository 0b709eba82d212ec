//! Which instance holds each driver or CP id, from the hellos the central hears: the rule
//! behind "one id, one instance".

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// The central's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The instance holds the id (answered only to a probe).
    Welcome,
    /// Another live instance holds the id: this one must not run.
    InUse(String),
    /// A heartbeat: nothing to answer.
    Quiet,
}

#[derive(Debug)]
pub struct Presence {
    /// Per id: the instance holding it, and when its last hello was written.
    live: HashMap<String, (Uuid, DateTime<Utc>)>,
    /// An instance unheard of for this long no longer holds its id.
    liveness: Duration,
}

impl Presence {
    pub fn new(liveness: Duration) -> Presence {
        Presence {
            live: HashMap::new(),
            liveness,
        }
    }

    /// Records a hello written at `written`, read when the bus had been read up to
    /// `read_up_to` (its stream time: the wall clock when caught up). A probe (an instance's
    /// first hello) is refused while another instance of the id is live; heartbeats are
    /// never refused, so that a running instance is not disturbed (e.g. after a central
    /// restart forgot which came first). Silence is measured between write times: a central
    /// reading the backlog of a restart does not take the hellos of instances long gone for
    /// live ones, and one that has fallen behind does not take live ones for gone (the
    /// machines' clocks agree, as `kafka.replay_window` asks).
    pub fn hello(
        &mut self,
        id: &str,
        instance: Uuid,
        probe: bool,
        written: DateTime<Utc>,
        read_up_to: DateTime<Utc>,
    ) -> Verdict {
        // Nothing is heard later than the bus has been read (a clock ahead holds no id longer).
        let written = written.min(read_up_to);
        let silent_for = |seen: &DateTime<Utc>| {
            read_up_to
                .signed_duration_since(*seen)
                .to_std()
                .unwrap_or_default()
        };
        let holder = self
            .live
            .get(id)
            .filter(|(other, seen)| *other != instance && silent_for(seen) < self.liveness);
        if let Some((_, seen)) = holder {
            return if probe {
                Verdict::InUse(format!(
                    "{id} is already running elsewhere (heard from {:.1} s ago)",
                    silent_for(seen).as_secs_f64()
                ))
            } else {
                Verdict::Quiet
            };
        }
        let newer = match self.live.get(id) {
            Some((other, seen)) => *other != instance || written > *seen,
            None => true,
        };
        if newer {
            self.live.insert(id.to_owned(), (instance, written));
        }
        if probe {
            Verdict::Welcome
        } else {
            Verdict::Quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_live_instance_is_refused_and_the_first_kept() {
        let mut presence = Presence::new(Duration::from_secs(60));
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(
            presence.hello("D1", first, true, Utc::now(), Utc::now()),
            Verdict::Welcome
        );
        assert!(matches!(
            presence.hello("D1", second, true, Utc::now(), Utc::now()),
            Verdict::InUse(_)
        ));
        assert_eq!(
            presence.hello("D1", second, false, Utc::now(), Utc::now()),
            Verdict::Quiet
        );
        assert_eq!(
            presence.hello("D1", first, false, Utc::now(), Utc::now()),
            Verdict::Quiet
        );
        assert!(matches!(
            presence.hello("D1", second, true, Utc::now(), Utc::now()),
            Verdict::InUse(_)
        ));
        assert_eq!(
            presence.hello("D2", second, true, Utc::now(), Utc::now()),
            Verdict::Welcome
        );
    }

    #[test]
    fn a_silent_instance_loses_its_id() {
        let mut presence = Presence::new(Duration::ZERO);
        assert_eq!(
            presence.hello("CP1", Uuid::new_v4(), true, Utc::now(), Utc::now()),
            Verdict::Welcome
        );
        assert_eq!(
            presence.hello("CP1", Uuid::new_v4(), true, Utc::now(), Utc::now()),
            Verdict::Welcome
        );
    }

    #[test]
    fn a_hello_read_long_after_it_was_written_holds_no_id() {
        let mut presence = Presence::new(Duration::from_secs(6));
        let long_ago = Utc::now() - chrono::Duration::seconds(20);
        let (gone, new) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(
            presence.hello("CP1", gone, false, long_ago, Utc::now()),
            Verdict::Quiet
        );
        assert_eq!(
            presence.hello("CP1", new, true, Utc::now(), Utc::now()),
            Verdict::Welcome
        );
        // A recent one does.
        assert!(matches!(
            presence.hello("CP1", gone, true, Utc::now(), Utc::now()),
            Verdict::InUse(_)
        ));
    }

    #[test]
    fn a_reader_behind_the_bus_does_not_take_live_instances_for_gone() {
        let mut presence = Presence::new(Duration::from_secs(6));
        let (live, new) = (Uuid::new_v4(), Uuid::new_v4());
        let read_up_to = Utc::now() - chrono::Duration::seconds(20);
        // Written 21 s ago, read by a central 20 s behind: a second ago, as it reads.
        let written = read_up_to - chrono::Duration::seconds(1);
        assert_eq!(
            presence.hello("CP1", live, false, written, read_up_to),
            Verdict::Quiet
        );
        assert!(matches!(
            presence.hello("CP1", new, true, read_up_to, read_up_to),
            Verdict::InUse(_)
        ));
        // Once it has read 6 s past that hello without another, the id is free.
        let later = written + chrono::Duration::seconds(6);
        assert_eq!(
            presence.hello("CP1", new, true, later, later),
            Verdict::Welcome
        );
    }
}
