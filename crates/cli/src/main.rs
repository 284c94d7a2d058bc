//! `vidcast`: the one binary. One module per subcommand; the work lives in the library crates.

/// `println!` that ends the process quietly when stdout's reader has gone (`vidcast demo |
/// head -1`), as Unix tools do, instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout_line(format_args!($($arg)*))
    };
}

mod addr;
mod analyze;
mod bench;
mod cert;
mod demo;
mod devices;
mod duration;
mod legacy_send;
mod live;
mod pull;
mod record;
mod send;
mod serve;
mod shutdown;
mod status;
mod tls_flags;
mod video;
mod view;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Many clients stream live video over TCP to one hub that shows them all.
#[derive(Parser, Debug)]
#[command(name = "vidcast", version, about, long_about = None)]
struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a hub: one TCP port for every publisher, plus the HTTP API.
    Serve(serve::ServeArgs),
    /// Publish a video stream to a hub.
    Send(send::SendArgs),
    /// A hub plus several synthetic publishers in one command, with a live status table.
    Demo(demo::DemoArgs),
    /// Load-test a hub with many publishers and report fps, latency, drops and CPU.
    Bench(bench::BenchArgs),
    /// Watch every stream of a hub in one native window (or one window per client).
    View(view::ViewArgs),
    /// List the cameras `send --source camera:N` can use, with their formats, sizes and rates.
    Devices(devices::DevicesArgs),
    /// Make a self-signed TLS certificate and key for a hub and print its fingerprint.
    Cert(cert::CertArgs),
    /// TCP analysis of a capture: per-connection summary, Stevens/throughput/RTT graphs.
    Analyze(analyze::AnalyzeArgs),
}

fn main() -> ExitCode {
    keep_frame_buffers_mapped();
    let cli = match Cli::command()
        .version(version_text())
        .mut_subcommand("serve", serve::with_env)
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) => with_example(e).exit(),
    };
    let default_level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed or full stderr (`| head`, a dead log pipe) must not take the hub down:
        // tracing would report its own write error with eprintln!, which panics then.
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();

    let result = match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Send(args) => send::main(args),
        Command::Demo(args) => demo::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Analyze(args) => analyze::main(args),
        Command::Cert(args) => cert::main(args),
        Command::View(args) => view::main(args),
        Command::Devices(args) => devices::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write;
            // stderr may be closed too; the exit code still says it failed.
            let _ = writeln!(std::io::stderr(), "vidcast: error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// A value clap refused (`--max-clients lots`: "invalid digit found in string") gets a tip
/// with an example of the flag: its default, or a typical value for flags without one. Our
/// own parsers already name one ("e.g."), and are left as they are.
fn with_example(mut error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) || error.to_string().contains("e.g.")
    {
        return error;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let Some(long) = arg
        .strip_prefix("--")
        .and_then(|a| a.split([' ', '=']).next())
    else {
        return error;
    };
    let long = long.to_owned();
    let command = Cli::command();
    let subcommand = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|name| command.find_subcommand(&name).cloned());
    let default = subcommand
        .iter()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long.as_str()))
        .and_then(|a| a.get_default_values().first())
        .map(|v| v.to_string_lossy().into_owned());
    let typical = match long.as_str() {
        "fps" => Some("30".to_owned()),
        "frames" => Some("300".to_owned()),
        _ => None,
    };
    if let Some(example) = default.or(typical) {
        error.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![format!("e.g. --{long} {example}").into()]),
        );
    }
    error
}

/// Writes one line to stdout; exits with success when the reader closed the pipe.
fn stdout_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        tracing::warn!("cannot write to stdout: {e}");
    }
}

/// An error and its causes, each said once: a cause whose text the message already holds
/// (an I/O error wrapped in a context that quotes it) is left out.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// `vidcast --version`: the version, and which SIMD code the H.264 encoder runs (OpenH264's
/// x86 assembly needs nasm at build time; see docs/benchmarks.md, "What a publisher costs").
fn version_text() -> &'static str {
    let text = format!(
        "{} (H.264 encoder: OpenH264, {}; JPEG encoder: {})",
        env!("CARGO_PKG_VERSION"),
        vidcast_media::h264_simd(),
        vidcast_media::JpegBackend::best().describe()
    );
    // Made once per run for clap, which keeps a &'static str: a few dozen bytes.
    Box::leak(text.into_boxed_str())
}

/// A multi-threaded tokio runtime for a subcommand.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Frame buffers are around a megabyte: above glibc's default mmap threshold, so each one would
/// be mapped and unmapped per frame and refilled page by page (measured: about 0.4 ms per
/// 640x480 frame in page faults). Serving them from the heap instead keeps that cost away; the
/// hub gives free heap back every 10 s (`vidcast_hub::memory`), so RSS does not stay at a peak.
fn keep_frame_buffers_mapped() {
    vidcast_hub::memory::tune_allocator();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(io).context("x.y4m: No such file or directory");
        assert_eq!(error_text(&error), "x.y4m: No such file or directory");
        let error = anyhow::anyhow!("disk full").context("cannot write x.mp4");
        assert_eq!(error_text(&error), "cannot write x.mp4: disk full");
    }
}
