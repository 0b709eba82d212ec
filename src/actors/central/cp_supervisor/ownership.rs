//! Which CPs this central instance runs: those whose partition of `cp.events` the consumer
//! group gives it. A partition given is first restored (the changelog applied to its end),
//! then its CPs' actors start and its records are handled; a partition taken away stops its
//! CPs' actors before anything else. Views of the CPs run elsewhere come from the views
//! topic, so that every instance shows the whole network.

use super::CpSupervisor;
use crate::actors::central::charge_point::Retire;
use crate::actors::central::console_hub::{ConsoleHub, CpChanged};
use crate::bus::{Inbound, Rejection, Replica, SealedRecord, ViewPublisher};
use crate::domain::CpView;
use crate::messages::CpEvent;
use actix::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an instance shares with the others.
pub(super) struct Cluster {
    pub(super) replica: Arc<Replica>,
    /// Seals the notes passed on to other instances.
    key: crate::proof::ClusterKey,
    pub(super) views: ViewPublisher,
    /// Where this instance's console is served, for the others to show.
    pub(super) console: String,
    /// When each CP's view was last shared, and what it said but figures: figures alone
    /// change every second of a supply, and are shared at most once a second.
    shared: HashMap<String, (Instant, CpView)>,
}

/// Kafka answers: the changelog is followed and views can be shared. Sent once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JoinCluster {
    pub replica: Arc<Replica>,
    pub key: crate::proof::ClusterKey,
    pub views: ViewPublisher,
    pub console: String,
}

impl Handler<JoinCluster> for CpSupervisor {
    type Result = ();

    fn handle(&mut self, msg: JoinCluster, ctx: &mut Self::Context) {
        self.cluster = Some(Cluster {
            replica: msg.replica,
            key: msg.key,
            views: msg.views,
            console: msg.console,
            shared: HashMap::new(),
        });
        self.share_status(ctx);
        // Partitions given before are restored now.
        self.partitions_changed(ctx);
    }
}

/// The partitions held changed.
#[derive(Message)]
#[rtype(result = "()")]
struct HeldChanged;

impl Handler<HeldChanged> for CpSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: HeldChanged, ctx: &mut Self::Context) {
        self.partitions_changed(ctx);
    }
}

/// These partitions' changes are all applied: their CPs can run here.
#[derive(Message)]
#[rtype(result = "()")]
struct Restored(BTreeSet<i32>);

impl Handler<Restored> for CpSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Restored, ctx: &mut Self::Context) {
        let restored: BTreeSet<i32> = msg.0.into_iter().filter(|p| self.held.holds(*p)).collect();
        if restored.is_empty() {
            return;
        }
        let records = match self.store.cps() {
            Ok(records) => records,
            Err(e) => {
                log::error!("cannot read charging points from the store: {e}");
                Vec::new()
            }
        };
        let mut started = 0;
        for record in records {
            let ours = restored.contains(&self.held.partition_of(&record.id));
            if ours && !self.cps.contains_key(&record.id) {
                self.relays_to_local(&record.id);
                self.spawn_cp(record, ctx);
                started += 1;
            }
        }
        log::info!("running {started} more charging points (partitions {restored:?})");
        self.publish_status();
        self.ready.send_modify(|ready| ready.extend(restored));
    }
}

/// A CP's record was written by another central.
#[derive(Message)]
#[rtype(result = "()")]
struct CpRecordWritten(String);

impl Handler<CpRecordWritten> for CpSupervisor {
    type Result = ();

    /// A CP registered (anywhere) is shown at once, and runs here if its partition is ours.
    fn handle(&mut self, msg: CpRecordWritten, ctx: &mut Self::Context) {
        let Ok(Some(record)) = self.store.cp(&msg.0) else {
            return;
        };
        let ready = self
            .ready
            .borrow()
            .contains(&self.held.partition_of(&record.id));
        if ready && !self.cps.contains_key(&record.id) {
            self.spawn_cp(record, ctx);
        } else {
            self.show_unheard(&record);
        }
    }
}

/// A CP's view, as the instance running it shared it (or an instance's status).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SharedView(pub SealedRecord);

impl Handler<SharedView> for CpSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SharedView, _ctx: &mut Self::Context) {
        let Err(record) = self.heard_answer(msg.0) else {
            return;
        };
        let Err(record) = self.heard_instance(record) else {
            return;
        };
        // This instance's own views, and those of CPs running here, are known first-hand.
        if record.own || self.cps.contains_key(&record.key) {
            return;
        }
        let view = match record
            .value
            .and_then(|v| serde_json::from_slice::<CpView>(&v).map_err(|e| e.to_string()))
        {
            // This instance's name on a view not from this process: shared in an earlier
            // life, before a restart; what it said is stale, and its CPs will run here.
            Ok(view) if view.owner.as_deref() == Some(self.settings.instance.as_str()) => return,
            Ok(view) if view.id == record.key => view,
            Ok(_) => return log::warn!("a shared view set aside: its key is not its CP"),
            Err(why) => return log::debug!("a shared view set aside: {why}"),
        };
        ConsoleHub::from_registry().do_send(CpChanged(view.clone()));
        self.tell_relays(&view);
        self.views.insert(view.id.clone(), view);
    }
}

impl Cluster {
    pub(super) fn key(&self) -> &crate::proof::ClusterKey {
        &self.key
    }
}

impl CpSupervisor {
    /// Follows the partitions held, and the CP records other centrals write.
    pub(super) fn follow_partitions(&mut self, ctx: &mut Context<Self>) {
        let mut changes = self.held.changes();
        let me = ctx.address();
        actix::spawn(async move {
            while changes.changed().await.is_ok() {
                me.do_send(HeldChanged);
            }
        });
        // A CP registered on another central: this one shows it, and runs it if it is ours.
        let mut written = self.store.changes().follow_applied_cps();
        let me = ctx.address();
        actix::spawn(async move {
            while let Some(key) = written.recv().await {
                me.do_send(CpRecordWritten(String::from_utf8_lossy(&key).into_owned()));
            }
        });
    }

    /// Stops the CPs of partitions taken away; restores those given, then runs their CPs.
    fn partitions_changed(&mut self, ctx: &mut Context<Self>) {
        self.publish_status();
        let held = self.held.now();
        let lost: Vec<String> = self
            .cps
            .keys()
            .filter(|id| !held.contains(&self.held.partition_of(id)))
            .cloned()
            .collect();
        for id in &lost {
            if let Some(cp) = self.cps.remove(id) {
                cp.do_send(Retire);
            }
            // Not available here any more, nor anywhere yet: the next owner's view will say.
            if let Some(view) = self.views.get_mut(id) {
                view.owner = None;
                view.state = crate::domain::CpState::Starting;
                view.fault = Some("moving to another central".into());
                ConsoleHub::from_registry().do_send(CpChanged(view.clone()));
            }
        }
        if !lost.is_empty() {
            log::info!("{} charging points handed over", lost.len());
        }
        self.ready
            .send_modify(|ready| ready.retain(|p| held.contains(p)));
        let Some(cluster) = &self.cluster else {
            return;
        };
        let given: BTreeSet<i32> = held.difference(&self.ready.borrow()).copied().collect();
        if given.is_empty() {
            return;
        }
        let replica = cluster.replica.clone();
        let me = ctx.address();
        actix::spawn(async move {
            // Everything written before the partitions came here is applied first: the
            // previous owner's last writes included.
            while let Err(e) = replica.caught_up().await {
                log::warn!("cannot restore partitions {given:?} from the changelog yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            me.do_send(Restored(given));
        });
    }

    /// A record for a CP that does not run here: `Some` with what to answer (it is another
    /// instance's, or waits for its partition's restore); `None` when it is this one's.
    pub(super) fn not_ours(
        &self,
        msg: &Inbound<CpEvent>,
        ctx: &Context<Self>,
    ) -> Option<ResponseFuture<Result<(), Rejection>>> {
        let partition = self.held.partition_of(&msg.key);
        if !self.held.holds(partition) {
            // Revoked while in flight: its new owner handles it from the committed offset.
            return Some(Box::pin(async { Ok(()) }));
        }
        if self.ready.borrow().contains(&partition) {
            return None;
        }
        let mut ready = self.ready.subscribe();
        let held = self.held.clone();
        let (me, msg) = (ctx.address(), msg.clone());
        Some(Box::pin(async move {
            let restored = ready
                .wait_for(|ready| ready.contains(&partition) || !held.holds(partition))
                .await
                .is_ok();
            if !restored || !held.holds(partition) {
                return Ok(());
            }
            me.send(msg).await.map_err(|e| {
                Rejection::retry_later(format!("the central's supervisor is gone: {e}"))
            })?
        }))
    }

    /// Shares a view of a CP running here with the other centrals: at once when anything
    /// but its figures changed, else at most once a second.
    pub(super) fn share_view(&mut self, view: &CpView) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let now = Instant::now();
        let due = match cluster.shared.get(&view.id) {
            None => true,
            Some((at, last)) => {
                let figures_only = CpView {
                    energy: last.energy,
                    cost: last.cost,
                    ..view.clone()
                } == *last;
                !figures_only || now.duration_since(*at) >= Duration::from_secs(1)
            }
        };
        if due {
            let value = serde_json::to_vec(view).expect("views always serialise");
            cluster.views.publish(&view.id, &value);
            cluster.shared.insert(view.id.clone(), (now, view.clone()));
        }
    }
}
