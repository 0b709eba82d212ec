//! `evcharge demo`: a whole network on one machine — the embedded broker in this process,
//! and the central, the CPs and the drivers as child processes of this same binary, their
//! output prefixed with their names.

use crate::bus::EmbeddedBroker;
use crate::configuration::Settings;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

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
    let broker = EmbeddedBroker::start(&settings.kafka)?;
    let bootstrap = broker.bootstrap();
    log::info!("embedded Kafka broker on {bootstrap}");
    let dir = match &settings.demo.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("evcharge-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = actix::System::new().block_on(run_network(&settings, &bootstrap, &dir, config));
    drop(broker);
    result
}

async fn run_network(
    settings: &Settings,
    bootstrap: &str,
    dir: &Path,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut common = vec!["--kafka".to_string(), bootstrap.to_string()];
    if let Some(config) = config {
        common.extend(["--config".into(), config.display().to_string()]);
    }
    let central_tcp = local_address(&settings.central.listen);
    let central_http = local_address(&settings.central.http);
    let mut children = Vec::new();

    let central_data = dir.join("central");
    children.push(spawn(
        &exe,
        "central",
        &common,
        &[
            "central",
            "--listen",
            &settings.central.listen,
            "--http",
            &settings.central.http,
            "--data",
            &central_data.display().to_string(),
        ],
    )?);
    wait_for_api(&central_http).await;
    let cp_ids: Vec<String> = (1..=settings.demo.cps)
        .map(|i| format!("CP{i:03}"))
        .collect();
    for (i, id) in cp_ids.iter().enumerate() {
        let price = format!("{:.2}", 0.30 + 0.05 * (i % 4) as f64);
        children.push(spawn(
            &exe,
            id,
            &common,
            &[
                "cp",
                "--id",
                id,
                "--central",
                &central_tcp,
                "--location",
                LOCATIONS[i % LOCATIONS.len()],
                "--price",
                &price,
                "--data",
                &dir.join(format!("engine-{id}")).display().to_string(),
            ],
        )?);
    }

    log::info!("waiting for the charging points to report to the central at http://{central_http}");
    wait_until_available(&central_http, cp_ids.len()).await;
    log::info!(
        "network up: API at http://{central_http}/api/cps and /api/sessions; starting {} drivers",
        settings.demo.drivers
    );
    for d in 1..=settings.demo.drivers {
        let id = format!("D{d:03}");
        let file = write_demo_file(dir, &id, &cp_ids, d as usize)?;
        children.push(spawn(
            &exe,
            &id,
            &common,
            &["driver", "--id", &id, "--file", &file.display().to_string()],
        )?);
    }

    super::shutdown_signal().await;
    log::info!("demo stopping");
    for child in &mut children {
        let _ = child.start_kill();
    }
    for child in &mut children {
        let _ = child.wait().await;
    }
    Ok(())
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

fn spawn(exe: &Path, name: &str, common: &[String], args: &[&str]) -> anyhow::Result<Child> {
    let mut child = Command::new(exe)
        .args(args)
        .args(common)
        .stdin(Stdio::piped())
        .env(crate::EXIT_WITH_PARENT, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    if let Some(out) = child.stdout.take() {
        actix::spawn(prefix_lines(name.to_owned(), out));
    }
    if let Some(err) = child.stderr.take() {
        actix::spawn(prefix_lines(name.to_owned(), err));
    }
    Ok(child)
}

async fn prefix_lines(name: String, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{name:>8} | {line}");
    }
}

/// Polls the central's API until it answers (or a minute has passed).
async fn wait_for_api(http: &str) {
    for _ in 0..120 {
        if http_get(http, "/api/health").await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    log::warn!("the central's API at {http} does not answer yet; starting the CPs anyway");
}

/// Polls the central's API until `count` CPs are available (or a minute has passed).
async fn wait_until_available(http: &str, count: usize) {
    for _ in 0..120 {
        if let Ok(body) = http_get(http, "/api/cps").await {
            if body.matches("\"state\":\"available\"").count() >= count {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    log::warn!("not every charging point is available yet; starting the drivers anyway");
}

/// A minimal HTTP/1.0 GET, enough to read our own API without another client library.
async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}
