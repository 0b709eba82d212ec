//! evcharge: a distributed runtime that operates a network of electric-vehicle charging
//! points. See `README.md` for the roles and `docs/PROTOCOL.md` for the wire formats.

pub mod accounts;
pub mod actors;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod configuration;
pub mod domain;
pub mod harness;
pub mod link;
pub mod messages;
pub mod metrics;
pub mod ocpp;
pub mod proof;
pub mod roles;
pub mod store;
pub mod tls;
pub mod web;

use cli::Command;
use configuration::Settings;
use std::path::Path;

/// Logs go to stderr, one line each, `info` unless `RUST_LOG` says otherwise. Whatever a
/// message quotes (ids, names, reasons that came from outside), it stays one line of bounded
/// length: control characters are escaped, so nobody can forge a line of the log.
pub fn init_logging() {
    use std::io::Write;
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_server=warn"),
    )
    .format(|out, record| {
        writeln!(
            out,
            "[{} {:<5}] {}",
            out.timestamp_millis(),
            record.level(),
            log_safe(&record.args().to_string())
        )
    })
    .init();
}

/// The longest log message kept, in characters.
const LONGEST_LOG_MESSAGE: usize = 2_000;

/// `message` as one line of the log: control characters escaped, cut past
/// [`LONGEST_LOG_MESSAGE`] characters.
fn log_safe(message: &str) -> String {
    let mut line = String::with_capacity(message.len().min(LONGEST_LOG_MESSAGE));
    for (i, c) in message.chars().enumerate() {
        if i == LONGEST_LOG_MESSAGE {
            line.push_str("… (cut)");
            break;
        }
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// Set by `evcharge demo` on its children: they leave when the demo's pipe to them closes,
/// so that no child outlives a demo that was killed.
pub const EXIT_WITH_PARENT: &str = "EVCHARGE_EXIT_WITH_PARENT";

/// Runs the role named by `command` until it ends or is stopped.
pub fn run(command: Command, settings: Settings, config: Option<&Path>) -> anyhow::Result<()> {
    use roles::*;
    if std::env::var_os(EXIT_WITH_PARENT).is_some() {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            log::info!("the demo that started this process is gone; leaving");
            std::process::exit(0);
        });
    }
    match command {
        Command::Broker(args) => broker::run(
            settings,
            args.bootstrap_file.as_deref(),
            args.control.as_deref(),
            args.brokers,
        ),
        Command::Demo(_) => demo::run(settings, config),
        Command::Operator(command) => operator::run(&settings, command),
        Command::CpRegister(args) => register::cps(&settings, args),
        Command::DriverRegister(args) => register::drivers(&settings, args),
        Command::Fleet(cli::FleetCommand::Cps(args)) => {
            let cps = fleet::Numbering {
                prefix: args.prefix,
                first: args.first,
                count: args.count,
            };
            let fleet = fleet::run_cps(settings, cps, &args.secrets, args.data, args.control);
            actix::System::new().block_on(fleet)
        }
        Command::Fleet(cli::FleetCommand::Ocpp(args)) => {
            let chargers = fleet::Numbering {
                prefix: args.prefix.clone(),
                first: args.first,
                count: args.count,
            };
            let fleet = fleet::run_ocpp(settings, chargers, &args);
            actix::System::new().block_on(fleet)
        }
        Command::Fleet(cli::FleetCommand::Drivers(args)) => {
            let drivers = fleet::Numbering {
                prefix: args.prefix,
                first: args.first,
                count: args.count,
            };
            let cps = fleet::Numbering {
                prefix: args.cp_prefix,
                first: args.cp_first,
                count: args.count,
            };
            {
                let fleet = fleet::run_drivers(settings, drivers, &args.secrets, cps, args.control);
                actix::System::new().block_on(fleet)
            }
        }
        Command::Bench(args) => bench::run(settings, args),
        Command::Tls(cli::TlsCommand::SelfSigned { out, hosts }) => tls::self_signed(&out, &hosts),
        Command::Central(_) => actix::System::new().block_on(central::run(settings)),
        Command::Engine(_) => actix::System::new().block_on(engine::run(settings)),
        Command::Monitor(_) => actix::System::new().block_on(monitor::run(settings)),
        Command::Cp(_) => actix::System::new().block_on(cp::run(settings)),
        Command::Gateway(_) => actix::System::new().block_on(gateway::run(settings)),
        Command::Driver(args) => {
            let plan = match (args.cp, args.file, args.interactive) {
                (Some(cp), _, _) => driver::Plan::One(Some(cp)),
                (None, Some(file), _) => driver::Plan::File(file),
                (None, None, true) => driver::Plan::Interactive,
                (None, None, false) if args.any => driver::Plan::One(None),
                (None, None, false) if settings.driver.http.is_some() => driver::Plan::Dashboard,
                (None, None, false) => anyhow::bail!(
                    "tell the driver what to do: --cp <CP>, --any, --file <path>, --interactive or --http"
                ),
            };
            actix::System::new().block_on(driver::run(settings, plan, args.json))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_message_stays_one_bounded_line() {
        let forged = "CP1\n[2026-12-01T00:00:00Z INFO ] operator admin logged in\u{1b}[2J";
        let line = super::log_safe(forged);
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(line.contains("\\n"));
        let long = super::log_safe(&"x".repeat(10_000));
        assert!(long.chars().count() < super::LONGEST_LOG_MESSAGE + 10);
    }
}
