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

/// `vidcast serve` with TLS from `cert` and `key`, ingest on 127.0.0.1:0, web on `http`.
fn tls_hub(cert: &std::path::Path, key: &std::path::Path, http: &str) -> Server {
    Server::start_with(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        http,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
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

    let mut server = tls_hub(&cert, &key, "127.0.0.1:0");
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

/// A CA and a hub certificate it signed for `localhost` and 127.0.0.1, as PEM files in `dir`:
/// (ca.pem, hub-cert.pem, hub-key.pem).
fn ca_signed_hub_cert(dir: &std::path::Path, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("vidcast test CA {tag}"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut hub_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    hub_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let hub_key = KeyPair::generate().unwrap();
    let hub_cert = hub_params.signed_by(&hub_key, &issuer).unwrap();
    let paths = (
        dir.join(format!("{tag}-ca.pem")),
        dir.join(format!("{tag}-hub-cert.pem")),
        dir.join(format!("{tag}-hub-key.pem")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, hub_cert.pem()).unwrap();
    std::fs::write(&paths.2, hub_key.serialize_pem()).unwrap();
    paths
}

#[test]
fn send_with_tls_ca_trusts_a_hub_its_ca_signed_and_refuses_another_ca() {
    let dir = TempDir::new("tls-ca");
    let (ca, cert, key) = ca_signed_hub_cert(&dir.0, "good");
    let (other_ca, _, _) = ca_signed_hub_cert(&dir.0, "other");
    let mut server = tls_hub(&cert, &key, "off");
    let ingest = server.addr_after("hub listening for clients on ");
    // By name: the certificate is for "localhost", and the CA vouches for it.
    let by_name = format!("localhost:{}", ingest.port());
    let sent = run(
        vidcast()
            .args([
                "send", "--name", "ca-cam", "--width", "160", "--height", "120",
            ])
            .args([
                "--fps",
                "60",
                "--frames",
                "20",
                "--tls-ca",
                ca.to_str().unwrap(),
            ])
            .arg(&by_name),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "send failed: {stderr}");
    server.wait_line("\"ca-cam\" left", Duration::from_secs(5));

    // A CA that did not sign the hub's certificate: refused, not retried forever.
    let refused = run(
        vidcast()
            .args([
                "send",
                "--name",
                "wrong-ca",
                "--tls-ca",
                other_ca.to_str().unwrap(),
            ])
            .arg(&by_name),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
}

/// The wall over https: the page, its WebSocket (wss:) and the pictures all come through TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_works_over_https_and_wss() {
    let Some(chromium) = vidcast_testkit::chromium() else {
        return;
    };
    let dir = TempDir::new("tls-wall");
    let (_, cert, key) = ca_signed_hub_cert(&dir.0, "wall");
    let mut server = tls_hub(&cert, &key, "127.0.0.1:0");
    let ingest = server.addr_after("hub listening for clients on ");
    let web = server.addr_after("web wall on https://");
    let fingerprint = server
        .wait_line("certificate fingerprint", Duration::from_secs(5))
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let _publisher = KillOnDrop(
        common::vidcast()
            .args([
                "send", "--name", "wss-cam", "--width", "320", "--height", "240",
            ])
            .args(["--fps", "15", "--tls-fingerprint", &fingerprint])
            .arg(ingest.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The test's CA is not in Chromium's store; accepting it is this flag's whole purpose.
    let mut browser =
        vidcast_testkit::Browser::launch_with(&chromium, &["--ignore-certificate-errors"]).await;
    browser
        .navigate(&format!("https://localhost:{}/", web.port()))
        .await;
    let js = r#"(() => {
      const t = document.querySelector('.tile'); if (!t) return 'no tile';
      const c = t.querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lit = 0; for (let i = 0; i < d.length; i += 4 * 97) if (d[i] + d[i + 1] + d[i + 2] > 60) lit++;
      return `${location.protocol} ${t.querySelector('.label').textContent} lit=${lit}`;
    })()"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let last = browser.eval(js).await.as_str().unwrap_or("").to_owned();
        let lit: u32 = last
            .rsplit("lit=")
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if last.starts_with("https: ") && last.contains("wss-cam") && lit > 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no picture over wss: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ends a child process when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
