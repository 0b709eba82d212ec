//! Runs in the central: the admin console (the page, its live socket, login), the JSON
//! API behind it and the registration of CPs.
//!
//! [`Application::build`] binds the listener first, so tests can ask for port 0 and read it back.

mod api;
mod auth;
mod drivers;
mod ocpp;
mod page;
mod registry;
mod socket;
mod tokens;

use crate::accounts::login_limit::LoginLimiter;
use crate::accounts::Accounts;
use crate::actors::CpSupervisor;
use crate::store::Store;
use crate::web::api_error::ApiError;
use actix::Addr;
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;

/// What every request handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub supervisor: Addr<CpSupervisor>,
    pub store: Store,
    pub accounts: Accounts,
    /// Wrong operator passwords per name and per address.
    pub logins: std::sync::Arc<LoginLimiter>,
    /// OCPP requests to charge points, through their gateways.
    pub ocpp: crate::actors::central::ocpp_requests::OcppRequests,
}

impl AppState {
    /// Asks the central's supervisor; a mailbox that cannot take it now answers 503.
    pub async fn ask<M>(&self, msg: M) -> Result<M::Result, ApiError>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        CpSupervisor: actix::Handler<M>,
    {
        self.supervisor
            .send(msg)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))
    }
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `address` and prepares the server, HTTPS only when `tls` is given; nothing is
    /// served until [`Self::run`]. The session cookie is `Secure` under TLS.
    pub fn build(
        address: &str,
        state: AppState,
        tls: &crate::web::ServerTls,
    ) -> anyhow::Result<Application> {
        use anyhow::Context;
        let listener = TcpListener::bind(address)
            .with_context(|| format!("cannot listen for HTTP on {address}"))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(crate::web::api_error::json_config())
                .app_data(crate::web::api_error::path_config())
                .app_data(crate::web::api_error::query_config())
                .configure(crate::web::assets::routes)
                .configure(page::routes)
                .configure(api::routes)
        })
        .workers(1)
        .disable_signals();
        let server = crate::web::listen!(server, listener, tls)?.run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
