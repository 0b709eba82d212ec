//! What an operator prepares for a network a harness starts, with the real commands as a
//! person would: an operator account (`evcharge operator`), registered charging points
//! (`evcharge cp-register`) and drivers (`evcharge driver-register`).

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

/// Registers charging points with the real `evcharge cp-register` on the central's
/// database in `data` (the central must not be running): `id` alone, or with `count`
/// the CPs `id00001`… Their secrets go to `secret_file` (one secret, or `ID SECRET` lines).
pub fn register_cps(
    evcharge: &Path,
    data: &Path,
    id: &str,
    count: Option<u32>,
    (location, price): (&str, f64),
    secret_file: &Path,
) -> anyhow::Result<()> {
    let terms = [
        "--location".into(),
        location.into(),
        "--price".into(),
        price.to_string(),
    ];
    register(
        evcharge,
        "cp-register",
        data,
        id,
        count,
        &terms,
        secret_file,
    )
}

/// Registers drivers with the real `evcharge driver-register` on the central's database in
/// `data` (the central must not be running): `id` alone, or with `count` the drivers
/// `id00001`… Their secrets go to `secret_file` (one secret, or `ID SECRET` lines).
pub fn register_drivers(
    evcharge: &Path,
    data: &Path,
    id: &str,
    count: Option<u32>,
    secret_file: &Path,
) -> anyhow::Result<()> {
    register(
        evcharge,
        "driver-register",
        data,
        id,
        count,
        &[],
        secret_file,
    )
}

/// `evcharge <command> --id … <extra>` on the database in `data`.
fn register(
    evcharge: &Path,
    command: &str,
    data: &Path,
    id: &str,
    count: Option<u32>,
    extra: &[String],
    secret_file: &Path,
) -> anyhow::Result<()> {
    let mut args = vec![command.to_owned(), "--id".into(), id.into()];
    args.extend_from_slice(extra);
    args.extend([
        "--data".into(),
        data.display().to_string(),
        "--secret-file".into(),
        secret_file.display().to_string(),
    ]);
    if let Some(count) = count {
        args.extend(["--count".into(), count.to_string()]);
    }
    Program::new(evcharge).args(args).run_to_end(None)?;
    Ok(())
}
