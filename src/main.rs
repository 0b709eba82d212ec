use clap::Parser;
use evcharge::cli::{Cli, Command, DemoArgs};
use std::process::ExitCode;

// Thousands of CPs mean many small, short-lived allocations on few threads: glibc's
// allocator spent a fifth of each process's time consolidating its free lists.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    evcharge::init_logging();
    let settings = match evcharge::configuration::load(cli.config.as_deref(), &cli.overrides()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("evcharge: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Demo(DemoArgs {
        centrals: None,
        brokers: None,
        cps: None,
        drivers: None,
        dir: None,
        http: None,
        listen: None,
        control: None,
        gateway: None,
        restart_failed: None,
        driver_pages: None,
        monitor_pages: None,
    }));
    match evcharge::run(command, settings, cli.config.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evcharge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
