//! An operator for a network a harness starts, made with the real `evcharge operator`
//! commands, as a person would.

use super::Program;
use std::path::Path;

/// Adds operator `name` with `password` to the central's database in `data` with the
/// binary `evcharge` (the central must not be running), and returns a new API token for it
/// labelled `label`.
pub fn add_operator(
    evcharge: &Path,
    data: &Path,
    name: &str,
    password: &str,
    label: &str,
) -> anyhow::Result<String> {
    let data = data.display().to_string();
    Program::new(evcharge)
        .args(["operator", "add", name, "--password-stdin", "--data", &data])
        .run_to_end(Some(password))?;
    let token = Program::new(evcharge)
        .args(["operator", "token", name, "--label", label, "--data", &data])
        .run_to_end(None)?;
    Ok(token.trim().to_owned())
}
