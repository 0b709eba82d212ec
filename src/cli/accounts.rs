//! The flags of the commands that work on the central's accounts and registrations:
//! `evcharge operator …` and `evcharge cp-register`.

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; prints a one-time password unless --password-stdin is given
    Add {
        /// Login name, e.g. alice
        name: String,
        /// Read the password (at least 8 characters) from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        data: CentralDataArgs,
    },
    /// Issue an API token for scripts acting as this operator, and print it
    Token {
        name: String,
        /// What the token is for
        #[arg(long, value_name = "TEXT", default_value = "")]
        label: String,
        /// How long the token lives, e.g. 30d or 12h (at most 366 days)
        #[arg(long, value_name = "DURATION", default_value = "90days")]
        expires_in: humantime::Duration,
        #[command(flatten)]
        data: CentralDataArgs,
    },
    /// List the API tokens that still work: id, operator, label, expiry (never the secrets)
    Tokens {
        #[command(flatten)]
        data: CentralDataArgs,
    },
    /// Revoke an API token by its id (as `tokens` lists it)
    Revoke {
        id: String,
        #[command(flatten)]
        data: CentralDataArgs,
    },
    /// List the operators
    List {
        #[command(flatten)]
        data: CentralDataArgs,
    },
}

#[derive(Debug, Args)]
pub struct CpRegisterArgs {
    /// The CP's id; with --count, the prefix of the ids (CP gives CP00001, CP00002, …)
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// Where the CP stands, e.g. "Alicante, Calle Mayor 3"
    #[arg(long, value_name = "TEXT")]
    pub location: String,
    /// Its tariff in euros per kWh (above 0, at most 10)
    #[arg(long, value_name = "EUR_PER_KWH")]
    pub price: f64,
    #[command(flatten)]
    pub issue: IssueArgs,
}

#[derive(Debug, Args)]
pub struct DriverRegisterArgs {
    /// The driver's id; with --count, the prefix of the ids (D gives D00001, D00002, …)
    #[arg(long, value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub issue: IssueArgs,
}

/// How many CPs or drivers are registered, where, and where their secrets go.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Register this many, numbered from --first
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
    /// Number of the first one, with --count
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub first: u32,
    /// Write the secret (with --count, one `ID SECRET` line each) to this file, readable by
    /// its owner only; without it the secrets are printed
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// A running central's API, e.g. http://127.0.0.1:8002, with an operator's API token
    /// in EVCHARGE_API_TOKEN
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    #[command(flatten)]
    pub data: CentralDataArgs,
}

/// Where the central keeps its database.
#[derive(Debug, Args)]
pub struct CentralDataArgs {
    /// Directory of the central's database [default: evcharge-data/central]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}
