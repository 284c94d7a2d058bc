//! `vidcast analyze` against tools nobody on the team wrote: real vidcast traffic is captured
//! with tcpdump (and dumpcap) while streaming, then our JSON is compared with tshark's reading
//! of the same file.
//!
//! Mapping to tshark (Wireshark 4.0):
//! - `packets`/`bytes`: frames and the sum of `frame.len` per direction, exactly equal;
//! - `retransmissions`: frames with `tcp.analysis.retransmission` (tshark sets it on fast and
//!   spurious retransmissions too), exactly equal;
//! - `dup_acks`: frames with `tcp.analysis.duplicate_ack`, exactly equal;
//! - `out_of_order`: frames with `tcp.analysis.out_of_order`, exactly equal;
//! - `rtt_ms`: from `tcp.analysis.ack_rtt` on the other direction's ACKs: the same samples
//!   (min/avg/max within 1 µs of rounding, same count), with loss too (`--rtt tshark`, the
//!   default: ACKs of resent data timed from the first send, no 0 µs samples).
//!
//! Network use: 127.0.0.1, ::1, and two network namespaces this test creates (and deletes).
//! Under CI=true a missing tool fails the test; elsewhere the test is skipped with a message.

// Helpers outside #[test] functions unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether every tool is on PATH; under CI a missing one is a failure, not a skip.
fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !is_ci(),
        "CI=true and {missing:?} missing: scripts/test installs them (tcpdump tshark iproute2 nftables)"
    );
    eprintln!("\n*** SKIPPING: {missing:?} not installed (scripts/test installs them) ***\n");
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A child killed (SIGKILL) and reaped on drop, whatever happened.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits for a stderr line containing `needle`; returns the child, the line
/// and a receiver of later lines.
fn start_and_wait(cmd: &mut Command, needle: &str) -> (Guard, String, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(needle) {
            return (guard, line, rx);
        }
        seen.push(line);
    }
    panic!("{cmd:?}: no line with {needle:?} within 20 s; saw {seen:#?}");
}

fn run(cmd: &mut Command, limit: Duration) -> Output {
    run_fed(cmd, limit, None)
}

/// [`run`], writing `input` (if any) to the command's standard input through a pipe, from a
/// thread and in small pieces, so the reader sees a pipe that fills as it goes.
fn run_fed(cmd: &mut Command, limit: Duration, input: Option<Vec<u8>>) -> Output {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = Guard(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
    );
    let writer = input.map(|input| {
        use std::io::Write;
        let mut stdin = child.0.stdin.take().unwrap();
        std::thread::spawn(move || {
            for chunk in input.chunks(1000) {
                if stdin.write_all(chunk).is_err() {
                    return;
                }
            }
        })
    });
    let deadline = Instant::now() + limit;
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{cmd:?} outlived {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let mut out = Output {
        status: child.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out.stdout)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut out.stderr)
        .unwrap();
    out
}

fn vidcast() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vidcast"));
    c.env_remove("RUST_LOG");
    c
}

/// `prefix` (e.g. `ip netns exec NS`) then the vidcast binary.
fn vidcast_in(prefix: &[&str]) -> Command {
    if prefix.is_empty() {
        return vidcast();
    }
    let mut c = Command::new(prefix[0]);
    c.args(&prefix[1..]).arg(env!("CARGO_BIN_EXE_vidcast"));
    c.env_remove("RUST_LOG");
    c
}

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vidcast-analyze-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Stops a capture tool so it flushes its file.
fn stop(mut capture: Guard) {
    signal(&capture, libc::SIGINT);
    wait_exit(
        &mut capture,
        Duration::from_secs(10),
        "capture did not stop on SIGINT",
    );
}

/// Sends `sig` to a child.
fn signal(child: &Guard, sig: libc::c_int) {
    // SAFETY: kill on a pid we spawned and have not reaped.
    unsafe {
        libc::kill(child.0.id() as i32, sig);
    }
}

/// Waits up to `limit` for a child to exit (`why` names the failure).
fn wait_exit(child: &mut Guard, limit: Duration, why: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `vidcast serve` (behind `prefix`, e.g. `ip netns exec NS`) and returns its address.
fn start_hub(prefix: &[&str], listen: &str) -> (Guard, SocketAddr) {
    let needle = "hub listening for clients on ";
    let (hub, line, _) = start_and_wait(
        vidcast_in(prefix).args(["serve", "--listen", listen, "--http", "off"]),
        needle,
    );
    let addr = line.rsplit(needle).next().unwrap().trim().parse().unwrap();
    (hub, addr)
}

/// Starts a hub (in `prefix`'s namespace), captures with `capture_cmd` (its args end with the
/// file and filter), streams `frames` frames, and returns when the capture is written.
fn stream_and_capture(
    prefix: &[&str],
    listen: &str,
    capture: impl FnOnce(u16) -> (Command, &'static str),
    frames: u32,
    size: (u32, u32),
) {
    let (_hub, addr) = start_hub(prefix, listen);
    let (mut cmd, ready) = capture(addr.port());
    let (cap, _, _) = start_and_wait(&mut cmd, ready);
    send_and_stop(
        vidcast_in(prefix)
            // JPEG: every frame a few kB, so the capture has volume to analyse.
            .args([
                "send", "--name", "analyzed", "--codec", "jpeg", "--fps", "60",
            ])
            .args([
                "--width",
                &size.0.to_string(),
                "--height",
                &size.1.to_string(),
            ])
            .args(["--frames", &frames.to_string(), &addr.to_string()]),
        cap,
    );
}

/// Runs a `vidcast send` command to its end, then stops the capture `cap` once the last ACKs
/// and the FIN exchange had time to reach it.
fn send_and_stop(send: &mut Command, cap: Guard) {
    let sent = run(send, Duration::from_secs(60));
    assert!(
        sent.status.success(),
        "send: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    stop(cap);
}

fn tcpdump(args: &[&str], file: &Path, port: u16) -> (Command, &'static str) {
    let mut c = Command::new("tcpdump");
    // Immediate mode: without it packets wait in the kernel ring until a block fills or times
    // out, and those still waiting when tcpdump is stopped never reach the file.
    c.args(args)
        .args(["--immediate-mode", "-U", "-w"])
        .arg(file)
        .args(["tcp", "port", &port.to_string()]);
    (c, "listening on")
}

/// Per direction (sender, receiver) what tshark says.
#[derive(Debug, Default, Clone, PartialEq)]
struct Counts {
    packets: u64,
    bytes: u64,
    retransmissions: u64,
    dup_acks: u64,
    out_of_order: u64,
    /// ack_rtt samples timing this direction's data (taken from the other direction's ACKs).
    rtt_ms: Vec<f64>,
}

fn tshark(file: &Path) -> HashMap<(SocketAddr, SocketAddr), Counts> {
    let out = run(
        Command::new("tshark")
            .args(["-n", "-r"])
            .arg(file)
            .args([
                "-Y",
                "tcp",
                "-T",
                "fields",
                "-E",
                "separator=\t",
                "-E",
                "occurrence=f",
            ])
            .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport"])
            .args(["-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"])
            .args(["-e", "frame.len", "-e", "tcp.analysis.retransmission"])
            .args([
                "-e",
                "tcp.analysis.duplicate_ack",
                "-e",
                "tcp.analysis.out_of_order",
            ])
            .args(["-e", "tcp.analysis.ack_rtt"]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: HashMap<(SocketAddr, SocketAddr), Counts> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let ip = |v4: &str, v6: &str| {
            if v4.is_empty() {
                v6.to_owned()
            } else {
                v4.to_owned()
            }
        };
        let src = SocketAddr::new(ip(f[0], f[1]).parse().unwrap(), f[2].parse().unwrap());
        let dst = SocketAddr::new(ip(f[3], f[4]).parse().unwrap(), f[5].parse().unwrap());
        let c = map.entry((src, dst)).or_default();
        c.packets += 1;
        c.bytes += f[6].parse::<u64>().unwrap();
        c.retransmissions += u64::from(!f[7].is_empty());
        c.dup_acks += u64::from(!f[8].is_empty());
        c.out_of_order += u64::from(!f[9].is_empty());
        if let Ok(rtt) = f[10].parse::<f64>() {
            map.entry((dst, src)).or_default().rtt_ms.push(rtt * 1e3);
        }
    }
    map
}

fn analyze_json(file: &Path) -> Vec<Value> {
    let out = run(
        vidcast()
            .arg("analyze")
            .arg(file)
            .args(["--all", "--format", "json"]),
        Duration::from_secs(120),
    );
    json_of(&out)
}

/// Compares vidcast's and tshark's reading of `file`; returns vidcast's connections.
fn compare_with_tshark(file: &Path) -> Vec<Value> {
    let ours = analyze_json(file);
    let theirs = tshark(file);
    assert!(!ours.is_empty(), "no connection in {file:?}");
    let mut directions = 0;
    for c in &ours {
        let a: SocketAddr = c["a"].as_str().unwrap().parse().unwrap();
        let b: SocketAddr = c["b"].as_str().unwrap().parse().unwrap();
        for (key, name) in [((a, b), "a_to_b"), ((b, a), "b_to_a")] {
            let d = &c[name];
            let t = theirs.get(&key).cloned().unwrap_or_default();
            let what = format!("{file:?} {} → {} ({name})", key.0, key.1);
            let n = |k: &str| d[k].as_u64().unwrap();
            assert_eq!(n("packets"), t.packets, "packets {what}");
            assert_eq!(n("bytes"), t.bytes, "bytes {what}");
            assert_eq!(
                n("retransmissions"),
                t.retransmissions,
                "retransmissions {what}"
            );
            assert_eq!(n("dup_acks"), t.dup_acks, "dup ACKs {what}");
            assert_eq!(n("out_of_order"), t.out_of_order, "out-of-order {what}");
            eprintln!(
                "{what}: {} packets, {} bytes, {} retransmissions, {} dup ACKs, {} out-of-order, RTT {} (tshark: {} samples)",
                t.packets, t.bytes, t.retransmissions, t.dup_acks, t.out_of_order, d["rtt_ms"], t.rtt_ms.len()
            );
            let rtt = &d["rtt_ms"];
            let samples = rtt["samples"].as_u64().unwrap();
            if t.rtt_ms.is_empty() {
                assert_eq!(samples, 0, "{what}");
                continue;
            }
            let t_min = t.rtt_ms.iter().copied().fold(f64::INFINITY, f64::min);
            let t_max = t.rtt_ms.iter().copied().fold(0.0, f64::max);
            let t_avg = t.rtt_ms.iter().sum::<f64>() / t.rtt_ms.len() as f64;
            let (min, avg, max) = (
                rtt["min"].as_f64().unwrap(),
                rtt["avg"].as_f64().unwrap(),
                rtt["max"].as_f64().unwrap(),
            );
            // Our JSON rounds to 1 µs.
            let close = |x: f64, y: f64| (x - y).abs() <= 0.0011;
            // Exact, with loss too: by default we sample as tshark does (Karn is --rtt karn).
            assert_eq!(samples, t.rtt_ms.len() as u64, "RTT samples {what}");
            assert!(close(min, t_min), "RTT min {min} vs tshark {t_min} {what}");
            assert!(close(avg, t_avg), "RTT avg {avg} vs tshark {t_avg} {what}");
            assert!(close(max, t_max), "RTT max {max} vs tshark {t_max} {what}");
            directions += 1;
        }
    }
    // Every flow tshark saw is one of ours.
    for key in theirs.keys() {
        assert!(
            ours.iter().any(|c| {
                let (a, b) = (c["a"].as_str().unwrap(), c["b"].as_str().unwrap());
                (key.0.to_string() == a && key.1.to_string() == b)
                    || (key.0.to_string() == b && key.1.to_string() == a)
            }),
            "tshark saw {key:?}, we did not"
        );
    }
    assert!(directions > 0, "no RTT compared in {file:?}");
    ours
}

fn can_capture() -> bool {
    if !have(&["tcpdump", "tshark"]) {
        return false;
    }
    if !is_root() {
        assert!(!is_ci(), "CI=true but not root: capturing needs root");
        eprintln!("\n*** SKIPPING: capturing needs root ***\n");
        return false;
    }
    true
}

/// A capture of the lossy-link test whose first SYN was lost: Wireshark times the first RTT
/// from the SYN sent again, so the late segments are retransmissions (6), not out-of-order.
#[test]
fn a_capture_with_a_resent_syn_matches_tshark() {
    if !have(&["tshark"]) {
        return;
    }
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures/lossy_link_resent_syn.pcap");
    let conns = compare_with_tshark(&file);
    assert_eq!(conns[0]["a_to_b"]["retransmissions"], 6);
}

#[test]
fn loopback_ipv4_capture_matches_tshark() {
    if !can_capture() {
        return;
    }
    let dir = temp_dir("lo4");
    let file = dir.join("lo.pcap");
    stream_and_capture(
        &[],
        "127.0.0.1:0",
        |port| tcpdump(&["-i", "lo", "-s", "0"], &file, port),
        40,
        (320, 240),
    );
    let conns = compare_with_tshark(&file);
    let c = &conns[0];
    assert!(c["handshake_seen"].as_bool().unwrap());
    assert!(
        c["a_to_b"]["payload_bytes"].as_u64().unwrap() > 40 * 1000,
        "{c}"
    );
    // Graphs from the real capture: all four per data direction, titled with the flow.
    let out = dir.join("graphs");
    let r = run(
        vidcast().arg("analyze").arg(&file).arg("--out").arg(&out),
        Duration::from_secs(60),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stevens = std::fs::read_to_string(out.join("conn1_a-to-b_stevens.svg")).unwrap();
    assert!(stevens.contains(&format!(
        "{} → {}",
        c["a"].as_str().unwrap(),
        c["b"].as_str().unwrap()
    )));
    for g in ["throughput", "rtt", "inflight"] {
        assert!(out.join(format!("conn1_a-to-b_{g}.svg")).exists(), "{g}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loopback_ipv6_nanosecond_capture_matches_tshark() {
    if !can_capture() {
        return;
    }
    let dir = temp_dir("lo6");
    let file = dir.join("lo6.pcap");
    stream_and_capture(
        &[],
        "[::1]:0",
        |port| {
            tcpdump(
                &["-i", "lo", "-s", "128", "--time-stamp-precision=nano"],
                &file,
                port,
            )
        },
        30,
        (320, 240),
    );
    let conns = compare_with_tshark(&file);
    assert!(conns[0]["a"].as_str().unwrap().starts_with("[::1]:"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn any_interface_cooked_captures_match_tshark() {
    if !can_capture() {
        return;
    }
    let dir = temp_dir("any");
    // tcpdump's default for "any" (Linux cooked v2 with this libpcap), then v1 explicitly.
    for (name, extra) in [("sll2", None), ("sll1", Some("LINUX_SLL"))] {
        let file = dir.join(format!("{name}.pcap"));
        stream_and_capture(
            &[],
            "127.0.0.1:0",
            |port| {
                let mut args = vec!["-i", "any", "-s", "200"];
                if let Some(y) = extra {
                    args.extend(["-y", y]);
                }
                tcpdump(&args, &file, port)
            },
            20,
            (320, 240),
        );
        let link = run(
            Command::new("capinfos").args(["-E"]).arg(&file),
            Duration::from_secs(30),
        );
        let link = String::from_utf8_lossy(&link.stdout).into_owned();
        assert!(link.contains("Linux cooked"), "{name}: {link}");
        compare_with_tshark(&file);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dumpcap_pcapng_capture_matches_tshark() {
    if !can_capture() || !have(&["dumpcap"]) {
        return;
    }
    let dir = temp_dir("ng");
    let file = dir.join("lo.pcapng");
    stream_and_capture(
        &[],
        "127.0.0.1:0",
        |port| {
            let mut c = Command::new("dumpcap");
            c.args(["-i", "lo", "-q", "-w"])
                .arg(&file)
                .args(["-f", &format!("tcp port {port}")]);
            (c, "Capturing on")
        },
        20,
        (320, 240),
    );
    assert_eq!(
        &std::fs::read(&file).unwrap()[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a]
    );
    compare_with_tshark(&file);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two namespaces joined by a veth pair, deleted on drop (also on panic).
struct Namespaces {
    names: [String; 2],
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn sh(cmd: &[&str]) {
    let out = run(
        Command::new(cmd[0]).args(&cmd[1..]),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two network namespaces joined by a veth pair, addressed 10.213.X.1 (client) and .2 (hub);
/// deleted when the first value drops. Names start with `prefix` (3 characters).
fn veth_namespaces(prefix: &str) -> (Namespaces, [String; 2], [String; 2]) {
    let tag = format!("{}", std::process::id() % 100_000);
    let ns = Namespaces {
        names: [format!("{prefix}-c{tag}"), format!("{prefix}-h{tag}")],
    };
    let (client, hub) = (ns.names[0].as_str(), ns.names[1].as_str());
    let (veth_c, veth_h) = (format!("{prefix}c{tag}"), format!("{prefix}h{tag}"));
    let octet = (std::process::id() % 200 + 20).to_string();
    let (ip_c, ip_h) = (format!("10.213.{octet}.1"), format!("10.213.{octet}.2"));
    for n in [client, hub] {
        sh(&["ip", "netns", "add", n]);
        sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }
    sh(&[
        "ip", "link", "add", &veth_c, "netns", client, "type", "veth", "peer", "name", &veth_h,
        "netns", hub,
    ]);
    for (n, ip, veth) in [(client, &ip_c, &veth_c), (hub, &ip_h, &veth_h)] {
        sh(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            veth,
        ]);
        sh(&["ip", "-n", n, "link", "set", veth, "up"]);
    }
    (ns, [veth_c, veth_h], [ip_c, ip_h])
}

#[test]
fn lossy_link_in_namespaces_retransmissions_match_tshark() {
    if !can_capture() || !have(&["ip", "nft", "tc"]) {
        return;
    }
    let (ns, [veth_c, _veth_h], [_ip_c, ip_h]) = veth_namespaces("vca");
    let (client, hub) = (ns.names[0].as_str(), ns.names[1].as_str());
    // 20 Mbit/s out of the client; the hub drops ~3 % of what arrives (no netem here).
    sh(&[
        "ip", "netns", "exec", client, "tc", "qdisc", "add", "dev", &veth_c, "root", "tbf", "rate",
        "20mbit", "burst", "32kbit", "latency", "100ms",
    ]);
    sh(&[
        "ip", "netns", "exec", hub, "nft", "add", "table", "inet", "loss",
    ]);
    sh(&[
        "ip",
        "netns",
        "exec",
        hub,
        "nft",
        "add",
        "chain",
        "inet",
        "loss",
        "in",
        "{ type filter hook input priority 0 ; }",
    ]);
    sh(&[
        "ip", "netns", "exec", hub, "nft", "add", "rule", "inet", "loss", "in", "tcp", "dport",
        "!=", "0", "numgen", "random", "mod", "100", "<", "3", "drop",
    ]);

    let dir = temp_dir("loss");
    let file = dir.join("veth.pcap");
    let prefix_hub = ["ip", "netns", "exec", hub];
    let prefix_client = ["ip", "netns", "exec", client];
    // The hub lives in its namespace; the client and the capture in the other.
    let (_hub, addr) = start_hub(&prefix_hub, &format!("{ip_h}:0"));
    let mut cap_cmd = Command::new("ip");
    cap_cmd
        .args([
            "netns",
            "exec",
            client,
            "tcpdump",
            "-i",
            &veth_c,
            "-s",
            "128",
            "--immediate-mode",
            "-U",
        ])
        .arg("-w")
        .arg(&file)
        .args(["tcp", "port", &addr.port().to_string()]);
    let (cap, _, _) = start_and_wait(&mut cap_cmd, "listening on");
    let sent = run(
        vidcast_in(&prefix_client)
            .args(["send", "--name", "lossy", "--codec", "jpeg", "--fps", "30"])
            .args(["--width", "640"])
            .args(["--height", "480", "--frames", "60", &addr.to_string()]),
        Duration::from_secs(90),
    );
    assert!(
        sent.status.success(),
        "send: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    stop(cap);

    let conns = compare_with_tshark(&file);
    let retransmitted: u64 = conns
        .iter()
        .map(|c| c["a_to_b"]["retransmissions"].as_u64().unwrap())
        .sum();
    assert!(
        retransmitted > 0,
        "a 3 % drop rule caused no retransmission"
    );
    drop(ns);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `vidcast analyze ARGS` with `input` written to its standard input through a pipe.
fn run_with_stdin(args: &[&str], input: Vec<u8>) -> Output {
    run_fed(
        vidcast().arg("analyze").args(args),
        Duration::from_secs(60),
        Some(input),
    )
}

fn json_of(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "analyze: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn lossy_capture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures/lossy_link_resent_syn.pcap")
}

/// `gzip -c FILE > FILE.gz`.
fn gzip(file: &Path, dir: &Path) -> PathBuf {
    let gz = dir.join(format!(
        "{}.gz",
        file.file_name().unwrap().to_string_lossy()
    ));
    let out = run(
        Command::new("gzip").arg("-c").arg(file),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "gzip failed");
    std::fs::write(&gz, out.stdout).unwrap();
    gz
}

#[test]
fn a_capture_read_from_a_pipe_stdin_or_gzipped_is_read_as_the_file_is() {
    if !have(&["gzip"]) {
        return;
    }
    let file = lossy_capture();
    let bytes = std::fs::read(&file).unwrap();
    let expected = analyze_json(&file);
    assert!(!expected.is_empty());
    let args = ["--all", "--format", "json"];
    let piped = |path: &str, input: Vec<u8>| {
        json_of(&run_with_stdin(&[&[path][..], &args[..]].concat(), input))
    };
    assert_eq!(piped("-", bytes.clone()), expected, "- from a pipe");
    assert_eq!(piped("/dev/stdin", bytes.clone()), expected, "/dev/stdin");
    let dir = temp_dir("gz");
    let gz = gzip(&file, &dir);
    assert_eq!(analyze_json(&gz), expected, ".pcap.gz file");
    let gz_bytes = std::fs::read(&gz).unwrap();
    assert_eq!(piped("-", gz_bytes), expected, "gzip through a pipe");
    // An empty pipe is named as such, not as an empty file.
    let empty = run_with_stdin(&["-"], Vec::new());
    assert!(!empty.status.success());
    let err = String::from_utf8_lossy(&empty.stderr);
    assert!(err.contains("the input is empty (0 bytes)"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_gzipped_capture_matches_tshark() {
    if !have(&["tshark", "gzip"]) {
        return;
    }
    let dir = temp_dir("gz-tshark");
    let gz = gzip(&lossy_capture(), &dir);
    let conns = compare_with_tshark(&gz);
    assert_eq!(conns[0]["a_to_b"]["retransmissions"], 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With --out, a stream is read once: the first pass keeps a copy for the graphs' pass and
/// removes it afterwards.
#[test]
fn graphs_from_standard_input_are_written_and_the_copy_removed() {
    let dir = temp_dir("stdin-out");
    let out = dir.join("graphs");
    let r = run_with_stdin(
        &["-", "--out", out.to_str().unwrap()],
        std::fs::read(lossy_capture()).unwrap(),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "conn1_a-to-b_stevens.svg"),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "the copy of the stream is left behind: {names:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `tcpdump -U -w - | vidcast analyze --follow -`: lines about the connection arrive while it
/// streams (before the capture ends), and the summary when tcpdump stops.
#[test]
fn follow_reports_a_live_connection_piped_from_tcpdump() {
    if !can_capture() {
        return;
    }
    let (_hub, addr) = start_hub(&[], "127.0.0.1:0");
    let mut dump = Command::new("tcpdump");
    dump.args(["-i", "lo", "--immediate-mode", "-U", "-w", "-"])
        .args(["tcp", "port", &addr.port().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dump = dump.spawn().unwrap();
    let dump_out = dump.stdout.take().unwrap();
    let dump_err = dump.stderr.take().unwrap();
    let dump = Guard(dump);
    // Wait for tcpdump to listen (it says so on stderr).
    let (tx_err, rx_err) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(dump_err).lines().map_while(Result::ok) {
            if tx_err.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx_err
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("tcpdump says it is listening within 20 s");
        if line.contains("listening on") {
            break;
        }
    }
    let mut analyze = Guard(
        vidcast()
            .args(["analyze", "--follow", "--interval", "0.2", "-"])
            .stdin(Stdio::from(dump_out))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = analyze.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let sent = run(
        vidcast().args([
            "send",
            "--name",
            "followed",
            "--codec",
            "jpeg",
            "--fps",
            "30",
            "--frames",
            "45",
            "--width",
            "320",
            "--height",
            "240",
            &addr.to_string(),
        ]),
        Duration::from_secs(60),
    );
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // tcpdump still runs: whatever arrived so far came while the capture was live.
    let mut live = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while live.len() < 3 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => live.push(line),
            Err(_) => break,
        }
    }
    assert!(
        live.iter()
            .filter(|l| l.contains(" conn1 ")
                && l.contains(&format!("→ 127.0.0.1:{}", addr.port()))
                && l.contains("pkts"))
            .count()
            >= 2,
        "no --follow lines while the capture ran: {live:?}"
    );
    stop(dump);
    let mut rest = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        rest.push(line);
    }
    let status = wait_exit(
        &mut analyze,
        Duration::from_secs(10),
        "analyze did not end with its input",
    );
    assert!(status.success(), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("-: ") && l.contains("1 connections")),
        "no summary at the end: {rest:?}"
    );
}

/// A raw-IP (LINKTYPE_RAW) pcap, µs, little-endian, from (seconds, fraction, IP packet).
fn raw_ip_pcap(records: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    for x in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 101] {
        f.extend_from_slice(&x.to_le_bytes());
    }
    for (secs, frac, ip) in records {
        for x in [*secs, *frac, ip.len() as u32, ip.len() as u32] {
            f.extend_from_slice(&x.to_le_bytes());
        }
        f.extend_from_slice(ip);
    }
    f
}

/// An IPv4 + TCP header without payload (checksums 0: tshark does not check them).
fn ipv4_tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    ipv4_tcp_data(src, dst, (seq, ack, flags), 0, 40)
}

/// [`ipv4_tcp`] with `payload` bytes of data and `total_len` in the IPv4 header.
fn ipv4_tcp_data(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    (seq, ack, flags): (u32, u32, u8),
    payload: usize,
    total_len: u16,
) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total_len.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    p.extend_from_slice(&src.0);
    p.extend_from_slice(&dst.0);
    p.extend_from_slice(&src.1.to_be_bytes());
    p.extend_from_slice(&dst.1.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 0x20, 0, 0, 0, 0, 0]);
    p.resize(p.len() + payload, b'x');
    p
}

/// A record whose µs fraction is a whole second or more (10 s + 1 500 000 µs): tshark reads it
/// as 11.5 s and goes on, and so do we. A damaged record header (a caplen over 262 144) after a packet without TCP is
/// reported as corruption at its offset, as tshark refuses it, not as "no TCP segments".
#[test]
fn odd_fractions_and_damaged_record_headers_are_read_as_tshark_reads_them() {
    if !have(&["tshark"]) {
        return;
    }
    let dir = temp_dir("odd-ts");
    let (a, b) = (([192, 0, 2, 10], 40312), ([192, 0, 2, 1], 9999));
    let file = dir.join("frac.pcap");
    std::fs::write(
        &file,
        raw_ip_pcap(&[
            (10, 1, ipv4_tcp(a, b, 100, 0, 0x02)),
            (10, 1_500_000, ipv4_tcp(b, a, 500, 101, 0x12)),
            (10, 999_999, ipv4_tcp(a, b, 101, 501, 0x10)),
        ]),
    )
    .unwrap();
    // tshark reads all three and keeps the fraction as it is: it prints the second frame's time
    // unnormalised ("10.1500000000") and the next one's delta as -0.500001 s, i.e. the instant
    // 11.5 s. Its RTT text is garbled the same way, so the instants are compared instead.
    let theirs = run(
        Command::new("tshark").arg("-r").arg(&file).args([
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.time_delta",
        ]),
        Duration::from_secs(60),
    );
    assert!(theirs.status.success());
    let theirs = String::from_utf8_lossy(&theirs.stdout);
    let lines: Vec<&str> = theirs.lines().collect();
    assert_eq!(lines.len(), 3, "{theirs}");
    assert!(lines[1].starts_with("10.1500000000"), "{theirs}");
    assert!(
        lines[2].ends_with("-0.500001000"),
        "10.999999 s is 0.5 s before: {theirs}"
    );
    let conns = analyze_json(&file);
    assert_eq!(conns[0]["a_to_b"]["packets"], 2);
    // SYN at 10.000001, SYN/ACK at 11.5: not a reorder, an RTT of 1.5 s.
    assert_eq!(conns[0]["a_to_b"]["rtt_ms"]["min"], 1499.999);

    let damaged = dir.join("damaged.pcap");
    let mut bytes = raw_ip_pcap(&[(10, 1, vec![0x45; 20]), (10, 2, vec![0x45; 20])]);
    let second = 24 + 16 + 20;
    bytes[second + 8..second + 12].copy_from_slice(&300_000u32.to_le_bytes());
    bytes[second + 12..second + 16].copy_from_slice(&300_000u32.to_le_bytes());
    std::fs::write(&damaged, bytes).unwrap();
    let theirs = run(
        Command::new("tshark").arg("-r").arg(&damaged),
        Duration::from_secs(60),
    );
    let theirs = String::from_utf8_lossy(&theirs.stderr);
    assert!(theirs.contains("damaged or corrupt"), "tshark: {theirs}");
    let ours = run(
        vidcast().arg("analyze").arg(&damaged),
        Duration::from_secs(60),
    );
    assert!(!ours.status.success());
    let ours = String::from_utf8_lossy(&ours.stderr);
    assert!(
        ours.contains(&format!("corrupt capture at byte offset {second}")),
        "{ours}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An IPv4 total length longer than the frame is not trusted: tshark takes the payload from the
/// frame ("IPv4 total length exceeds packet length") and so do we, so the next segment is not
/// taken for a retransmission of phantom bytes, and the count is reported.
#[test]
fn an_ip_total_length_past_the_frame_is_trimmed_as_tshark_does() {
    if !have(&["tshark"]) {
        return;
    }
    let dir = temp_dir("ip-len");
    let (a, b) = (([192, 0, 2, 10], 40312), ([192, 0, 2, 1], 9999));
    let file = dir.join("iplen.pcap");
    std::fs::write(
        &file,
        raw_ip_pcap(&[
            (10, 0, ipv4_tcp(a, b, 100, 0, 0x02)),
            (10, 1000, ipv4_tcp(b, a, 500, 101, 0x12)),
            (10, 2000, ipv4_tcp(a, b, 101, 501, 0x10)),
            // 10 bytes of data, but the header claims 1000 bytes in all.
            (10, 3000, ipv4_tcp_data(a, b, (101, 501, 0x18), 10, 1000)),
            (10, 4000, ipv4_tcp_data(a, b, (111, 501, 0x18), 10, 50)),
            (10, 5000, ipv4_tcp(b, a, 501, 121, 0x10)),
        ]),
    )
    .unwrap();
    let conns = compare_with_tshark(&file);
    assert_eq!(conns[0]["a_to_b"]["payload_bytes"], 20);
    assert_eq!(conns[0]["a_to_b"]["retransmissions"], 0);
    let text = run(vidcast().arg("analyze").arg(&file), Duration::from_secs(60));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("(1 with an IP length past the frame's end"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--rtt karn` takes no samples from ACKs of resent data: on the capture with a resent SYN
/// and retransmissions it has fewer samples than the default (tshark's rule), never more.
#[test]
fn rtt_karn_takes_fewer_samples_than_the_tshark_rule_on_a_lossy_capture() {
    let file = lossy_capture();
    let default = analyze_json(&file);
    let karn = json_of(&run(
        vidcast()
            .arg("analyze")
            .arg(&file)
            .args(["--all", "--format", "json", "--rtt", "karn"]),
        Duration::from_secs(60),
    ));
    let samples = |v: &[Value]| -> u64 {
        v.iter()
            .flat_map(|c| ["a_to_b", "b_to_a"].map(|d| c[d]["rtt_ms"]["samples"].as_u64().unwrap()))
            .sum()
    };
    assert!(
        samples(&karn) < samples(&default),
        "karn {} vs tshark rule {}",
        samples(&karn),
        samples(&default)
    );
}

/// `--from/--to` draw only part of a connection; a range that ends before it starts is refused.
#[test]
fn graphs_of_a_time_range_keep_to_it() {
    let dir = temp_dir("range");
    let out = dir.join("csv");
    let r = run(
        vidcast()
            .arg("analyze")
            .arg(lossy_capture())
            .args(["--format", "csv", "--from", "0.5", "--to", "1.5", "--out"])
            .arg(&out),
        Duration::from_secs(60),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let csv = std::fs::read_to_string(out.join("conn1_a-to-b_segments.csv")).unwrap();
    let times: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(!times.is_empty(), "{csv}");
    assert!(times.iter().all(|t| (0.5..=1.5).contains(t)), "{times:?}");
    let bad = run(
        vidcast()
            .arg("analyze")
            .arg(lossy_capture())
            .args(["--from", "2", "--to", "1", "--out"])
            .arg(&out),
        Duration::from_secs(60),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0 ≤ from < to"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A capture of 5 000 connections (a SYN each, then the busiest one's data) read with
/// `--max-connections 100`: at most 100 rows, the drop counted in the summary line, the busiest
/// connection (active to the end) still reported with all its packets, and its graphs written
/// from the second pass (same ids).
#[test]
fn max_connections_bounds_the_table_and_counts_the_dropped() {
    use vidcast_analysis::capture::LinkType;
    use vidcast_analysis::synth::{self, Frame, TcpPacket};
    let dir = temp_dir("max-conns");
    let t0 = vidcast_analysis::Timestamp::from_parts(1_700_000_000, 0);
    let server: SocketAddr = "192.0.2.1:9999".parse().unwrap();
    let packet = |i: u32, port: u16, seq: u32, flags: u8, len: u32| TcpPacket {
        ts: t0.plus_ns(i64::from(i) * 1_000_000),
        src: SocketAddr::from(([192, 0, 2, 10], port)),
        dst: server,
        seq,
        ack: 1,
        flags,
        window: 512,
        payload_len: len,
        window_scale: None,
        sack: Vec::new(),
    };
    let mut frames = Vec::new();
    for i in 0..5_000u32 {
        let mut ps = vec![packet(i, 10_000 + i as u16, 0, 0x02, 0)];
        if i % 50 == 0 {
            ps.push(packet(i, 9_000, 1 + i * 20, 0x10, 1000));
        }
        frames.extend(ps.iter().map(|p| Frame {
            ts: p.ts,
            interface: 0,
            bytes: synth::encapsulate(LinkType::ETHERNET, &p.ip_bytes(), None),
        }));
    }
    let file = dir.join("many.pcap");
    std::fs::write(
        &file,
        synth::pcap(LinkType::ETHERNET, false, false, 65535, &frames),
    )
    .unwrap();
    let out = dir.join("graphs");
    let r = run(
        vidcast()
            .arg("analyze")
            .arg(&file)
            .args(["--max-connections", "100", "--format", "json", "--out"])
            .arg(&out),
        Duration::from_secs(60),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let busiest = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(busiest, 1, "one JSON file for the busiest connection");
    let r = run(
        vidcast()
            .arg("analyze")
            .arg(&file)
            .args(["--max-connections", "100"]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&r.stdout);
    let first = text.lines().next().unwrap();
    assert!(first.contains("5100 packets, 5100 TCP, "), "{first}");
    let held: usize = first
        .split(" TCP, ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(held <= 100, "{first}");
    assert!(
        first.contains(&format!(
            "{} connections idle longest dropped",
            5_001 - held
        )),
        "{first}"
    );
    assert!(text.contains("192.0.2.10:9000"), "{text}");
    assert!(
        text.contains("100 pkts") || text.contains("100 packets") || text.contains(" 100 "),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `analyze --live` on one end of a veth pair between two namespaces the test makes, with a
/// filter, while a publisher streams to a hub at the other end: SIGTERM ends it cleanly, the
/// graphs and summary are written, and it saw exactly what tcpdump saw on the same interface
/// (packets, payload, retransmissions each way).
#[test]
fn live_capture_on_a_veth_matches_tcpdump_and_ends_cleanly_on_sigterm() {
    if !can_capture() || !have(&["ip"]) {
        return;
    }
    let (ns, [veth_c, _], [_, ip_h]) = veth_namespaces("vcl");
    let (client, hub) = (ns.names[0].as_str(), ns.names[1].as_str());
    let dir = temp_dir("live");
    let (_hub, addr) = start_hub(&["ip", "netns", "exec", hub], &format!("{ip_h}:0"));
    let port = addr.port().to_string();
    let file = dir.join("tcpdump.pcap");
    let (cap, _, _) = start_and_wait(
        Command::new("ip")
            .args(["netns", "exec", client, "tcpdump", "-i", &veth_c])
            .args(["--immediate-mode", "-U", "-w"])
            .arg(&file)
            .args(["tcp", "port", &port]),
        "listening on",
    );
    let out = dir.join("graphs");
    let (live, _, _) = start_and_wait(
        vidcast_in(&["ip", "netns", "exec", client])
            .args(["analyze", "--live", &veth_c, "--follow", "--format", "json"])
            .args([
                "--filter",
                &format!("tcp and port {port} and host {ip_h}"),
                "--out",
            ])
            .arg(&out),
        "capturing on",
    );
    send_and_stop(
        vidcast_in(&["ip", "netns", "exec", client])
            .args(["send", "--name", "live", "--codec", "jpeg", "--fps", "30"])
            .args(["--frames", "30", &addr.to_string()]),
        cap,
    );
    let mut live = live;
    signal(&live, libc::SIGTERM);
    let status = wait_exit(
        &mut live,
        Duration::from_secs(20),
        "analyze --live did not end on SIGTERM",
    );
    assert!(status.success(), "analyze --live exited with {status}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("conn1.json")).unwrap()).unwrap();
    let ours = &doc["summary"];
    let theirs = analyze_json(&file);
    assert_eq!(theirs.len(), 1, "one connection on the port: {theirs:?}");
    for d in ["a_to_b", "b_to_a"] {
        for k in ["packets", "payload_bytes", "retransmissions"] {
            assert_eq!(ours[d][k], theirs[0][d][k], "{d} {k}: live vs tcpdump");
        }
    }
    assert!(
        ours["a_to_b"]["payload_bytes"].as_u64().unwrap() > 10_000,
        "{ours}"
    );
    let spool_left = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(spool_left, 0, "the stream's copy is removed");
    drop(ns);
    std::fs::remove_dir_all(&dir).unwrap();
}
