//! `evcharge central`.

use crate::accounts::login_limit::{LoginLimiter, Policy};
use crate::actors::central::console_hub::ConsoleHub;
use crate::actors::central::cp_supervisor::{JoinCluster, SharedView};
use crate::actors::central::monitor_session::LinkLimits;
use crate::actors::central::ocpp_requests::OcppRequests;
use crate::actors::{CpSupervisor, DriverDesk, MonitorSession};
use crate::bus::{Bus, HeldPartitions, Member, Sealing, StartAt};
use crate::configuration::{SessionTimeout, Settings};
use crate::store::Store;
use crate::web::{AppState, Application};
use actix::{Actor, SystemService};
use anyhow::Context;
use tokio::net::TcpListener;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let central = &settings.central;
    // A certificate that cannot be read stops the central before anything starts.
    let tls = super::tls::listeners(&settings)?;
    let store = Store::open(&central.data)
        .with_context(|| format!("cannot open the database in {}", central.data.display()))?;
    let accounts = crate::accounts::Accounts::open(store.changes())?;
    let key_file = central
        .cluster_key_file
        .clone()
        .unwrap_or_else(|| central.data.join("cluster-key"));
    let sealing = Sealing {
        key: crate::accounts::cluster_key::load_or_create(&key_file)?,
        origin: uuid::Uuid::new_v4(),
    };
    // The central proves its commands, and checks every CP's and driver's records, with the
    // keys of the registered CPs and drivers.
    let keys = crate::accounts::bus_keys::RegisteredKeys::new(store.clone());
    let bus = Bus::new(&settings.kafka, "central").with_keys(std::sync::Arc::new(keys));
    let publisher = bus.publisher()?;
    let held = HeldPartitions::new(settings.kafka.partitions);
    let supervisor = CpSupervisor::new(
        central.clone(),
        store.clone(),
        accounts.clone(),
        publisher.clone(),
        held.clone(),
        bus.stream_clock(&bus.topics().cp_events),
    )
    .start();
    log::info!("central instance {}", central.instance);
    crate::actors::central::thread_lag::probe();

    // Every monitor link is a socket: room for as many as the limits let in.
    super::raise_open_files_limit(central.max_links as u64 + 1024);
    // Monitors and the API come up at once; Kafka work starts once the broker answers.
    let monitors = TcpListener::bind(&central.listen)
        .await
        .with_context(|| format!("cannot listen for monitors on {}", central.listen))?;
    let address = monitors.local_addr()?.to_string();
    let acceptor = super::tls::monitor_port(&tls, &address);
    log::info!("listening for monitors on {address}");
    MonitorSession::accept_all(
        monitors,
        acceptor,
        LinkLimits::new(central),
        supervisor.clone(),
    );

    let policy = Policy::with_first_lockout(central.login_lockout);
    let app = Application::build(
        &central.http,
        AppState {
            supervisor: supervisor.clone(),
            store: store.clone(),
            accounts: accounts.clone(),
            logins: LoginLimiter::new(policy),
            ocpp: OcppRequests::new(bus.clone(), publisher.clone()),
        },
        &tls,
    )?;
    let console = crate::web::announce(
        "admin console and API",
        &tls,
        crate::web::shown_host(&central.http),
        app.port(),
        "/",
    );
    let desk = DriverDesk::new(
        supervisor.clone(),
        store.clone(),
        publisher,
        central.liveness,
        bus.stream_clock(&bus.topics().driver_requests),
        LoginLimiter::new(policy),
    )
    .start();
    let heard_within = central.silence_window;
    let central = central.clone();
    actix::spawn(async move {
        if let Err(e) = bus.ensure_topics().await {
            log::error!("cannot prepare the Kafka topics: {e}");
            return;
        }
        let topics = bus.topics().clone();
        match bus.partition_count(&topics.cp_events).await {
            Ok(count) => held.set_topic_partitions(count),
            Err(e) => {
                return log::error!("cannot learn the partitions of {}: {e}", topics.cp_events)
            }
        }
        // Kafka holds the records; this database is a copy: what other centrals wrote is
        // applied here, and what this one writes is shipped there.
        if let Err(e) = bus.ship_changes(store.changes().clone(), sealing.clone()) {
            return log::error!("cannot write to the changelog: {e}");
        }
        let replica = match bus
            .follow_changes(store.changes().clone(), sealing.clone())
            .await
        {
            Ok(replica) => replica,
            Err(e) => return log::error!("cannot follow the changelog: {e}"),
        };
        while let Err(e) = replica.caught_up().await {
            log::warn!("cannot read the changelog to its end yet: {e}");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        store.changes().mark_restored();
        log::info!("records restored from the changelog");
        // Only now: a central started with an empty database has its operators back first.
        match accounts.ensure_first_admin(&central.data) {
            Ok(Some(file)) => log::warn!(
                "first start: operator \"{}\" created with a one-time password, written to {} \
                 (readable by this user only) — log in at {console} and choose a new one",
                crate::accounts::FIRST_ADMIN,
                file.display()
            ),
            Ok(None) => {}
            Err(e) => log::error!("cannot create the first operator: {e}"),
        }
        let shared_to = supervisor.clone();
        let followed = bus
            .follow_views(sealing.clone(), move |record| {
                shared_to.do_send(SharedView(record));
            })
            .await;
        let views = match followed.and_then(|()| bus.view_publisher(sealing.clone())) {
            Ok(views) => views,
            Err(e) => return log::error!("cannot share the CPs' views: {e}"),
        };
        let joined = supervisor.send(JoinCluster {
            key: sealing.key.clone(),
            replica: std::sync::Arc::new(replica),
            views,
            console: console.clone(),
        });
        if joined.await.is_err() {
            return;
        }
        let session_timeout = group_session(&bus, central.session_timeout).await;
        let cp_events = Member {
            group: "evcharge-central",
            instance: &format!("evcharge-central-{}", central.instance),
            session_timeout,
            held: held.clone(),
        };
        if let Err(e) = bus.spawn_member(
            cp_events,
            &topics.cp_events,
            StartAt::Earliest,
            supervisor.recipient(),
        ) {
            return log::error!("cannot consume from Kafka: {e}");
        }
        log::info!("following Kafka at {}", bus.bootstrap());
        // Drivers' requests wait until the CPs had time to be heard (their monitors report
        // within the silence window, their engines' hellos come more often): a request that
        // waited in Kafka for a restarted central finds the CPs as they are, not all of them
        // still unheard.
        if held
            .changes()
            .wait_for(|held| !held.is_empty())
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(heard_within).await;
        let requests = Member {
            group: "evcharge-central-requests",
            instance: &format!("evcharge-central-requests-{}", central.instance),
            session_timeout,
            held: HeldPartitions::new(1),
        };
        if let Err(e) = bus.spawn_member(
            requests,
            &topics.driver_requests,
            StartAt::Earliest,
            desk.recipient(),
        ) {
            return log::error!("cannot consume drivers' requests from Kafka: {e}");
        }
        log::info!("taking drivers' requests");
        // The console's view of every topic.
        let watched = crate::actors::central::console_hub::consoles_open;
        if let Err(e) = bus
            .tap(ConsoleHub::from_registry().recipient(), watched)
            .await
        {
            log::error!("cannot show the Kafka topics on the console: {e}");
        }
    });

    tokio::select! {
        served = app.run() => served.context("the HTTP server failed")?,
        _ = super::shutdown_signal() => log::info!("central stopping"),
    }
    Ok(())
}

/// The group session this central asks for: as set, or with `auto` the shortest the broker
/// takes (failover waits for it to run out), said once either way.
async fn group_session(bus: &Bus, asked: SessionTimeout) -> std::time::Duration {
    let broker_minimum = match asked {
        SessionTimeout::Auto => bus.min_group_session().await,
        SessionTimeout::Fixed(_) => None,
    };
    let session = asked.choose(broker_minimum);
    let why = match (asked, broker_minimum) {
        (SessionTimeout::Fixed(_), _) => "as set (central.session_timeout)".to_owned(),
        (SessionTimeout::Auto, Some(min)) => format!(
            "the broker takes no shorter than {}",
            humantime::format_duration(min)
        ),
        (SessionTimeout::Auto, None) => "the broker states no minimum".to_owned(),
    };
    log::info!(
        "consumer group session {}: {why}; a central unheard of this long is out, its CPs adopted",
        humantime::format_duration(session)
    );
    session
}
