//! `evcharge cp-register`: registers charging points and hands out their secrets, either
//! on the central's database (the central stopped) or through a running central's API.

use crate::accounts::{cp_secrets, Accounts};
use crate::cli::CpRegisterArgs;
use crate::configuration::{Settings, API_TOKEN_VARIABLE};
use crate::domain::registration::{check_cp_id, CpTerms};
use crate::harness::Endpoint;
use crate::store::{CpRecord, Store};
use anyhow::Context;
use std::path::Path;

pub fn run(settings: &Settings, args: CpRegisterArgs) -> anyhow::Result<()> {
    let terms = CpTerms::new(&args.location, args.price).map_err(anyhow::Error::msg)?;
    let ids: Vec<String> = match args.count {
        None => vec![args.id.clone()],
        Some(count) => (args.first..args.first.saturating_add(count))
            .map(|n| format!("{}{n:05}", args.id))
            .collect(),
    };
    for id in &ids {
        check_cp_id(id).map_err(anyhow::Error::msg)?;
    }
    let secrets = match &args.api {
        Some(api) => through_api(api, &ids, &terms)?,
        None => on_database(&settings.central.data, &ids, &terms)?,
    };
    let text: String = match args.count {
        None => format!("{}\n", secrets[0].1),
        Some(_) => secrets
            .iter()
            .map(|(id, s)| format!("{id} {s}\n"))
            .collect(),
    };
    match &args.secret_file {
        Some(path) => {
            crate::accounts::secret_file::write(path, text.trim_end())
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "registered {} CP(s); secret(s) in {} (readable by its owner only)",
                ids.len(),
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
    ids: &[String],
    terms: &CpTerms,
) -> anyhow::Result<Vec<(String, String)>> {
    let store = Store::open(dir).with_context(|| {
        format!(
            "cannot open the central's database in {} (a running central holds it: stop it, \
             or register through its API with --api)",
            dir.display()
        )
    })?;
    let accounts = Accounts::open(store.database())?;
    let mut secrets = Vec::with_capacity(ids.len());
    for id in ids {
        let (secret, credential) = cp_secrets::issue();
        store.register_cp(&CpRecord::registered(id, terms), &credential)?;
        secrets.push((id.clone(), secret));
    }
    accounts.audit(
        "evcharge cp-register",
        "this machine",
        &format!(
            "registered {} at {} for {} €/kWh",
            describe(ids),
            terms.location,
            terms.tariff
        ),
    );
    store.flush_blocking()?;
    Ok(secrets)
}

/// Registers through `POST /api/cps` of a running central.
fn through_api(
    api: &str,
    ids: &[String],
    terms: &CpTerms,
) -> anyhow::Result<Vec<(String, String)>> {
    let token = std::env::var(API_TOKEN_VARIABLE).with_context(|| {
        format!(
            "--api needs an operator's API token in the environment variable {API_TOKEN_VARIABLE}"
        )
    })?;
    let endpoint = Endpoint::new(api.trim_end_matches('/')).with_token(token);
    let mut secrets = Vec::with_capacity(ids.len());
    for id in ids {
        let body = serde_json::json!({
            "id": id,
            "location": terms.location,
            "price_eur_kwh": terms.tariff.eur_per_kwh(),
        });
        let (status, answer) = endpoint.post_for_status("/api/cps", Some(body))?;
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

fn describe(ids: &[String]) -> String {
    match ids {
        [one] => one.clone(),
        [first, .., last] => format!("{} CPs ({first} to {last})", ids.len()),
        [] => "no CP".into(),
    }
}
