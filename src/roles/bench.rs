//! `evcharge bench`: measures a whole network at scale and prints the figures; the work is
//! done in [`crate::bench`].

use crate::cli::BenchArgs;
use crate::configuration::Settings;

pub fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    crate::bench::run(&settings, &args)
}
