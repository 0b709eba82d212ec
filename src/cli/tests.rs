use super::*;
use clap::CommandFactory;

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn driver_takes_one_plan_only() {
    assert!(Cli::try_parse_from(["evcharge", "driver", "--cp", "A", "--any"]).is_err());
    let cli = Cli::try_parse_from([
        "evcharge", "--kafka", "k:1", "driver", "--id", "D1", "--cp", "A",
    ])
    .unwrap();
    let o = cli.overrides();
    assert!(o.contains(&("kafka.bootstrap", "k:1".to_string())));
    assert!(o.contains(&("driver.id", "D1".to_string())));
}
