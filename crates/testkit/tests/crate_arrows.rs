//! The crate arrows of ARCHITECTURE.md, checked: every workspace crate depends (in its normal
//! dependencies) on exactly the vidcast crates this table allows, so the picture cannot drift
//! again. A new arrow is a design decision: change ARCHITECTURE.md and this table together.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each workspace crate and the vidcast crates it may depend on. Dependencies point down.
const ALLOWED: &[(&str, &[&str])] = &[
    ("vidcast-h264", &[]),
    ("vidcast-proto", &["vidcast-h264"]),
    ("vidcast-tcpinfo", &[]),
    ("vidcast-analysis", &[]),
    ("vidcast-legacy", &["vidcast-proto"]),
    ("vidcast-pump", &["vidcast-proto"]),
    ("vidcast-media", &["vidcast-h264"]),
    ("vidcast-rtmp", &["vidcast-h264"]),
    ("vidcast-record", &["vidcast-h264"]),
    (
        "vidcast-rtsp",
        &["vidcast-h264", "vidcast-proto", "vidcast-media"],
    ),
    (
        "vidcast-client",
        &[
            "vidcast-proto",
            "vidcast-pump",
            "vidcast-media",
            "vidcast-tcpinfo",
            "vidcast-legacy",
        ],
    ),
    (
        "vidcast-hub",
        &[
            "vidcast-h264",
            "vidcast-proto",
            "vidcast-pump",
            "vidcast-media",
            "vidcast-tcpinfo",
            "vidcast-legacy",
            "vidcast-rtmp",
            "vidcast-record",
            "vidcast-rtsp",
        ],
    ),
    (
        "vidcast-viewer",
        &[
            "vidcast-h264",
            "vidcast-proto",
            "vidcast-media",
            "vidcast-client",
        ],
    ),
    (
        "vidcast-testkit",
        &[
            "vidcast-proto",
            "vidcast-media",
            "vidcast-hub",
            "vidcast-client",
        ],
    ),
    (
        "vidcast",
        &[
            "vidcast-h264",
            "vidcast-proto",
            "vidcast-media",
            "vidcast-hub",
            "vidcast-client",
            "vidcast-analysis",
            "vidcast-viewer",
            "vidcast-record",
            "vidcast-rtsp",
        ],
    ),
];

#[test]
fn every_crate_depends_only_on_the_crates_below_it() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut actual: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap().to_owned();
        let arrows = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            // Normal dependencies only ("kind": null); dev and build ones are not arrows.
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("vidcast"))
            .map(str::to_owned)
            .collect();
        actual.insert(name, arrows);
    }
    let allowed: BTreeMap<String, BTreeSet<String>> = ALLOWED
        .iter()
        .map(|(name, deps)| {
            let deps = deps.iter().map(|d| (*d).to_owned()).collect();
            ((*name).to_owned(), deps)
        })
        .collect();
    for (name, deps) in &actual {
        let Some(ok) = allowed.get(name) else {
            panic!("{name} is not in the crate table: add it here and to ARCHITECTURE.md");
        };
        assert_eq!(
            deps, ok,
            "{name}'s vidcast dependencies differ from ARCHITECTURE.md's arrows"
        );
    }
    for name in allowed.keys() {
        assert!(
            actual.contains_key(name),
            "{name} is gone: update the table"
        );
    }
    // Nothing in the product depends on the test kit or the binary.
    for (name, deps) in &actual {
        assert!(
            !deps.contains("vidcast-testkit") && !deps.contains("vidcast"),
            "{name} depends on a test or the binary"
        );
    }
}
