//! `vidcast cert`, then `serve --tls-*` and `send --tls-fingerprint` as separate processes.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{run, vidcast, Server};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vidcast-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cert_then_tls_serve_and_pinned_send_stream_and_a_wrong_pin_is_refused() {
    let dir = TempDir::new("tls-cli");
    let out = dir.0.to_str().unwrap();
    let made = run(
        vidcast().args(["cert", "--out", out, "--name", "127.0.0.1"]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&made.stdout).into_owned();
    assert!(
        made.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let fingerprint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("certificate fingerprint (SHA-256): "))
        .unwrap_or_else(|| panic!("no fingerprint in {stdout}"))
        .to_owned();
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    let cert = dir.0.join("hub-cert.pem");
    let key = dir.0.join("hub-key.pem");
    let serve_line = format!(
        "vidcast serve --tls-cert {} --tls-key {}",
        cert.display(),
        key.display()
    );
    assert!(stdout.contains(&serve_line), "{stdout}");
    assert!(stdout.contains(&format!("vidcast send HUB --tls-fingerprint {fingerprint}")));

    // Never overwrite without --force.
    let again = run(
        vidcast().args(["cert", "--out", out]),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );

    let mut server = Server::start_with(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let ingest = server.addr_after("hub listening for clients on ");
    server.wait_line("web wall on https://", Duration::from_secs(10));
    assert!(server
        .wait_line("certificate fingerprint", Duration::from_secs(1))
        .contains(&fingerprint));

    // The fingerprint typed in lowercase without colons works too.
    let bare = fingerprint.replace(':', "").to_lowercase();
    let sent = run(
        vidcast()
            .args([
                "send",
                "--name",
                "tls-cli-cam",
                "--width",
                "160",
                "--height",
                "120",
            ])
            .args(["--fps", "60", "--frames", "30", "--tls-fingerprint", &bare])
            .arg(ingest.to_string()),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "send failed: {stderr}");
    assert!(stderr.contains("connected to hub"), "{stderr}");
    server.wait_line("\"tls-cli-cam\" left", Duration::from_secs(5));

    // A wrong pin: refused at once (reconnection on), naming both fingerprints.
    let wrong = format!("{}{}", "00:".repeat(31), "00");
    let refused = run(
        vidcast()
            .args(["send", "--name", "impostor", "--tls-fingerprint", &wrong])
            .arg(ingest.to_string()),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&fingerprint) && stderr.contains(&wrong),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");

    // --tls alone says what it needs.
    let bare_tls = run(
        vidcast().args(["send", "--tls"]).arg(ingest.to_string()),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&bare_tls.stderr);
    assert!(!bare_tls.status.success());
    assert!(
        stderr.contains("--tls-fingerprint") && stderr.contains("--tls-ca"),
        "{stderr}"
    );
}

#[test]
fn cert_into_an_unwritable_place_says_where() {
    // /proc refuses new directories even to root.
    let made = run(
        vidcast().args(["cert", "--out", "/proc/vidcast-certs"]),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&made.stderr);
    assert!(!made.status.success());
    assert!(stderr.contains("/proc/vidcast-certs"), "{stderr}");
}
