//! Two test hosts in network namespaces made by the test, joined by a veth pair, with a rate
//! limit (`tc tbf`) and random loss (nftables `numgen`; this kernel has no netem). Deleted on
//! drop, also on panic. Needs root and `ip`, `tc` and `nft`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A "client" and a "hub" namespace joined by a veth pair; the client's end shapes what it
/// sends.
#[derive(Debug)]
pub struct LinkedHosts {
    /// The client namespace's name (for `ip netns exec`).
    pub client: String,
    /// The hub namespace's name.
    pub hub: String,
    /// The client's address on the link.
    pub client_ip: String,
    /// The hub's address on the link.
    pub hub_ip: String,
    /// The client's end of the veth pair (inside `client`).
    pub client_dev: String,
    /// The hub's end of the veth pair (inside `hub`).
    pub hub_dev: String,
}

/// Whether namespaces can be made here: root and the tools. Under `CI=true` a missing piece
/// fails the test (see [`crate::require_tool`]).
pub fn available() -> bool {
    let tools = [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")];
    let have_tools = tools
        .iter()
        .all(|(tool, package)| crate::require_tool(tool, package).is_some());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let message = "network namespaces need root";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}: CI=true, so this test fails rather than skipping");
        }
        eprintln!("SKIPPED: {message}");
    }
    have_tools && root
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl LinkedHosts {
    /// Makes the two namespaces and the link (no shaping yet). Names and addresses are unique
    /// per process and call, so tests can run in parallel.
    pub fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        // 10.215.X.Y/30 per pair: distinct subnets keep parallel tests apart.
        let subnet = (pid % 50) * 5 + n % 5;
        let (third, fourth) = (subnet / 64, (subnet % 64) * 4);
        let hosts = Self {
            client: format!("vcn-c{tag}"),
            hub: format!("vcn-h{tag}"),
            client_ip: format!("10.215.{third}.{}", fourth + 1),
            hub_ip: format!("10.215.{third}.{}", fourth + 2),
            client_dev: format!("vnc{tag}"),
            hub_dev: format!("vnh{tag}"),
        };
        for ns in [&hosts.client, &hosts.hub] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "link",
            "add",
            &hosts.client_dev,
            "netns",
            &hosts.client,
            "type",
            "veth",
            "peer",
            "name",
            &hosts.hub_dev,
            "netns",
            &hosts.hub,
        ]);
        for (ns, dev, ip) in [
            (&hosts.client, &hosts.client_dev, &hosts.client_ip),
            (&hosts.hub, &hosts.hub_dev, &hosts.hub_ip),
        ] {
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                dev,
            ]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        hosts
    }

    /// Limits what the client sends to `rate` (tc syntax, e.g. "5mbit") with a queue of
    /// `queue_ms` milliseconds, like a slow uplink with a modest buffer. Replaces any limit.
    pub fn limit_client_rate(&self, rate: &str, queue_ms: u32) {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.client,
            "tc",
            "qdisc",
            "replace",
            "dev",
            &self.client_dev,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kbit",
            "latency",
            &format!("{queue_ms}ms"),
        ]);
    }

    /// Drops `per_mille`/1000 of the TCP segments that reach the hub, at random.
    pub fn drop_to_hub(&self, per_mille: u32) {
        let exec = ["ip", "netns", "exec", &self.hub, "nft"];
        let run = |rest: &[&str]| {
            let mut args = exec.to_vec();
            args.extend_from_slice(rest);
            sh(&args);
        };
        run(&["add", "table", "inet", "vidcast_loss"]);
        run(&[
            "add",
            "chain",
            "inet",
            "vidcast_loss",
            "in",
            "{ type filter hook input priority 0 ; }",
        ]);
        run(&[
            "add",
            "rule",
            "inet",
            "vidcast_loss",
            "in",
            "meta",
            "l4proto",
            "tcp",
            "numgen",
            "random",
            "mod",
            "1000",
            "<",
            &per_mille.to_string(),
            "drop",
        ]);
    }

    /// Runs `f` on a thread inside namespace `ns`; sockets it makes stay in `ns` for life,
    /// whichever thread uses them later.
    pub fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on an open namespace file; it only changes this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// A std TCP listener on `hub_ip:0` inside the hub namespace.
    pub fn listen_in_hub(&self) -> std::net::TcpListener {
        let addr = format!("{}:0", self.hub_ip);
        Self::run_in(&self.hub, move || {
            let listener =
                std::net::TcpListener::bind(&addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
            listener.set_nonblocking(true).expect("nonblocking");
            listener
        })
    }
}

impl Drop for LinkedHosts {
    fn drop(&mut self) {
        for ns in [&self.client, &self.hub] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
