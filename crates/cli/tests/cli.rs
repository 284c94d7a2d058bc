//! The `vidcast` binary as a user runs it, on 127.0.0.1 only.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{api, bench_json, run, vidcast, Server};

#[test]
fn serve_and_send_stream_then_sigterm_stops_the_hub_cleanly() {
    let mut server = Server::start();
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");

    let sent = run(
        vidcast()
            .args([
                "send", "--name", "cli-cam", "--width", "160", "--height", "120", "--fps", "60",
            ])
            .args(["--frames", "30", &ingest.to_string()]),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "send failed: {stderr}");
    assert!(stderr.contains("connected to hub"), "{stderr}");
    // The H.264 encoder's own warnings stay out of the user's log.
    assert!(!stderr.contains("[OpenH264]"), "{stderr}");

    let line = server.wait_line("\"cli-cam\" left", Duration::from_secs(5));
    assert!(
        line.contains("video finished") && line.contains("0 live"),
        "{line}"
    );
    assert!(server
        .wait_line("\"cli-cam\" connected", Duration::from_secs(1))
        .contains("1 live"));
    let streams = api(http, "/api/streams");
    let s = &streams[0];
    assert_eq!(s["name"], "cli-cam");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(160), Some(120))
    );
    let frames = s["frames"].as_u64().unwrap_or(0);
    assert!((25..=30).contains(&frames), "{s}");
    assert_eq!(s["size_mismatches"], 0);

    let status = server.signal_and_wait(libc::SIGTERM, Duration::from_secs(3));
    assert!(status.success(), "serve exited with {status}");
    server.wait_line("hub stopped", Duration::from_secs(1));
}

/// A publisher on loopback starts below full quality and climbs (its start-up ramp): that is
/// no news. Neither side logs "adapting" and the API does not call it adapting; a congested
/// link still is (tests/congestion.rs, browser_publish.rs' slow link).
#[test]
fn a_publisher_on_loopback_is_not_said_to_be_adapting() {
    let mut server = Server::start();
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    let mut publisher = Server::start_with(&[
        "send",
        "--name",
        "calm",
        "--width",
        "160",
        "--height",
        "120",
        &ingest.to_string(),
    ]);
    // The ladder starts at level 2 and climbs a level per clear 2 s or so.
    let mut seen = Vec::new();
    let encoder =
        vidcast_testkit::wait_until("the ramp to level 0", Duration::from_secs(20), || {
            let streams = api(http, "/api/streams");
            let encoder =
                streams.as_array()?.iter().find(|s| s["name"] == "calm")?["encoder"].clone();
            seen.push(encoder.clone());
            (encoder["level"] == 0).then_some(encoder)
        });
    assert!(
        seen.iter().all(|e| e["adapting"] != true),
        "the ramp was shown as adapting: {seen:?}"
    );
    assert!(
        seen.iter().any(|e| e["level"].as_u64() > Some(0)),
        "no ramp seen: {seen:?}"
    );
    assert_eq!(encoder["adapting"], false);
    publisher.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    let sent = publisher.log();
    assert!(!sent.contains("adapting"), "{sent}");
    let hub = server.log();
    assert!(hub.contains("\"calm\" connected"), "{hub}");
    assert!(!hub.contains("adapting"), "{hub}");
}

#[test]
fn send_to_a_closed_port_says_what_is_wrong() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let out = run(
        vidcast().args(["send", "--no-reconnect", &format!("127.0.0.1:{port}")]),
        Duration::from_secs(15),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to hub at 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let out = run(
        vidcast().args(["send", "--source", "camera:x", "127.0.0.1:1"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("camera:N needs a number"));

    let out = run(
        vidcast().args(["send", "--quality", "0", "127.0.0.1:1"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--quality"));

    let out = run(
        vidcast().args(["bench", "--duration", "ten"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"));

    // Words a user types from other tools: a URL for the hub, a port alone to listen on.
    let out = run(
        vidcast().args(["send", "http://127.0.0.1:9999"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HUB is host[:port]") && stderr.contains("e.g. 127.0.0.1:9999"),
        "{stderr}"
    );
    let out = run(
        vidcast().args(["serve", "--listen", "99999"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a port is 0 to 65535"));
    let out = run(
        vidcast().args(["send", "--fps", "0", "127.0.0.1:1"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("above 0 and at most 1000, got 0"));

    // A number flag's error gives the range and an example, not "invalid digit found".
    let out = run(
        vidcast().args(["send", "--width", "abc", "127.0.0.1:1"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("64 to 7680, e.g. 640"), "{stderr}");
    // clap's own words ("invalid digit found in string") get the flag's default as an example.
    let out = run(
        vidcast().args(["serve", "--max-clients", "lots"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("e.g. --max-clients 1000"), "{stderr}");
    // A missing file: the OS's words once, not once per layer.
    let out = run(
        vidcast().args(["send", "--source", "/nonexistent/x.y4m", "127.0.0.1:1"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    // Sizes take units, as --keep does.
    let out = run(
        vidcast().args(["serve", "--max-frame-bytes", "16 parsecs"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("try 32MiB"));

    let out = run(vidcast().args(["--help"]), Duration::from_secs(10));
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "send", "demo", "bench"] {
        assert!(help.contains(sub), "{help}");
    }
}

/// Errors a user meets in their first hour say what happened and what to do, once, and end
/// the publisher instead of reconnecting forever.
#[test]
fn a_wrong_port_and_frames_over_the_hubs_limit_are_said_in_a_users_words() {
    let mut server = Server::start_with(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--max-frame-bytes",
        "4KB",
    ]);
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");

    // The web port instead of the ingest port: not retried (it will not turn into a hub).
    let out = run(
        vidcast().args(["send", &http.to_string()]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("speaks HTTP") && stderr.contains("ingest port"),
        "{stderr}"
    );

    // Fixed settings whose frames are over the limit: one clear line, one session, exit 1.
    let out = run(
        vidcast().args([
            "send",
            "--codec",
            "jpeg",
            "--no-adapt",
            "--name",
            "too-big",
            &ingest.to_string(),
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("over hub")
            && stderr.contains("limit of 4000")
            && stderr.contains("--quality"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("connected to hub").count(), 1, "{stderr}");

    // With adaptation the publisher lowers its encoder until its frames fit, and streams.
    let mut publisher = Server::start_with(&[
        "send",
        "--codec",
        "jpeg",
        "--width",
        "320",
        "--height",
        "240",
        "--name",
        "fits",
        &ingest.to_string(),
    ]);
    publisher.wait_line("lowering the encoder", Duration::from_secs(15));
    vidcast_testkit::wait_until("frames of \"fits\"", Duration::from_secs(20), || {
        let streams = api(http, "/api/streams");
        let frames =
            streams.as_array()?.iter().find(|s| s["name"] == "fits")?["frames"].as_u64()?;
        (frames >= 10).then_some(frames)
    });
    assert_eq!(server.log().matches("\"fits\" connected").count(), 1);
    publisher.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
}

/// `vidcast demo | head -1`: the reader goes after one line; demo ends quietly, not with a
/// broken-pipe panic (exit 101).
#[test]
fn demo_into_a_pipe_that_closes_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = vidcast()
        .args(["demo", "--clients", "1", "--duration", "20s"])
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args([
            "--width",
            "160",
            "--height",
            "120",
            "--status-every",
            "500ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reader is gone; demo prints its status every 500 ms here, so it meets the closed pipe.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo kept running after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// `vidcast demo` with 3 small publishers for 2 s, plus `extra` flags; its stdout.
fn demo_for_two_seconds(extra: &[&str]) -> String {
    let out = run(
        vidcast()
            .args([
                "demo",
                "--clients",
                "3",
                "--duration",
                "2s",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--width",
                "160",
                "--height",
                "120",
            ])
            .args(extra),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("[OpenH264]"), "{stderr}");
    assert!(stdout.contains("3 live of 3 streams"), "{stdout}");
    stdout
}

/// The rows of the last status table (the one printed at the end).
fn last_table_rows(stdout: &str) -> Vec<&str> {
    let table = stdout
        .rsplit(" live of 3 streams")
        .next()
        .unwrap_or_default();
    table.lines().filter(|l| l.contains("demo-")).collect()
}

#[test]
fn demo_runs_a_hub_with_clients_and_stops_by_itself() {
    // H.264 by default, like `send`.
    let stdout = demo_for_two_seconds(&[]);
    let rows = last_table_rows(&stdout);
    assert_eq!(rows.len(), 3, "{stdout}");
    for i in 1..=3 {
        let row = rows
            .iter()
            .find(|r| r.contains(&format!("demo-{i} ")))
            .unwrap_or_else(|| panic!("no demo-{i} in {stdout}"));
        assert!(row.contains(" h264 ") && row.contains("160x120"), "{row}");
    }
    let stdout = demo_for_two_seconds(&["--codec", "jpeg"]);
    let rows = last_table_rows(&stdout);
    assert!(
        rows.len() == 3 && rows.iter().all(|r| r.contains(" jpeg ")),
        "{stdout}"
    );
}

/// `vidcast bench … | head -1`: bench's report meets a closed stdout and ends quietly (exit
/// 0), never with a broken-pipe panic (exit 101).
#[test]
fn bench_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let mut child = vidcast()
        .args([
            "bench",
            "--clients",
            "1",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ])
        .args(["--width", "160", "--height", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = vidcast_testkit::wait_until("bench to end", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// A quick `bench`: small natural-size frames for a second, one JSON object.
const SMALL_BENCH: [&str; 9] = [
    "--width",
    "160",
    "--height",
    "120",
    "--duration",
    "1s",
    "--frame-bytes",
    "0",
    "--json",
];

#[test]
fn bench_json_reports_the_promised_fields() {
    let json = bench_json(
        vidcast()
            .args(["bench", "--clients", "3", "--warmup", "200ms"])
            .args(SMALL_BENCH),
    );
    for key in [
        "clients",
        "fps_per_client_min",
        "fps_aggregate",
        "latency_ms_p50",
        "latency_ms_p99",
        "dropped",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    assert_eq!(json["clients"], 3);
    assert!(
        json["fps_aggregate"].as_f64().unwrap_or(0.0) > 0.0,
        "{json}"
    );
    assert!(json["latency_ms_p99"].as_f64().is_some(), "{json}");
}

#[test]
fn bench_viewers_receive_frames_while_a_stalled_one_reads_nothing() {
    let json = bench_json(
        vidcast()
            .args(["bench", "--clients", "1", "--warmup", "500ms"])
            .args(SMALL_BENCH)
            .args([
                "--mjpeg-viewers",
                "2",
                "--ws-viewers",
                "2",
                "--stalled-viewers",
                "1",
            ]),
    );
    assert_eq!(json["viewers_mjpeg"], 2);
    assert_eq!(json["viewers_ws"], 2);
    assert!(
        json["viewer_fps_min"].as_f64().unwrap_or(0.0) > 0.0,
        "{json}"
    );
}

#[test]
fn send_stats_logs_its_own_tcp_view() {
    let mut server = Server::start();
    let ingest = server.addr_after("hub listening for clients on ");
    let out = run(
        vidcast()
            .args([
                "send", "--stats", "--width", "160", "--height", "120", "--frames", "60",
            ])
            .arg(ingest.to_string()),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rtt ") && stderr.contains("(app ping)") && stderr.contains("cwnd"),
        "{stderr}"
    );
}

/// Starts `vidcast serve` on a given ingest address.
fn serve_on(ingest: &str) -> Server {
    Server::start_with(&["serve", "--listen", ingest, "--http", "127.0.0.1:0"])
}

#[test]
fn a_hub_restart_needs_no_publisher_restart() {
    // A port that was free a moment ago; the publisher starts before any hub exists.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ingest = format!("127.0.0.1:{port}");
    let mut publisher = vidcast()
        .args([
            "send",
            "--name",
            "phoenix",
            "--width",
            "160",
            "--height",
            "120",
            "--max-backoff",
            "500ms",
        ])
        .arg(&ingest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for round in 0..2 {
            let mut server = serve_on(&ingest);
            let line = server.wait_line("\"phoenix\"", Duration::from_secs(15));
            assert!(line.contains("connected"), "round {round}: {line}");
            server.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
        }
    }));
    let _ = publisher.kill();
    let _ = publisher.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Ctrl-C or SIGTERM on a publisher says goodbye first: the hub logs "left", not "lost".
#[test]
fn sigterm_on_a_publisher_says_goodbye_so_the_hub_logs_left() {
    let mut hub = Server::start();
    let ingest = hub.addr_after("hub listening for clients on ");
    let http = hub.addr_after("web wall on http://");
    let mut publisher = Server::start_with(&[
        "send",
        "--name",
        "term-cam",
        "--width",
        "160",
        "--height",
        "120",
        &ingest.to_string(),
    ]);
    publisher.wait_line("connected to hub", Duration::from_secs(10));
    hub.wait_line("\"term-cam\" connected", Duration::from_secs(5));
    vidcast_testkit::wait_until("frames at the hub", Duration::from_secs(10), || {
        (api(http, "/api/streams")[0]["frames"].as_u64().unwrap_or(0) >= 5).then_some(())
    });
    let status = publisher.signal_and_wait(libc::SIGTERM, Duration::from_secs(3));
    assert!(status.success(), "{status:?}: {}", publisher.log());
    let left = hub.wait_line("\"term-cam\" left", Duration::from_secs(3));
    assert!(left.contains("publisher stopped"), "{left}");
    let done = publisher.wait_line("done after", Duration::from_secs(1));
    assert!(done.contains("done after 1 session(s)"), "{done}");
    assert!(!done.contains("sent 0,"), "{done}");
}

/// A hub other machines can reach with no token says so once at start; on loopback or with a
/// token it does not.
#[test]
fn an_open_hub_on_a_non_loopback_address_warns_once() {
    let mut open = Server::start_with(&["serve", "--listen", "0.0.0.0:0", "--http", "off"]);
    let line = open.wait_line("no --token", Duration::from_secs(10));
    assert!(line.contains("anyone who can reach 0.0.0.0:"), "{line}");

    for args in [
        &["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"][..],
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--http",
            "off",
            "--token",
            "t0k",
        ][..],
    ] {
        let mut quiet = Server::start_with(args);
        quiet.wait_line("hub listening for clients on ", Duration::from_secs(10));
        let status = quiet.signal_and_wait(libc::SIGTERM, Duration::from_secs(3));
        assert!(status.success());
        assert!(
            !quiet.log().contains("no --token"),
            "{args:?} warned: {}",
            quiet.log()
        );
    }
}

/// A hub whose stderr is closed (`vidcast serve | head`, a log pipe that died) keeps serving:
/// logging must never take a session down.
#[test]
fn a_hub_with_a_closed_stderr_keeps_serving() {
    let port = common::free_port();
    let mut hub = vidcast()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--http",
            "off",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(hub.stderr.take());
    vidcast_testkit::wait_until("the hub to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let sent = run(
        vidcast()
            .args([
                "send",
                "--name",
                "quiet-hub",
                "--width",
                "160",
                "--height",
                "120",
            ])
            .args(["--frames", "20", "--fps", "60", "--no-reconnect"])
            .arg(format!("127.0.0.1:{port}")),
        Duration::from_secs(30),
    );
    let _ = hub.kill();
    let _ = hub.wait();
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "{stderr}");
    assert!(stderr.contains("sent 20,"), "{stderr}");
}

#[test]
fn secrets_and_certificates_are_handled_with_care() {
    // --token's help says where the token shows and how to keep it out of the process list.
    let out = run(vidcast().args(["serve", "--help"]), Duration::from_secs(10));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("/proc/PID/cmdline") && help.contains("VIDCAST_TOKEN"),
        "{help}"
    );
    for flag in [
        "--allowed-host",
        "--max-token-failures",
        "--token-lockout",
        "--restream-allow-private",
        "--max-restream-per-stream",
        "--max-restream-targets",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    // A restream target in the cloud's metadata range is refused even on the command line.
    let out = run(
        vidcast().args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "off",
            "--restream",
            "rtmp://169.254.169.254/live/{name}",
        ]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metadata"), "{stderr}");
    // Certificates last a year unless asked otherwise, and say how to renew.
    let dir = std::env::temp_dir().join(format!("vidcast-cert-days-{}", std::process::id()));
    let out = run(
        vidcast().args([
            "cert",
            "--force",
            "--days",
            "30",
            "--out",
            dir.to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("valid until") && stdout.contains("--days 30") && stdout.contains("renew"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_encode_runs_real_senders_and_reports_their_cpu_per_frame() {
    let out = run(
        vidcast().args([
            "bench",
            "--encode",
            "--clients",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "500ms",
            "--width",
            "160",
            "--height",
            "120",
            "--codec",
            "jpeg,h264",
        ]),
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 `vidcast send` processes per codec"),
        "{stdout}"
    );
    // | jpeg q80 | 61 / 60 | 1.2 / 4.0 | 2.10 ms (2.0–2.2) | 6.3 % | 0.10 ms (1 %) | 9000 |
    for (codec, setting) in [("jpeg", "q80"), ("h264", "1500 kbit/s")] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {codec} {setting} |")))
            .unwrap_or_else(|| panic!("no {codec} row: {stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (delivered, expected) = cells[2].split_once(" / ").unwrap();
        let (delivered, expected): (u64, u64) =
            (delivered.parse().unwrap(), expected.parse().unwrap());
        assert!(delivered > 0 && expected >= 50, "{row}");
        let cpu_ms: f64 = cells[4].split_once(" ms").unwrap().0.parse().unwrap();
        // CPU time comes in 10 ms ticks: 60 small JPEGs may cost less than one; 60 H.264
        // frames never do.
        assert!(cpu_ms.is_finite() && cpu_ms >= 0.0, "{row}");
        if codec == "h264" {
            assert!(cpu_ms > 0.0, "{row}");
        }
        assert!(
            cells[3].split(" / ").all(|p| p.parse::<f64>().is_ok()),
            "{row}"
        );
    }
    // The senders stopped with the run: no one is left publishing.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("did not stop in time"));
}

#[test]
fn bench_make_y4m_writes_the_camera_like_clip() {
    let path = std::env::temp_dir().join(format!("vidcast-clip-{}.y4m", std::process::id()));
    let out = run(
        vidcast()
            .args(["bench", "--make-y4m"])
            .arg(&path)
            .args(["--width", "160", "--height", "120", "--frames", "4"]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        bytes.starts_with(b"YUV4MPEG2 W160 H120 F30:1"),
        "{:?}",
        &bytes[..40]
    );
    let header = "YUV4MPEG2 W160 H120 F30:1 C420\n".len();
    assert_eq!(bytes.len(), header + 4 * (6 + 160 * 120 * 3 / 2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 frames at 30 fps, noise ±12, seed 1"));
}

#[test]
fn version_says_whether_the_h264_encoder_has_its_assembly() {
    let out = run(vidcast().arg("--version"), Duration::from_secs(10));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "vidcast {} (H.264 encoder: OpenH264, ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(
        ["x86 assembly (SSE2", "portable C, no assembly", "ARM NEON"]
            .iter()
            .any(|s| text.contains(s)),
        "{text}"
    );
}

/// Each subcommand's help is about that subcommand, and `send --help` is grouped.
#[test]
fn help_is_about_each_subcommand_and_send_is_grouped() {
    let help = |sub: &str| {
        let out = run(vidcast().args([sub, "--help"]), Duration::from_secs(10));
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let demo = help("demo");
    assert!(!demo.contains("--legacy"), "{demo}");
    let bench = help("bench");
    assert!(!bench.contains("--keyint"), "{bench}");
    let send = help("send");
    for heading in ["Source:", "Picture:", "Encoding:", "Network:", "TLS:"] {
        assert!(send.contains(heading), "no {heading} in {send}");
    }
    let serve = help("serve");
    assert!(serve.contains("[env: VIDCAST_LISTEN="), "{serve}");
    assert!(!demo.contains("VIDCAST_LISTEN") && !bench.contains("VIDCAST_RECORD"));
}
