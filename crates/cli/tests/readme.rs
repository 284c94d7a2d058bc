//! The README's first commands, run as they are written (on 127.0.0.1), so the README cannot
//! drift from the binary: the demo, the two-machine quick start, the service recipe's
//! environment variables.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{api, run, vidcast, Server};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The commands of the `sh` blocks in `text`, without comments, in order.
fn sh_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            line if in_sh => {
                let command = line.split(" #").next().unwrap_or_default().trim();
                if !command.is_empty() {
                    commands.push(command.to_owned());
                }
            }
            _ => {}
        }
    }
    commands
}

/// The text of the README from the heading starting with `heading` to the next `## `.
fn section(readme: &str, heading: &str) -> String {
    let start = readme
        .find(&format!("## {heading}"))
        .unwrap_or_else(|| panic!("no section {heading:?} in the README"));
    let rest = &readme[start + 3..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

/// `serve --help` (or another subcommand's), where defaults and variables are shown.
fn help(subcommand: &str) -> String {
    let out = run(
        vidcast().args([subcommand, "--help"]),
        Duration::from_secs(10),
    );
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first screen: one sentence on what vidcast is, then the two commands; the demo's wall
/// is where the README says, and it runs (on port 0 here: the machine's 8080 may be taken).
#[test]
fn the_readmes_first_commands_work_as_written() {
    let readme = readme();
    let first_block = sh_commands(&readme[..readme.find("\n## ").unwrap()]);
    assert_eq!(
        first_block,
        ["cargo run --release -- demo", "scripts/test"],
        "the README starts with the two commands"
    );
    assert!(readme.contains("# vidcast\n\nvidcast streams live video"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test");
    let mode = std::os::unix::fs::PermissionsExt::mode(&script.metadata().unwrap().permissions());
    assert!(mode & 0o111 != 0, "scripts/test is executable");

    // "the wall on http://127.0.0.1:8080": demo's default web address.
    assert!(readme.contains("the wall on http://127.0.0.1:8080"));
    assert!(help("demo").contains("[default: 127.0.0.1:8080]"));
    let out = run(
        vidcast()
            .args(["demo", "--duration", "2s", "--status-every", "500ms"])
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--width", "160", "--height", "120"]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("open http://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("4 live of 4 streams"),
        "the README's 4 clients: {stdout}"
    );
}

/// "Two machines": `vidcast serve`, then `vidcast send --name pi HUB_IP` on the Pi, then the
/// wall on port 8080; HUB_IP is 127.0.0.1 here and the ports are free ones.
#[test]
fn the_two_machine_quick_start_works_over_loopback() {
    let quick = section(&readme(), "Two machines");
    let commands = sh_commands(&quick);
    assert_eq!(commands[0], "vidcast serve");
    assert!(quick.contains("http://HUB_IP:8080"), "{quick}");
    let serve_help = help("serve");
    for (port, default) in [("9999/tcp", "0.0.0.0:9999"), ("8080/tcp", "0.0.0.0:8080")] {
        assert!(quick.contains(port), "the ports to open name {port}");
        assert!(serve_help.contains(&format!("[default: {default}]")));
    }

    let mut hub =
        Server::start_with(&["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    let ingest = hub.addr_after("hub listening for clients on ");
    let http = hub.addr_after("web wall on http://");
    let send = commands
        .iter()
        .find(|c| c.starts_with("vidcast send --name pi HUB_IP"))
        .expect("the Pi's command");
    let args: Vec<String> = send
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "HUB_IP" {
                ingest.to_string()
            } else {
                a.to_owned()
            }
        })
        .collect();
    let out = run(
        vidcast()
            .args(&args)
            .args(["--frames", "10", "--width", "160"]),
        Duration::from_secs(30),
    );
    published_as_pi(&out, &mut hub);
    let streams = api(http, "/api/streams");
    assert_eq!(streams[0]["name"], "pi", "{streams}");
}

/// docs/service.md, the systemd unit and the Containerfile name only variables `serve` reads
/// (each shown in `serve --help`), and a hub started from the container's environment runs.
#[test]
fn the_service_recipes_variables_are_serves() {
    let serve_help = help("serve");
    let mut named = 0;
    for file in [
        "docs/service.md",
        "docs/vidcast.service",
        "docs/Containerfile",
    ] {
        let text = repo_file(file);
        for (at, _) in text.match_indices("VIDCAST_") {
            let var: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            assert!(
                serve_help.contains(&format!("[env: {var}")),
                "{file} names {var}, which serve does not read"
            );
            named += 1;
        }
    }
    assert!(named > 10);

    let dir = std::env::temp_dir().join(format!("vidcast-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "pi 0123456789abcdef\n").unwrap();
    let (tokens, rec) = (tokens.to_string_lossy(), dir.join("rec"));
    let mut hub = Server::start_with_env(
        &["serve"],
        &[
            ("VIDCAST_LISTEN", "127.0.0.1:0"),
            ("VIDCAST_HTTP", "off"),
            ("VIDCAST_TOKEN_FILE", &tokens),
            ("VIDCAST_RECORD", &rec.to_string_lossy()),
            ("VIDCAST_KEEP", "7d,50GB"),
            ("VIDCAST_MAX_FRAME_BYTES", "16MiB"),
        ],
    );
    let ingest = hub.addr_after("hub listening for clients on ");
    // The token file took effect: a publisher without its token is refused.
    let out = run(
        vidcast()
            .args(["send", "--name", "pi", "--no-reconnect", "--frames", "5"])
            .arg(ingest.to_string())
            .env_remove("VIDCAST_TOKEN"),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let out = run(
        vidcast()
            .args([
                "send",
                "--name",
                "pi",
                "--no-reconnect",
                "--frames",
                "5",
                "--width",
                "160",
            ])
            .arg(ingest.to_string())
            .env("VIDCAST_TOKEN", "0123456789abcdef"),
        Duration::from_secs(20),
    );
    published_as_pi(&out, &mut hub);
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `out` (a `send --name pi`) succeeded and the hub logged "pi" connecting.
fn published_as_pi(out: &std::process::Output, hub: &mut Server) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    hub.wait_line("\"pi\" connected", Duration::from_secs(5));
}
