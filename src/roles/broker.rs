//! `evcharge broker`: the embedded Kafka-protocol broker as a process of its own.

use crate::bus::EmbeddedBroker;
use crate::configuration::Settings;
use anyhow::Context;
use std::io::Write;
use std::path::Path;

pub fn run(
    settings: Settings,
    bootstrap_file: Option<&Path>,
    control: Option<&str>,
    brokers: i32,
) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(&settings.kafka, brokers)?;
    let bootstrap = broker.bootstrap();
    // The first line of stdout is the address, for scripts.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{bootstrap}")?;
    stdout.flush()?;
    drop(stdout);
    if let Some(path) = bootstrap_file {
        write_atomically(path, &format!("{bootstrap}\n"))?;
    }
    match brokers {
        1 => log::info!(
            "embedded Kafka broker on {bootstrap} ({} partitions a topic, in memory); Ctrl-C stops it",
            settings.kafka.partitions
        ),
        n => log::info!(
            "embedded Kafka cluster of {n} brokers on {bootstrap} ({} partitions a topic, each on {} brokers, in memory); Ctrl-C stops it",
            settings.kafka.partitions,
            n.min(3)
        ),
    }
    let control = control
        .map(|address| {
            let token =
                super::control_token(&settings.control, &super::default_token_file("broker"))?;
            anyhow::Ok((address, token))
        })
        .transpose()?;
    actix::System::new().block_on(serve(&broker, control))?;
    drop(broker);
    Ok(())
}

/// Runs until stopped, carrying out outage and recovery requests on the broker.
async fn serve(broker: &EmbeddedBroker, control: Option<(&str, String)>) -> anyhow::Result<()> {
    let (owner, mut commands) = tokio::sync::mpsc::unbounded_channel();
    if let Some((address, token)) = control {
        let remote = crate::web::control::broker::BrokerRemote {
            owner,
            brokers: broker.brokers(),
        };
        let port = crate::web::control::broker::serve(address, &token, remote)?;
        // The address as bound: with port 0, the one the system chose.
        log::info!(
            "outage injection on http://{}:{port}/control/outage and /control/recover, one broker with /control/brokers/{{id}}/down and /up",
            crate::web::shown_host(address)
        );
    }
    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            Some(command) = commands.recv() => broker.obey(command),
        }
    }
}

/// Readers never see a half-written file.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}
