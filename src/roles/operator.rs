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
    let accounts: Accounts = Accounts::open(store.database())?;
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
        OperatorCommand::Token { name, label, .. } => {
            let token = accounts.issue_token(&name, &label)?;
            accounts.audit(
                "evcharge operator",
                "this machine",
                &format!("issued an API token for {name} ({label})"),
            );
            println!("{token}");
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
