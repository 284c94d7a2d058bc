//! `vidcast cert`: make a self-signed certificate and key for a hub, and say how to use them.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use vidcast_client::Fingerprint;
use vidcast_hub::SelfSigned;

/// File names written in `--out`.
pub const CERT_FILE: &str = "hub-cert.pem";
/// The private key's file name.
pub const KEY_FILE: &str = "hub-key.pem";

/// Options of `vidcast cert`.
#[derive(Args, Debug, Clone)]
pub struct CertArgs {
    /// Directory for hub-cert.pem and hub-key.pem (made if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Host names or IP addresses the certificate is for (repeatable; default: localhost,
    /// 127.0.0.1, ::1 and this machine's host name). Only `send --tls-ca` checks them.
    #[arg(long = "name", value_name = "HOST")]
    pub names: Vec<String>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Days the certificate is valid (from yesterday, for clocks that differ). Renew before
    /// then: run `vidcast cert --force` again and restart the hub.
    #[arg(long, default_value_t = vidcast_hub::DEFAULT_CERT_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
}

pub fn main(args: CertArgs) -> Result<()> {
    let names = if args.names.is_empty() {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).into();
        let host = crate::video::default_name();
        if !names.contains(&host) {
            names.push(host);
        }
        names
    } else {
        args.names.clone()
    };
    let made = SelfSigned::generate_for(&names, args.days, std::time::SystemTime::now())
        .context("cannot make the certificate")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create directory {}", args.out.display()))?;
    let cert = args.out.join(CERT_FILE);
    let key = args.out.join(KEY_FILE);
    if !args.force {
        for path in [&cert, &key] {
            if path.exists() {
                bail!(
                    "{} already exists; not overwriting it (use --force to replace, or --out DIR)",
                    path.display()
                );
            }
        }
    }
    write_file(&cert, &made.cert_pem, 0o644, args.force)?;
    write_file(&key, &made.key_pem, 0o600, args.force)?;
    let fingerprint = Fingerprint::of(&made.cert_der);
    outln!(
        "wrote {} and {} (self-signed for {})",
        cert.display(),
        key.display(),
        names.join(", ")
    );
    outln!("certificate fingerprint (SHA-256): {fingerprint}");
    let (y, m, d) = made.not_after;
    outln!(
        "valid until {y:04}-{m:02}-{d:02} (--days {}); to renew, run this command again with --force before then, restart the hub, and give publishers the new fingerprint",
        args.days
    );
    outln!("on the hub:");
    outln!(
        "  vidcast serve --tls-cert {} --tls-key {}",
        cert.display(),
        key.display()
    );
    outln!("on each publisher:");
    outln!("  vidcast send HUB --tls-fingerprint {fingerprint}");
    Ok(())
}

/// Writes `text` to a new file (or over an old one with `force`) readable per `mode`.
fn write_file(path: &Path, text: &str, mode: u32, force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
