//! `evcharge demo`: a whole network on one machine — the embedded broker in this process,
//! and the central, the CPs and the drivers as child processes of this same binary, their
//! output prefixed with their names.

use crate::accounts::secret_file;
use crate::actors::demo::parts::{DemoParts, Launch};
use crate::bus::EmbeddedBroker;
use crate::configuration::Settings;
use crate::domain::registration::CpTerms;
use crate::harness::{self, Endpoint};
use crate::store::CpRecord;
use actix::Actor;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The CP registered for a real OCPP charge point to join the demo as, through its gateway.
const OCPP_CP: &str = "OCPP01";

const LOCATIONS: [&str; 8] = [
    "Alicante",
    "Valencia",
    "Madrid",
    "Barcelona",
    "Sevilla",
    "Bilbao",
    "Malaga",
    "Zaragoza",
];

pub fn run(settings: Settings, config: Option<&Path>) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(&settings.kafka, settings.demo.brokers)?;
    let bootstrap = broker.bootstrap();
    log::info!("embedded Kafka broker on {bootstrap}");
    let dir = match &settings.demo.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("evcharge-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    actix::System::new().block_on(run_network(&settings, &broker, &dir, config))
}

async fn run_network(
    settings: &Settings,
    broker: &EmbeddedBroker,
    dir: &Path,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let exe = harness::this_binary()?;
    let mut common = vec!["--kafka".to_string(), broker.bootstrap()];
    if let Some(config) = config {
        common.extend(["--config".into(), config.display().to_string()]);
    }
    let restart_failed = Some(settings.demo.restart_failed).filter(|d| !d.is_zero());
    // One control token for the demo and every child of it.
    let control_token = super::control_token(&settings.control, &dir.join(CONTROL_TOKEN_FILE))?;
    let env = vec![("EVCHARGE_CONTROL__TOKEN".to_owned(), control_token.clone())];
    let parts = DemoParts::new(exe, common, env, restart_failed).start();
    let launch = |name: &str, args: Vec<String>| {
        parts.send(Launch {
            name: name.to_owned(),
            args,
        })
    };
    let central_tcp = local_address(&settings.central.listen);
    let central_http = local_address(&settings.central.http);

    let central_data = dir.join("central").display().to_string();
    let cp_ids: Vec<String> = (1..=settings.demo.cps)
        .map(|i| format!("CP{i:03}"))
        .collect();
    let driver_ids: Vec<String> = (1..=settings.demo.drivers)
        .map(|d| format!("D{d:03}"))
        .collect();
    let registered: Vec<String> = cp_ids.iter().cloned().chain([OCPP_CP.into()]).collect();
    let prepared = prepare_accounts(&dir.join("central"), &registered, &driver_ids)?;
    let Prepared {
        first_admin: admin_password,
        token,
        cp_secrets: mut secrets,
        driver_secrets,
    } = prepared;
    let ocpp_secret = secrets.pop().expect("the OCPP CP is registered last");
    secret_file::write(&dir.join(TOKEN_FILE), &token)
        .with_context(|| format!("cannot write {}", dir.join(TOKEN_FILE).display()))?;
    // One key for every central of the network.
    let cluster_key = dir.join("cluster-key").display().to_string();
    crate::accounts::cluster_key::load_or_create(Path::new(&cluster_key))?;
    launch(
        "central",
        strings(&[
            "central",
            "--instance",
            "central-1",
            "--cluster-key-file",
            &cluster_key,
            "--listen",
            &settings.central.listen,
            "--http",
            &settings.central.http,
            "--data",
            &central_data,
        ]),
    )
    .await?
    .map_err(anyhow::Error::msg)?;
    // The others on ports of their own; every monitor is given every central.
    let mut monitor_centrals = vec![central_tcp.clone()];
    for k in 2..=settings.demo.centrals {
        let name = format!("central-{k}");
        let free = || harness::free_port().context("cannot find a free port for a central");
        let (listen, http) = (
            format!("127.0.0.1:{}", free()?),
            format!("127.0.0.1:{}", free()?),
        );
        let data = dir.join(&name).display().to_string();
        let args = strings(&[
            "central",
            "--instance",
            &name,
            "--cluster-key-file",
            &cluster_key,
            "--listen",
            &listen,
            "--http",
            &http,
            "--data",
            &data,
        ]);
        launch(&name, args).await?.map_err(anyhow::Error::msg)?;
        log::info!("{name}: admin console at http://{http}/, monitors at {listen}");
        monitor_centrals.push(listen);
    }
    let monitor_centrals = monitor_centrals.join(",");
    let api = Endpoint::new(central_http.clone());
    wait_for_api(api.clone()).await;
    let mut pages = Vec::new();
    for (i, id) in cp_ids.iter().enumerate() {
        let secret_file = dir.join(format!("{id}.secret"));
        secret_file::write(&secret_file, &secrets[i])
            .with_context(|| format!("cannot write {}", secret_file.display()))?;
        let data = dir.join(format!("engine-{id}")).display().to_string();
        // Engine and monitor apart, as on a real site: an engine crashed from the console
        // turns its CP red while its monitor goes on reporting.
        // Chosen here rather than by the engine (port 0): a crashed engine is started again on
        // the same address, where its monitor goes on looking.
        let engine_port = harness::free_port().context("cannot find a free port for an engine")?;
        let engine_listen = format!("127.0.0.1:{engine_port}");
        let engine = strings(&[
            "engine",
            "--id",
            id,
            "--listen",
            &engine_listen,
            "--data",
            &data,
            "--allow-crash",
            "--secret-file",
            &secret_file.display().to_string(),
        ]);
        launch(&format!("{id}-engine"), engine)
            .await?
            .map_err(anyhow::Error::msg)?;
        let mut monitor = strings(&[
            "monitor",
            "--id",
            id,
            "--engine",
            &engine_listen,
            "--central",
            &monitor_centrals,
            "--secret-file",
            &secret_file.display().to_string(),
        ]);
        if let Some(port) = page_port(settings.demo.monitor_pages, i) {
            monitor.extend(strings(&["--http", &format!("127.0.0.1:{port}")]));
            pages.push(format!("monitor page of {id}: http://127.0.0.1:{port}/"));
        }
        launch(&format!("{id}-monitor"), monitor)
            .await?
            .map_err(anyhow::Error::msg)?;
    }

    // A gateway beside the native CPs: a real charge point (or an OCPP simulator) joins as
    // OCPP01 with the key in its file.
    let ocpp_key = dir.join(format!("{OCPP_CP}.key"));
    secret_file::write(&ocpp_key, &ocpp_secret)
        .with_context(|| format!("cannot write {}", ocpp_key.display()))?;
    let gateway = strings(&[
        "gateway",
        "--name",
        "demo",
        "--listen",
        &settings.gateway.listen,
        "--central",
        &monitor_centrals,
    ]);
    launch("gateway", gateway)
        .await?
        .map_err(anyhow::Error::msg)?;
    pages.push(format!(
        "OCPP 1.6J charge point {OCPP_CP}: ws://{}/ocpp/{OCPP_CP}, HTTP Basic user {OCPP_CP}, password in {}",
        local_address(&settings.gateway.listen),
        ocpp_key.display()
    ));

    log::info!("waiting for the charging points to report to the central at http://{central_http}");
    wait_until_available(api.with_token(&token), cp_ids.len()).await;
    let (broker_commands, mut commands) = tokio::sync::mpsc::unbounded_channel();
    crate::web::control::demo::serve(
        &settings.demo.control,
        &control_token,
        parts.clone(),
        crate::web::control::broker::BrokerRemote {
            owner: broker_commands,
            brokers: broker.brokers(),
        },
    )?;
    log::info!(
        "network up: API at http://{central_http}/api/cps and /api/sessions (token in {}); demo control at http://{}/demo/parts (token in {}); starting {} drivers",
        dir.join(TOKEN_FILE).display(),
        settings.demo.control,
        control_token_shown(settings, dir),
        settings.demo.drivers
    );
    match &admin_password {
        Some(file) => log::warn!(
            "admin console: http://{central_http}/ — log in as \"{}\" with the one-time password in {}",
            crate::accounts::FIRST_ADMIN,
            file.display()
        ),
        None => log::info!(
            "admin console: http://{central_http}/ — log in as \"{}\" with the password you chose",
            crate::accounts::FIRST_ADMIN
        ),
    }
    for (i, id) in driver_ids.iter().enumerate() {
        let d = i as u32 + 1;
        let file = write_demo_file(dir, id, &cp_ids, d as usize)?;
        let secret_file = dir.join(format!("{id}.secret"));
        secret_file::write(&secret_file, &driver_secrets[i])
            .with_context(|| format!("cannot write {}", secret_file.display()))?;
        let mut args = strings(&[
            "driver",
            "--id",
            id,
            "--file",
            &file.display().to_string(),
            "--secret-file",
            &secret_file.display().to_string(),
        ]);
        if let Some(port) = page_port(settings.demo.driver_pages, d as usize - 1) {
            args.extend(strings(&["--http", &format!("127.0.0.1:{port}")]));
            pages.push(format!(
                "dashboard of driver {id}: http://127.0.0.1:{port}/"
            ));
        }
        launch(id, args).await?.map_err(anyhow::Error::msg)?;
    }
    for page in pages {
        log::info!("{page}");
    }

    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(command) = commands.recv() => broker.obey(command),
        }
    }
    log::info!("demo stopping");
    Ok(())
}

/// The port of the `index`th page from `first`, 10 apart; none when `first` is 0.
fn page_port(first: u16, index: usize) -> Option<u16> {
    (first != 0).then(|| first.saturating_add(10 * index as u16))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Connectable form of a listen address (0.0.0.0 → 127.0.0.1).
fn local_address(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "", port)) => format!("127.0.0.1:{port}"),
        _ => listen.to_owned(),
    }
}
/// At least ten requests: every CP, an unknown one, "any", and a few repeats.
fn write_demo_file(
    dir: &Path,
    driver: &str,
    cps: &[String],
    shift: usize,
) -> anyhow::Result<PathBuf> {
    let mut lines: Vec<String> = cps.to_vec();
    lines.rotate_left(shift % cps.len().max(1));
    lines.push("CP999".into());
    lines.push("*".into());
    while lines.len() < 11 {
        lines.push(
            cps.get(lines.len() % cps.len().max(1))
                .cloned()
                .unwrap_or("*".into()),
        );
    }
    let path = dir.join(format!("requests-{driver}.txt"));
    let text = format!(
        "# Requests of driver {driver}: one CP id a line, * for any available CP\n{}\n",
        lines.join("\n")
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Where the demo leaves its API token, for scripts.
pub const TOKEN_FILE: &str = "api-token";
/// Where the demo leaves the token of its control endpoint (and its children's).
pub const CONTROL_TOKEN_FILE: &str = "control-token";
/// The operator whose API token the demo uses to follow the network: not the first admin,
/// whose tokens work only once the presenter has chosen a password (and end when it changes).
const DEMO_OPERATOR: &str = "demo";

/// Where the control token is, in words.
fn control_token_shown(settings: &Settings, dir: &Path) -> String {
    match (
        &settings.control.given_token(),
        &settings.control.token_file,
    ) {
        (Some(_), _) => "the setting control.token".into(),
        (None, Some(file)) => file.display().to_string(),
        (None, None) => dir.join(CONTROL_TOKEN_FILE).display().to_string(),
    }
}

/// What [`prepare_accounts`] made.
struct Prepared {
    /// The first admin's password file, when new.
    first_admin: Option<PathBuf>,
    /// The demo's API token.
    token: String,
    /// Each CP's and each driver's secret, in the order of the ids given.
    cp_secrets: Vec<String>,
    driver_secrets: Vec<String>,
}

/// Before the central opens its database: the first operator (with a one-time password in
/// a file readable by this user only, whose path is returned when new), the demo's own
/// operator with an API token the demo uses to follow the network, and the demo's CPs and
/// drivers registered as an operator would, each with a fresh secret.
fn prepare_accounts(
    data: &Path,
    cp_ids: &[String],
    driver_ids: &[String],
) -> anyhow::Result<Prepared> {
    use crate::accounts::{one_time_password, Accounts, DEFAULT_TOKEN_LIFETIME};
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let store = crate::store::Store::open(data)
        .with_context(|| format!("cannot open the central's database in {}", data.display()))?;
    let accounts = Accounts::open(store.changes())?;
    let first_admin = accounts.ensure_first_admin(data)?;
    if accounts.operator(DEMO_OPERATOR)?.is_none() {
        // Nobody logs in as it: a password nobody knows.
        let password = one_time_password() + &one_time_password();
        accounts.add_operator(DEMO_OPERATOR, &password, false)?;
    }
    let token = accounts
        .issue_token(DEMO_OPERATOR, "the demo", DEFAULT_TOKEN_LIFETIME)?
        .token;
    let mut secrets = Vec::with_capacity(cp_ids.len());
    for (i, id) in cp_ids.iter().enumerate() {
        let (secret, credential) = crate::accounts::party_secrets::issue_cp();
        // A demo started again in the same folder finds its CPs registered: new secrets.
        if store.cp(id)?.is_some() {
            store.set_cp_credential(id, &credential)?;
        } else {
            let price = 0.30 + 0.05 * (i % 4) as f64;
            let terms =
                CpTerms::new(LOCATIONS[i % LOCATIONS.len()], price).map_err(anyhow::Error::msg)?;
            store.register_cp(&CpRecord::registered(id, &terms), &credential)?;
        }
        secrets.push(secret);
    }
    let mut driver_secrets = Vec::with_capacity(driver_ids.len());
    for id in driver_ids {
        let (secret, credential) = crate::accounts::party_secrets::issue_driver();
        store.set_driver_credential(id, &credential)?;
        driver_secrets.push(secret);
    }
    accounts.audit(
        "evcharge demo",
        "this machine",
        &format!(
            "registered the demo's {} CPs and {} drivers",
            cp_ids.len(),
            driver_ids.len()
        ),
    );
    store.flush_blocking()?;
    Ok(Prepared {
        first_admin,
        token,
        cp_secrets: secrets,
        driver_secrets,
    })
}

/// Waits until the central's API answers (or a minute has passed).
async fn wait_for_api(api: Endpoint) {
    let address = api.url("");
    let answered = off_the_actors_thread(move || {
        harness::wait_until("the central's API", Duration::from_secs(60), || {
            Ok(api.get_text("/api/health").is_ok())
        })
    })
    .await;
    if answered.is_err() {
        log::warn!("the central's API at {address} does not answer yet; starting the CPs anyway");
    }
}

/// Waits until `count` CPs are available at the central (or a minute has passed).
async fn wait_until_available(api: Endpoint, count: usize) {
    let available = off_the_actors_thread(move || {
        harness::wait_until("every CP to be available", Duration::from_secs(60), || {
            let cps: serde_json::Value = api.get_json("/api/cps")?;
            let available = cps.as_array().map_or(0, |cps| {
                cps.iter().filter(|cp| cp["state"] == "available").count()
            });
            Ok(available >= count)
        })
    })
    .await;
    if available.is_err() {
        log::warn!("not every charging point is available yet; starting the drivers anyway");
    }
}

/// Runs a blocking wait on tokio's blocking threads: on this thread the demo's actors read
/// the children's output, and a child whose output is not read blocks on a full pipe.
async fn off_the_actors_thread(
    wait: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(wait)
        .await
        .unwrap_or_else(|e| Err(e.into()))
}
