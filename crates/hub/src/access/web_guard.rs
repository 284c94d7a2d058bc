//! The web side's outer wall, one middleware in front of every route: which `Host` the hub
//! answers to (DNS rebinding), which pages may act on it (`Origin`), the sign-in that sets
//! the token cookie, and the security headers of every response.
//!
//! - **Host.** A page on `evil.example` whose name is re-pointed at 127.0.0.1 reaches the hub
//!   as same-origin to itself; only the `Host` header tells. Allowed: IP literals, `localhost`
//!   (and `*.localhost`), this machine's host name, and `--allowed-host` names; anything else
//!   gets 421 and a sentence saying which flag to add.
//! - **Origin.** `/ws` and every state-changing request (not GET/HEAD/OPTIONS) that carries an
//!   `Origin` must come from the page's own origin: the scheme the hub speaks and the `Host`
//!   the request came to. Browsers always send `Origin` on WebSocket and on cross-site POSTs;
//!   a request without one is not from a browser page (curl, players, `vidcast`) and could
//!   claim any origin anyway, so it passes on to the token check.
//! - **Sign-in.** `POST /login` (the sign-in form) checks the token (slowed per address like
//!   every token check, see [`crate::access::auth`]) and answers with a cookie scripts cannot read:
//!   `HttpOnly; SameSite=Strict; Path=/`, and `Secure` under TLS; then a redirect to `/`.
//! - **Headers.** No framing (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`), no MIME
//!   sniffing, `Referer` only to the hub itself (a `?token=` URL must not leak to another
//!   site). Not `no-referrer`: under it browsers send `Origin: null` on the sign-in form's
//!   own POST, which the Origin check would refuse.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::Access;
use crate::access::budget::{LimitHits, RateLog};

const LOGIN_HTML: &str = include_str!("../../web/login.html");
/// Where the sign-in page shows why the last attempt failed.
const LOGIN_ERROR_SLOT: &str = r#"<div class="err" id="err"></div>"#;
/// The longest sign-in form accepted (a token is at most 255 bytes, percent-encoded ×3).
const MAX_LOGIN_BODY: usize = 4096;
/// The wall's cookie.
pub(crate) const COOKIE: &str = "vidcast_token";
/// Removes the wall's cookie (sent with the sign-in page).
pub(crate) const CLEAR_COOKIE: &str =
    "vidcast_token=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/";

static BAD_HOST_LOG: RateLog = RateLog::new(crate::access::budget::LOG_EVERY);
static CROSS_ORIGIN_LOG: RateLog = RateLog::new(crate::access::budget::LOG_EVERY);

/// A web connection's peer address, for any listener with socket addresses (plain or TLS;
/// axum provides one for its own `TcpListener` only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(SocketAddr);

impl PeerAddr {
    /// The extension the web port's accept loop puts on every request of a connection.
    pub(crate) fn extension(peer: SocketAddr) -> ConnectInfo<Self> {
        ConnectInfo(Self(peer))
    }

    /// The address.
    pub(crate) fn addr(self) -> SocketAddr {
        self.0
    }
}

/// The peer of a web request (unspecified when the server was not told, as in unit tests).
pub(crate) fn peer(request: &Request) -> SocketAddr {
    request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |c| c.0 .0)
}

/// This machine's host name(s), read once: what a browser on the LAN may call the hub.
fn machine_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|n| normalize_name(n.trim()))
            .filter(|n| !n.is_empty())
            .flat_map(|n| {
                let short = n.split('.').next().unwrap_or_default().to_owned();
                [n.clone(), format!("{short}.local"), short]
            })
            .collect()
    })
}

fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A `Host` (or `Origin` authority) split into its host and port; `None` if malformed.
/// IPv6 literals keep no brackets.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        match after {
            "" => (v6, None),
            _ => (v6, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((normalize_name(host), port))
}

/// Whether the hub answers to `host` (the `Host` header's host part, see
/// [`split_authority`]): IP literals in their usual spelling, `localhost` and its
/// subdomains, this machine's names and `extra` (`--allowed-host`).
pub(crate) fn host_is_allowed(host: &str, extra: &[String]) -> bool {
    let host = normalize_name(host);
    host.parse::<Ipv4Addr>().is_ok()
        || host.parse::<Ipv6Addr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || machine_names().contains(&host)
        || extra.iter().any(|e| normalize_name(e) == host)
}

/// The host and port a request came to: `Host`, or the URI's authority (HTTP/2).
fn request_authority(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
}

/// Whether `origin` (an `Origin` header) is the origin of a page served by this hub at
/// `authority` over `scheme` (`http` or `https`). Default ports are filled in on both sides.
pub(crate) fn is_same_origin(origin: &str, authority: &str, scheme: &str) -> bool {
    let default_port = if scheme == "https" { 443 } else { 80 };
    let Some(rest) = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    match (split_authority(rest), split_authority(authority)) {
        (Some((oh, op)), Some((ah, ap))) => {
            oh == ah && op.unwrap_or(default_port) == ap.unwrap_or(default_port)
        }
        _ => false,
    }
}

/// Whether a request changes state or opens the wall's socket, so must not come from
/// another site's page.
fn needs_same_origin(request: &Request) -> bool {
    matches!(
        request.uri().path(),
        "/ws" | crate::ingest::browser::SOCKET_PATH
    ) || !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    )
}

/// The middleware: Host, then Origin, then `POST /login` or the routes; headers on all.
pub(crate) async fn guard(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = check_and_run(&access, request, next).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn check_and_run(access: &Access, request: Request, next: Next) -> Response {
    let peer = peer(&request);
    let authority = request_authority(&request);
    if let Some(authority) = &authority {
        let allowed = split_authority(authority)
            .is_some_and(|(host, _)| host_is_allowed(&host, &access.allowed_hosts));
        if !allowed {
            LimitHits::hit(&access.hits.bad_host);
            let shown = vidcast_proto::log_safe(authority);
            if let Some(more) = BAD_HOST_LOG.allow(Instant::now()) {
                warn!("web request from {peer} for Host \"{shown}\" refused (not an IP address, localhost, this machine's name or an --allowed-host); {more} more since the last line");
            }
            return (
                StatusCode::MISDIRECTED_REQUEST,
                format!("this hub does not answer to the name \"{shown}\": use its IP address, or start it with --allowed-host NAME\n"),
            )
                .into_response();
        }
    }
    if needs_same_origin(&request) {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let scheme = if access.tls { "https" } else { "http" };
            let same = origin
                .to_str()
                .ok()
                .zip(authority.as_deref())
                .is_some_and(|(origin, authority)| is_same_origin(origin, authority, scheme));
            if !same {
                LimitHits::hit(&access.hits.cross_origin);
                let shown = vidcast_proto::log_safe(origin.to_str().unwrap_or("(not text)"));
                if let Some(more) = CROSS_ORIGIN_LOG.allow(Instant::now()) {
                    warn!("web request {} {} from {peer} refused: it comes from a page of {shown}, not of this hub; {more} more since the last line", request.method(), request.uri().path());
                }
                return (
                    StatusCode::FORBIDDEN,
                    "refused: this request comes from another site's page (Origin)\n",
                )
                    .into_response();
            }
        }
    }
    if request.method() == Method::POST && request.uri().path() == "/login" {
        return login(access, peer, request).await;
    }
    next.run(request).await
}

/// `POST /login` with the form's `token`: sets the cookie and goes to the wall, or shows
/// the form again with why.
async fn login(access: &Access, peer: SocketAddr, request: Request) -> Response {
    let body = match axum::body::to_bytes(request.into_body(), MAX_LOGIN_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "sign-in form too large\n").into_response()
        }
    };
    let token = form_field(&body, "token").unwrap_or_default();
    // A token that may only publish signs in to the publisher's page.
    let (checked, to) = match crate::access::auth::check_web(access, peer, &token, "web sign-in") {
        Err(_) if access.auth.may_publish(&token) => (Ok(()), "/publish"),
        checked => (checked, "/"),
    };
    match checked {
        Ok(()) => {
            let secure = if access.tls { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
                percent_encode(&token)
            );
            let mut headers = HeaderMap::new();
            headers.insert(header::LOCATION, HeaderValue::from_static(to));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            match HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    headers.insert(header::SET_COOKIE, value);
                }
                // Percent-encoding leaves only visible ASCII: cannot happen.
                Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
            (StatusCode::SEE_OTHER, headers).into_response()
        }
        Err(why) => {
            let page = LOGIN_HTML.replace(
                LOGIN_ERROR_SLOT,
                &format!(r#"<div class="err" id="err">{}</div>"#, html_escape(&why)),
            );
            let status = if why.starts_with("too many") {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            (
                status,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                page,
            )
                .into_response()
        }
    }
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| crate::serve::http::percent_decode(v))
}

/// Everything but unreserved characters as `%XX` (what the cookie reader decodes).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_the_hub_answers_to() {
        let extra = vec!["wall.example.org".to_owned()];
        for host in [
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "localhost",
            "LOCALHOST.",
            "cam.localhost",
            "wall.example.org",
            "Wall.Example.Org.",
        ] {
            assert!(host_is_allowed(host, &extra), "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "2130706433x",
        ] {
            assert!(!host_is_allowed(host, &extra), "{host}");
        }
        assert_eq!(
            split_authority("[::1]:8080"),
            Some(("::1".to_owned(), Some(8080)))
        );
        assert_eq!(
            split_authority("Evil.Example:80"),
            Some(("evil.example".to_owned(), Some(80)))
        );
        assert_eq!(split_authority("[::1"), None);
        assert_eq!(split_authority("h:99999"), None);
    }

    #[test]
    fn same_origin_means_scheme_host_and_port() {
        assert!(is_same_origin(
            "http://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http"
        ));
        assert!(is_same_origin("http://localhost", "localhost:80", "http"));
        assert!(is_same_origin("https://[::1]:8443", "[::1]:8443", "https"));
        assert!(!is_same_origin(
            "http://127.0.0.1:9090",
            "127.0.0.1:8080",
            "http"
        ));
        assert!(!is_same_origin(
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http"
        ));
        assert!(!is_same_origin("null", "127.0.0.1:8080", "http"));
        assert!(!is_same_origin(
            "http://localhost:8080",
            "127.0.0.1:8080",
            "http"
        ));
    }

    #[test]
    fn the_form_token_round_trips_through_the_cookie_encoding() {
        let token = "a b+c%d&e=f;g\"é";
        let body = format!("token={}", percent_encode(token));
        assert_eq!(form_field(body.as_bytes(), "token").as_deref(), Some(token));
        assert!(percent_encode(token)
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b)));
    }
}
