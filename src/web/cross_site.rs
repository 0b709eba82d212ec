//! The one guard against cross-site requests, for every page that acts (the console and
//! the driver dashboard): a browser page of another site must not act with the operator's
//! or the driver's cookie.

use actix_web::http::header;
use actix_web::HttpRequest;

/// Whether `req` was made by a browser on behalf of another site.
pub fn is_cross_site_request(req: &HttpRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let info = req.connection_info();
    is_cross_site(
        header(header::ORIGIN.as_str()),
        Some(info.host()),
        header("sec-fetch-site"),
    )
}

/// Whether a request comes from another site: the browser says so (`Sec-Fetch-Site:
/// cross-site`, `same-site`), or its `Origin` is not the host it was sent to.
fn is_cross_site(origin: Option<&str>, host: Option<&str>, fetch_site: Option<&str>) -> bool {
    // Only the page itself (`same-origin`) or the person (`none`: typed, bookmarked) may act.
    if fetch_site.is_some_and(|site| {
        let site = site.trim();
        !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none")
    }) {
        return true;
    }
    let Some(origin) = origin else {
        // Not from a browser page (a script, curl): nothing to forge.
        return false;
    };
    // `null` (a sandboxed or file page) has no authority and matches no host.
    let authority = origin
        .trim()
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    match host {
        Some(host) => authority.is_empty() || !authority.eq_ignore_ascii_case(host.trim()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_site_requests_pass_and_foreign_ones_do_not() {
        let host = Some("127.0.0.1:8001");
        // A script without Origin, and the page itself.
        assert!(!is_cross_site(None, host, None));
        assert!(!is_cross_site(
            Some("http://127.0.0.1:8001"),
            host,
            Some("same-origin")
        ));
        assert!(!is_cross_site(
            Some("HTTP://LOCALHOST:8001"),
            Some("localhost:8001"),
            None
        ));
        // Another site, another port, a sandboxed page, no Host at all.
        assert!(is_cross_site(Some("http://evil.example"), host, None));
        assert!(is_cross_site(Some("http://127.0.0.1:8002"), host, None));
        assert!(is_cross_site(Some("null"), host, None));
        assert!(is_cross_site(Some("http://127.0.0.1:8001"), None, None));
        // The browser's own word.
        assert!(is_cross_site(None, host, Some("cross-site")));
        assert!(is_cross_site(None, host, Some("same-site")));
        assert!(!is_cross_site(None, host, Some("none")));
    }
}
