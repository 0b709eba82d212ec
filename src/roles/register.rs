//! `evcharge cp-register` and `evcharge driver-register`: register charging points or
//! drivers and hand out their secrets, either on the central's database (the central
//! stopped) or through a running central's API.

use crate::accounts::{party_secrets, Accounts};
use crate::cli::{CpRegisterArgs, DriverRegisterArgs};
use crate::configuration::{Settings, API_TOKEN_VARIABLE};
use crate::domain::registration::{check_cp_id, check_driver_id, CpTerms};
use crate::harness::Endpoint;
use crate::store::{CpRecord, Store};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// `evcharge cp-register`.
pub fn cps(settings: &Settings, args: CpRegisterArgs) -> anyhow::Result<()> {
    let terms = CpTerms::new(&args.location, args.price).map_err(anyhow::Error::msg)?;
    let ids = numbered(&args.id, args.issue.count, args.issue.first, check_cp_id)?;
    let secrets = match &args.issue.api {
        Some(api) => through_api(api, "/api/cps", &ids, |id| {
            serde_json::json!({
                "id": id,
                "location": terms.location,
                "price_eur_kwh": terms.tariff.eur_per_kwh(),
            })
        })?,
        None => on_database(&settings.central.data, |store, accounts| {
            let mut secrets = Vec::with_capacity(ids.len());
            for id in &ids {
                let (secret, credential) = party_secrets::issue_cp();
                store.register_cp(&CpRecord::registered(id, &terms), &credential)?;
                secrets.push((id.clone(), secret));
            }
            accounts.audit(
                "evcharge cp-register",
                "this machine",
                &format!(
                    "registered {} at {} for {} €/kWh",
                    describe(&ids, "CP"),
                    terms.location,
                    terms.tariff
                ),
            );
            Ok(secrets)
        })?,
    };
    hand_out(
        &secrets,
        args.issue.count.is_some(),
        args.issue.secret_file.as_ref(),
        "CP",
    )
}

/// `evcharge driver-register`.
pub fn drivers(settings: &Settings, args: DriverRegisterArgs) -> anyhow::Result<()> {
    let ids = numbered(
        &args.id,
        args.issue.count,
        args.issue.first,
        check_driver_id,
    )?;
    let secrets = match &args.issue.api {
        Some(api) => through_api(
            api,
            "/api/drivers",
            &ids,
            |id| serde_json::json!({ "id": id }),
        )?,
        None => on_database(&settings.central.data, |store, accounts| {
            let mut secrets = Vec::with_capacity(ids.len());
            for id in &ids {
                let (secret, credential) = party_secrets::issue_driver();
                store.register_driver_credential(id, &credential)?;
                secrets.push((id.clone(), secret));
            }
            accounts.audit(
                "evcharge driver-register",
                "this machine",
                &format!("registered {}", describe(&ids, "driver")),
            );
            Ok(secrets)
        })?,
    };
    hand_out(
        &secrets,
        args.issue.count.is_some(),
        args.issue.secret_file.as_ref(),
        "driver",
    )
}

/// `id` alone, or with `count` the ids `id00001`…, each checked.
fn numbered(
    id: &str,
    count: Option<u32>,
    first: u32,
    check: fn(&str) -> Result<(), String>,
) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = match count {
        None => vec![id.to_owned()],
        Some(count) => (first..first.saturating_add(count))
            .map(|n| format!("{id}{n:05}"))
            .collect(),
    };
    for id in &ids {
        check(id).map_err(anyhow::Error::msg)?;
    }
    Ok(ids)
}

/// Writes the secrets to `file` (the owner's alone) or prints them: one secret, or with
/// `numbered` one `ID SECRET` line each.
fn hand_out(
    secrets: &[(String, String)],
    numbered: bool,
    file: Option<&PathBuf>,
    what: &str,
) -> anyhow::Result<()> {
    let text: String = if numbered {
        secrets
            .iter()
            .map(|(id, s)| format!("{id} {s}\n"))
            .collect()
    } else {
        format!("{}\n", secrets[0].1)
    };
    match file {
        Some(path) => {
            crate::accounts::secret_file::write(path, text.trim_end())
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "registered {} {what}(s); secret(s) in {} (readable by its owner only)",
                secrets.len(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Registers on the database itself: the central must be stopped (sled locks its folder).
fn on_database(
    dir: &Path,
    register: impl FnOnce(&Store, &Accounts) -> anyhow::Result<Vec<(String, String)>>,
) -> anyhow::Result<Vec<(String, String)>> {
    let store = Store::open(dir).with_context(|| {
        format!(
            "cannot open the central's database in {} (a running central holds it: stop it, \
             or register through its API with --api)",
            dir.display()
        )
    })?;
    let accounts = Accounts::open(store.changes())?;
    let secrets = register(&store, &accounts)?;
    store.flush_blocking()?;
    Ok(secrets)
}

/// Registers each id with a `POST` to `path` of a running central.
fn through_api(
    api: &str,
    path: &str,
    ids: &[String],
    body_of: impl Fn(&str) -> serde_json::Value,
) -> anyhow::Result<Vec<(String, String)>> {
    let token = std::env::var(API_TOKEN_VARIABLE).with_context(|| {
        format!(
            "--api needs an operator's API token in the environment variable {API_TOKEN_VARIABLE}"
        )
    })?;
    let endpoint = Endpoint::new(api.trim_end_matches('/')).with_token(token);
    let mut secrets = Vec::with_capacity(ids.len());
    for id in ids {
        let (status, answer) = endpoint.post_for_status(path, Some(body_of(id)))?;
        let secret = answer["secret"].as_str().filter(|_| status == 201);
        let Some(secret) = secret else {
            anyhow::bail!(
                "the central refused to register {id} ({status}): {}",
                answer["error"].as_str().unwrap_or("no reason given")
            );
        };
        secrets.push((id.clone(), secret.to_owned()));
    }
    Ok(secrets)
}

fn describe(ids: &[String], what: &str) -> String {
    match ids {
        [one] => one.clone(),
        [first, .., last] => format!("{} {what}s ({first} to {last})", ids.len()),
        [] => format!("no {what}"),
    }
}
