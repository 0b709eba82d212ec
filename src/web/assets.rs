//! The shared look of every page, built into the binary: no CDN, no separate web server.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, HttpResponse};

const STYLE: &str = include_str!("../../assets/style.css");
const LIVE_JS: &str = include_str!("../../assets/live.js");

/// The admin console's page and script.
pub const CONSOLE_HTML: &str = include_str!("../../assets/console.html");
pub const CONSOLE_JS: &str = include_str!("../../assets/console.js");
/// The driver dashboard's page (with a `{{driver_id}}` to fill in) and script.
pub const DRIVER_HTML: &str = include_str!("../../assets/driver.html");
pub const DRIVER_JS: &str = include_str!("../../assets/driver.js");
/// The monitor page and its script.
pub const MONITOR_HTML: &str = include_str!("../../assets/monitor.html");
pub const MONITOR_JS: &str = include_str!("../../assets/monitor.js");

/// `/assets/style.css` and `/assets/live.js`, used by all three pages.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/assets/style.css",
        web::get().to(|| async { asset("text/css; charset=utf-8", STYLE) }),
    )
    .route(
        "/assets/live.js",
        web::get().to(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
    );
}

/// An embedded file, revalidated on each load so an upgraded binary serves fresh assets.
pub fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

/// An embedded HTML page.
pub fn page(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}
