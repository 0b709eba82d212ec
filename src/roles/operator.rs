//! `evcharge operator`: the console's accounts, managed on the central's database.

use crate::accounts::Accounts;
use crate::cli::OperatorCommand;
use crate::configuration::Settings;
use crate::store::Store;
use anyhow::Context;
use std::io::BufRead;

pub fn run(settings: &Settings, command: OperatorCommand) -> anyhow::Result<()> {
    let dir = &settings.central.data;
    // sled locks its directory: a running central holds it.
    let store = Store::open(dir).with_context(|| {
        format!(
            "cannot open the central's database in {} (a running central holds it: stop it, \
             or create tokens from the console)",
            dir.display()
        )
    })?;
    let accounts: Accounts = Accounts::open(store.changes())?;
    match command {
        OperatorCommand::Add {
            name,
            password_stdin,
            ..
        } => {
            if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                let password = line.trim_end_matches(['\r', '\n']);
                accounts.add_operator(&name, password, false)?;
                println!("operator {name} added");
            } else {
                let password = crate::accounts::one_time_password();
                accounts.add_operator(&name, &password, true)?;
                println!(
                    "operator {name} added with the one-time password {password} \
                     (to be changed at the first login)"
                );
            }
            accounts.audit(
                "evcharge operator",
                "this machine",
                &format!("added {name}"),
            );
        }
        OperatorCommand::Token {
            name,
            label,
            expires_in,
            ..
        } => {
            let lifetime =
                chrono::Duration::from_std(*expires_in).context("--expires-in is too long")?;
            let issued = accounts.issue_token(&name, &label, lifetime)?;
            accounts.audit(
                "evcharge operator",
                "this machine",
                &format!(
                    "issued an API token for {name} ({label}), id {}, expiring {}",
                    issued.view.id, issued.view.expires_at
                ),
            );
            println!("{}", issued.token);
        }
        OperatorCommand::Tokens { .. } => {
            for token in accounts.tokens()? {
                println!(
                    "{}  {}  expires {}  {}",
                    token.id,
                    token.operator,
                    token
                        .expires_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    token.label
                );
            }
        }
        OperatorCommand::Revoke { id, .. } => {
            let revoked = accounts
                .revoke_token(&id)?
                .with_context(|| format!("no API token has the id {id}"))?;
            accounts.audit(
                "evcharge operator",
                "this machine",
                &format!(
                    "revoked the API token {} of {} ({})",
                    revoked.id, revoked.operator, revoked.label
                ),
            );
            println!(
                "revoked {} ({} {})",
                revoked.id, revoked.operator, revoked.label
            );
        }
        OperatorCommand::List { .. } => {
            for operator in accounts.operators()? {
                let note = if operator.must_change_password {
                    " (one-time password not yet changed)"
                } else {
                    ""
                };
                println!("{}{note}", operator.name);
            }
        }
    }
    store.flush_blocking()?;
    Ok(())
}
