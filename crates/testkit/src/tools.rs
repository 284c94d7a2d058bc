//! External tools the tests use (Chromium, ffmpeg…): present, or a loud skip — and under
//! `CI=true` a failure, because CI must never pass by skipping.

use std::path::PathBuf;

/// Finds `tool` on PATH. Missing under `CI=true`: panics (the test fails). Missing otherwise:
/// prints why the test is skipped and returns `None`.
pub fn require_tool(tool: &str, debian_package: &str) -> Option<PathBuf> {
    if let Some(path) = find_on_path(tool) {
        return Some(path);
    }
    let message = format!(
        "`{tool}` is not installed (Debian package `{debian_package}`; scripts/test installs it)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}: CI=true, so this test fails rather than skipping");
    }
    eprintln!("SKIPPED: {message}");
    None
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}
