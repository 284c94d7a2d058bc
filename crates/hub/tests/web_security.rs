//! Who may do what on the web side and the ingest port, against a real hub on 127.0.0.1:
//! Host allow-list (DNS rebinding), Origin checks, the HttpOnly sign-in cookie, security
//! headers, wrong-token lockouts per address, and (with real headless Chromium) a page on
//! another port that can neither read the cookie nor open the wall's socket.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vidcast_hub::{Auth, HubOptions, Limits};
use vidcast_proto::{Message, RejectCode, MAGIC};
use vidcast_testkit::{start_hub, wait_for, RawPeer};

/// A connection from `source` (any 127.0.0.0/8 address: one machine, many "peers").
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// One HTTP/1.1 exchange by hand: status, head (lower-cased), body.
async fn exchange(stream: TcpStream, request: String) -> (u16, String, String) {
    let mut stream = stream;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// `METHOD path` with `Host: host` and extra header lines, from 127.0.0.1.
async fn request(
    http: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    extra: &str,
    body: &str,
) -> (u16, String, String) {
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    );
    exchange(TcpStream::connect(http).await.unwrap(), text).await
}

fn token_hub_options(token: &str) -> HubOptions {
    HubOptions {
        auth: Arc::new(Auth::new(Some(token.into()), None).unwrap()),
        ..HubOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_forbids_framing_sniffing_and_referrers() {
    let hub = start_hub(token_hub_options("s3cret")).await;
    let http = hub.http_addr.unwrap();
    let host = http.to_string();
    for (path, status) in [
        ("/", 200),
        ("/healthz", 200),
        ("/api/streams", 401),
        ("/nope", 401),
    ] {
        let (got, head, _) = request(http, "GET", path, &host, "", "").await;
        assert_eq!(got, status, "{path}");
        assert!(head.contains("x-frame-options: deny"), "{path}: {head}");
        assert!(
            head.contains("content-security-policy: frame-ancestors 'none'"),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{path}");
        assert!(head.contains("referrer-policy: same-origin"), "{path}");
    }
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_hub_does_not_answer_to_is_refused() {
    let hub = start_hub(HubOptions {
        allowed_hosts: vec!["wall.test".into()],
        ..HubOptions::default()
    })
    .await;
    let http = hub.http_addr.unwrap();
    let port = http.port();
    for host in [
        "evil.example",
        "evil.example:80",
        "2130706433",
        "localhost.evil.example",
    ] {
        let (status, _, body) = request(http, "GET", "/api/streams", host, "", "").await;
        assert_eq!(status, 421, "{host}: {body}");
        assert!(body.contains("--allowed-host"), "says what to do: {body}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "wall.test".to_owned(),
        "WALL.test.".to_owned(),
    ] {
        let (status, _, body) = request(http, "GET", "/api/streams", &host, "", "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_another_sites_page_are_refused() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let host = http.to_string();
    let json = "Content-Type: application/json\r\n";
    let foreign = format!("{json}Origin: http://127.0.0.1:{}\r\n", http.port() + 1);
    let own = format!("{json}Origin: http://{host}\r\n");
    let on = r#"{"url": "rtmp://127.0.0.1:1/live/x"}"#;
    // A page of another port may not change anything…
    for (method, path) in [
        ("POST", "/api/streams/1/record"),
        ("POST", "/api/streams/1/restream"),
        ("DELETE", "/api/streams/1/restream"),
    ] {
        let (status, _, body) = request(http, method, path, &host, &foreign, on).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        // …while the hub's own page and non-browser clients reach the route (404: no stream 1).
        for extra in [own.as_str(), json] {
            let (status, _, body) = request(http, method, path, &host, extra, on).await;
            assert_ne!(status, 403, "{method} {path} {extra:?}: {body}");
        }
    }
    // Reading stays possible without Origin (curl) and with the hub's own.
    let (status, ..) = request(http, "GET", "/api/streams", &host, &foreign, "").await;
    assert_eq!(
        status, 200,
        "a GET changes nothing; CORS keeps its answer from the page"
    );

    // The wall's socket: another site's page is refused, the hub's own page gets in.
    let ws = |origin: String| {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{host}/ws"),
            )
            .unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let refused = ws(format!("http://127.0.0.1:{}", http.port() + 1)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!(
            "a foreign page opened the wall's socket: {:?}",
            other.map(|_| ())
        ),
    }
    let (socket, _) = ws(format!("http://{host}"))
        .await
        .expect("own page gets in");
    drop(socket);
    assert!(metric(&hub, "cross_origin").await >= 4.0);
    hub.shutdown().await.unwrap();
}

/// One `vidcast_limit_hits_total{limit="…"}` value from `/metrics`.
async fn metric(hub: &vidcast_hub::RunningHub, limit: &str) -> f64 {
    let http = hub.http_addr.unwrap();
    let extra = "Authorization: Bearer s3cret\r\n";
    let (_, _, body) = request(http, "GET", "/metrics", &http.to_string(), extra, "").await;
    let key = format!("vidcast_limit_hits_total{{limit=\"{limit}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_sets_a_cookie_scripts_cannot_read() {
    let hub = start_hub(token_hub_options("s3 cret+/é")).await;
    let http = hub.http_addr.unwrap();
    let host = http.to_string();
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    // The sign-in page posts a form; no script handles the token.
    let (_, _, page) = request(http, "GET", "/", &host, "", "").await;
    assert!(page.contains(r#"action="/login""#) && !page.contains("document.cookie"));
    // A stale cookie is dropped with the sign-in page, so reloads do not count as guesses.
    let stale = "Cookie: vidcast_token=old
";
    let (status, head, _) = request(http, "GET", "/", &host, stale, "").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("set-cookie: vidcast_token=; max-age=0"),
        "{head}"
    );

    let (status, _, body) = request(http, "POST", "/login", &host, form, "token=guess").await;
    assert_eq!(status, 401);
    assert!(body.contains("wrong token"), "{body}");

    let good = "token=s3+cret%2B%2F%C3%A9";
    let (status, head, _) = request(http, "POST", "/login", &host, form, good).await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /\r\n"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_owned();
    for part in ["httponly", "samesite=strict", "path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("secure"),
        "plain HTTP: no Secure: {cookie}"
    );
    let value = cookie.split(';').next().unwrap();
    let extra = format!("Cookie: {value}\r\n");
    let (status, _, body) = request(http, "GET", "/api/streams", &host, &extra, "").await;
    assert_eq!(status, 200, "the cookie opens the API: {body}");
    // A sign-in from another site's page (login CSRF) is refused.
    let foreign = format!("{form}Origin: http://127.0.0.1:{}\r\n", http.port() + 1);
    let (status, ..) = request(http, "POST", "/login", &host, &foreign, good).await;
    assert_eq!(status, 403);
    hub.shutdown().await.unwrap();
}

/// A publisher's hello with `token` from `source`; what the hub said.
async fn hello_from(source: &str, hub: SocketAddr, token: &str) -> Vec<Message> {
    let mut peer = RawPeer::from_stream(connect_from(source, hub).await);
    let mut buf = BytesMut::from(&MAGIC[..]);
    let mut hello = vidcast_testkit::hello("cam", 64, 64);
    hello.token = token.to_owned();
    Message::Hello(hello).encode(&mut buf);
    peer.send(&buf).await;
    peer.read_until_closed(Duration::from_millis(500)).await.0
}

fn rejection(said: &[Message]) -> Option<(RejectCode, String)> {
    said.iter().find_map(|m| match m {
        Message::Reject(r) => Some((r.code, r.reason.clone())),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_lock_their_address_out_and_no_other() {
    let hub = start_hub(HubOptions {
        limits: Limits {
            max_token_failures: 3,
            token_lockout: Duration::from_secs(600),
            ..Limits::default()
        },
        ..token_hub_options("s3cret")
    })
    .await;
    let http = hub.http_addr.unwrap();
    let host = http.to_string();
    // Ingest: three wrong tokens from 127.0.0.2, then even the right one is refused unchecked.
    for _ in 0..3 {
        let said = hello_from("127.0.0.2", hub.ingest_addr, "guess").await;
        let (code, reason) = rejection(&said).expect("refused");
        assert_eq!(
            (code, reason.as_str()),
            (RejectCode::Unauthorized, "wrong token")
        );
    }
    let said = hello_from("127.0.0.2", hub.ingest_addr, "s3cret").await;
    let (code, reason) = rejection(&said).expect("locked out");
    assert_eq!(code, RejectCode::Unauthorized);
    assert!(reason.contains("too many wrong tokens"), "{reason}");
    // The web side shares the count: 127.0.0.2 is locked out there too.
    let get = |token: &str| {
        format!("GET /api/streams HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n")
    };
    let (status, _, body) = exchange(connect_from("127.0.0.2", http).await, get("s3cret")).await;
    assert_eq!(status, 401);
    assert!(body.contains("too many wrong tokens"), "{body}");
    // Another address with the right token gets in at once, on both sides.
    let said = hello_from("127.0.0.3", hub.ingest_addr, "s3cret").await;
    assert!(
        said.iter().any(|m| matches!(m, Message::Welcome(_))),
        "{said:?}"
    );
    let (status, ..) = exchange(connect_from("127.0.0.3", http).await, get("s3cret")).await;
    assert_eq!(status, 200);
    // Web guesses from a third address lock it out as well.
    for _ in 0..3 {
        let (status, ..) = exchange(connect_from("127.0.0.4", http).await, get("nope")).await;
        assert_eq!(status, 401);
    }
    let (_, _, body) = exchange(connect_from("127.0.0.4", http).await, get("s3cret")).await;
    assert!(body.contains("too many wrong tokens"), "{body}");
    assert!(metric(&hub, "wrong_token").await >= 6.0);
    assert!(metric(&hub, "token_lockout").await >= 2.0);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_ends() {
    let hub = start_hub(HubOptions {
        limits: Limits {
            max_token_failures: 2,
            token_lockout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..token_hub_options("s3cret")
    })
    .await;
    for _ in 0..2 {
        hello_from("127.0.0.5", hub.ingest_addr, "guess").await;
    }
    let said = hello_from("127.0.0.5", hub.ingest_addr, "s3cret").await;
    assert!(
        rejection(&said).is_some_and(|(_, r)| r.contains("too many")),
        "{said:?}"
    );
    wait_for("the lockout to end", Duration::from_secs(10), || async {
        let said = hello_from("127.0.0.5", hub.ingest_addr, "s3cret").await;
        said.iter()
            .any(|m| matches!(m, Message::Welcome(_)))
            .then_some(())
    })
    .await;
    hub.shutdown().await.unwrap();
}

const PERIOD: Duration = Duration::from_millis(33);

/// The id of the live stream called `name`.
async fn live_stream_id(hub: &vidcast_hub::RunningHub, name: &str) -> u64 {
    wait_for("the stream", Duration::from_secs(10), || async {
        vidcast_testkit::api_streams(hub)
            .await
            .into_iter()
            .find(|s| s["name"] == name && s["live"] == true)
            .and_then(|s| s["id"].as_u64())
    })
    .await
}

async fn add_target(http: SocketAddr, id: u64, url: &str) -> (u16, String) {
    let body = serde_json::json!({ "url": url }).to_string();
    let extra = "Content-Type: application/json\r\n";
    let path = format!("/api/streams/{id}/restream");
    let (status, _, body) = request(http, "POST", &path, &http.to_string(), extra, &body).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restream_api_does_not_reach_internal_addresses() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let _cam =
        vidcast_testkit::TestPublisher::start(hub.ingest_addr, "cam", 64, 48, PERIOD, 100_000)
            .await;
    let id = live_stream_id(&hub, "cam").await;
    for url in [
        "rtmp://127.0.0.1:1935/live/x",
        "rtmp://localhost:1935/live/x",
        "rtmp://169.254.169.254/live/x",
        "rtmp://[fe80::1]/live/x",
        "rtmp://[fd00:ec2::254]/live/x",
        "rtmp://224.0.0.1/live/x",
        "rtmp://0.0.0.0/live/x",
        "rtmp://2130706433/live/x",
        "rtmp://0177.0.0.1/live/x",
        "rtmp://0x7f000001/live/x",
        "rtmp://metadata.google.internal/live/x",
        "rtmp://192.0.2.1/live/x\n2026-12-02T16:00:00Z  INFO forged line",
    ] {
        let (status, body) = add_target(http, id, url).await;
        assert_eq!(status, 400, "{url}: {body}");
    }
    let (_, body) = add_target(http, id, "rtmp://127.0.0.1:1935/live/x").await;
    assert!(
        body.contains("--restream-allow-private"),
        "says how: {body}"
    );
    assert!(metric(&hub, "restream_refused").await >= 12.0);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restream_targets_are_capped_and_their_errors_do_not_scan_ports() {
    let hub = start_hub(HubOptions {
        restream_allow_private: true,
        limits: Limits {
            max_restream_per_stream: 2,
            max_restream_targets: 3,
            ..Limits::default()
        },
        ..HubOptions::default()
    })
    .await;
    let http = hub.http_addr.unwrap();
    let _a =
        vidcast_testkit::TestPublisher::start(hub.ingest_addr, "a", 64, 48, PERIOD, 100_000).await;
    let _b =
        vidcast_testkit::TestPublisher::start(hub.ingest_addr, "b", 64, 48, PERIOD, 100_000).await;
    let a = live_stream_id(&hub, "a").await;
    let b = live_stream_id(&hub, "b").await;
    // A closed port, and an open one that is not an RTMP server (it takes the bytes and hangs up).
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = open.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        loop {
            if let Ok((mut s, _)) = open.accept().await {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await;
            }
        }
    });
    let closed_url = format!("rtmp://127.0.0.1:{closed_port}/live/x");
    let open_url = format!("rtmp://127.0.0.1:{open_port}/live/x");
    assert_eq!(add_target(http, a, &closed_url).await.0, 201);
    assert_eq!(add_target(http, a, &open_url).await.0, 201);
    let (status, body) = add_target(http, a, &open_url).await;
    assert_eq!(status, 429, "per stream: {body}");
    assert!(body.contains("--max-restream-per-stream"), "{body}");
    assert_eq!(add_target(http, b, &open_url).await.0, 201);
    let (status, body) = add_target(http, b, &closed_url).await;
    assert_eq!(status, 429, "in all: {body}");
    assert!(body.contains("--max-restream-targets"), "{body}");

    let errors = wait_for("both pushes to fail", Duration::from_secs(10), || async {
        let path = format!("/api/streams/{a}/restream");
        let (_, _, body) = request(http, "GET", &path, &http.to_string(), "", "").await;
        let targets: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        let errors: Vec<String> = targets
            .iter()
            .filter_map(|t| t["last_error"].as_str().map(str::to_owned))
            .collect();
        (errors.len() == 2).then_some(errors)
    })
    .await;
    assert_eq!(errors[0], errors[1], "a closed port looks like an open one");
    assert!(errors[0].contains("connection failed"), "{errors:?}");
    server.abort();
    hub.shutdown().await.unwrap();
}

/// A page on another port of 127.0.0.1: what an attacker's local web server would serve.
async fn other_site() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                let page = "<!doctype html><title>other</title><p>another site";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// Evaluates `expression` every 100 ms until it is `true` (at most 10 s).
async fn until_true(browser: &mut vidcast_testkit::Browser, what: &str, expression: &str) {
    for _ in 0..100 {
        if browser.eval(expression).await == serde_json::Value::Bool(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = browser
        .eval("location.href + ' | ' + document.readyState + ' | ' + document.body.innerText.slice(0, 300)")
        .await;
    panic!("timed out waiting for {what} ({expression}); page: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_port_can_neither_read_the_cookie_nor_open_the_wall() {
    let Some(chromium) = vidcast_testkit::chromium() else {
        return;
    };
    let hub = start_hub(token_hub_options("s3cret")).await;
    let http = hub.http_addr.unwrap();
    let _cam =
        vidcast_testkit::TestPublisher::start(hub.ingest_addr, "cam", 64, 48, PERIOD, 100_000)
            .await;
    let other = other_site().await;
    let mut browser = vidcast_testkit::Browser::launch(&chromium).await;

    // Sign in through the form, as a person would.
    browser.navigate(&format!("http://{http}/")).await;
    until_true(
        &mut browser,
        "the sign-in form",
        "document.readyState === 'complete' && !!document.getElementById('login')",
    )
    .await;
    browser
        .eval("document.getElementById('token').value = 's3cret'; document.getElementById('login').submit(); true")
        .await;
    until_true(
        &mut browser,
        "the wall",
        "document.readyState === 'complete' && !document.getElementById('login') && location.pathname === '/'",
    )
    .await;
    let status = browser
        .eval("fetch('/api/streams').then((r) => r.status)")
        .await;
    assert_eq!(
        status, 200,
        "the cookie opens the API for the hub's own page"
    );
    let cookie = browser.eval("document.cookie").await;
    assert!(
        !cookie.as_str().unwrap_or_default().contains("s3cret"),
        "the hub's own scripts cannot read the token: {cookie}"
    );

    // Another site on the same machine (cookies ignore ports: same site).
    browser.navigate(&format!("http://{other}/")).await;
    until_true(
        &mut browser,
        "the other site's page",
        &format!(
            "document.readyState === 'complete' && location.port === '{}'",
            other.port()
        ),
    )
    .await;
    let cookie = browser.eval("document.cookie").await;
    assert!(
        !cookie.as_str().unwrap_or_default().contains("s3cret"),
        "another page read the token: {cookie}"
    );
    let opened = browser
        .eval(&format!(
            r#"new Promise((resolve) => {{
                 const ws = new WebSocket('ws://{http}/ws');
                 let messages = 0;
                 ws.onmessage = () => {{ messages++; }};
                 ws.onopen = () => setTimeout(() => resolve('opened: ' + messages + ' messages'), 1000);
                 ws.onerror = () => resolve('refused');
                 setTimeout(() => resolve('no answer'), 5000);
               }})"#
        ))
        .await;
    assert_eq!(
        opened, "refused",
        "another site's page used the wall's socket"
    );
    drop(browser);
    hub.shutdown().await.unwrap();
}
