//! `vidcast analyze`: TCP analysis of a capture file (pcap or pcapng).
//!
//! One pass summarises every connection; with `--out DIR` a second pass collects the series of
//! the chosen connections (their time span is known by then, so throughput bins are fixed and
//! memory stays flat) and writes graphs or CSV/JSON.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use vidcast_analysis::graph::{self, Graph};
use vidcast_analysis::series::ConnectionSeries;
use vidcast_analysis::summary::{self, ConnectionSummary};
use vidcast_analysis::{scan, CaptureReader, Connection, FlowFilter, Scan};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Graphs as SVG (needs --out DIR).
    Svg,
    /// Graphs as PNG (needs --out DIR).
    Png,
    /// Summary as CSV on stdout; with --out DIR also the series as CSV files.
    Csv,
    /// Summary as JSON on stdout; with --out DIR also the series as JSON files.
    Json,
}

/// Options of `vidcast analyze`.
#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// The capture: pcap or pcapng (tcpdump, dumpcap, Wireshark).
    pub capture: PathBuf,
    /// Connections to report: IP, IP:PORT, [IPv6]:PORT, :PORT or PORT, or two of them joined by
    /// "-" for both ends. Repeatable. Default: the busiest connection.
    #[arg(long = "flow", value_name = "FILTER")]
    pub flows: Vec<FlowFilter>,
    /// Report every connection (that matches --flow, if given).
    #[arg(long)]
    pub all: bool,
    /// Directory for graphs and series ("-" for stdout: summary only).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Output format (default: text summary; svg when --out DIR is given).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Absolute sequence numbers in graphs and series (default: relative to the ISN).
    #[arg(long)]
    pub absolute_seq: bool,
}

/// Runs the subcommand.
pub fn main(args: AnalyzeArgs) -> Result<()> {
    let out_dir = args.out.as_ref().filter(|p| p.as_os_str() != "-").cloned();
    if out_dir.is_none() && matches!(args.format, Some(Format::Svg | Format::Png)) {
        bail!("graphs are files: give --out DIR with --format svg or png");
    }
    let first = read(&args.capture, |_, _| {})?;
    if first.packets == 0 {
        if let Some(e) = &first.error {
            bail!("{}: {e}", args.capture.display());
        }
        bail!("{}: the capture holds no packets", args.capture.display());
    }
    let conns = first.table.connections();
    if conns.is_empty() {
        bail!(
            "{}: no TCP segments among its {} packets{}",
            args.capture.display(),
            first.packets,
            skipped_text(&first)
        );
    }
    let summaries: Vec<ConnectionSummary> = conns.iter().map(ConnectionSummary::new).collect();
    let chosen = choose(&args, conns, &summaries)?;

    let chosen_summaries: Vec<&ConnectionSummary> = chosen.iter().map(|&i| &summaries[i]).collect();
    let mut stdout = std::io::stdout().lock();
    match (args.format, &out_dir) {
        (Some(Format::Json), None) => {
            serde_json::to_writer_pretty(&mut stdout, &chosen_summaries)?;
            writeln!(stdout)?;
        }
        (Some(Format::Csv), None) => {
            writeln!(stdout, "{}", summary::CSV_HEADER)?;
            for s in &chosen_summaries {
                write!(stdout, "{}", summary::csv_rows(s))?;
            }
        }
        _ => {
            writeln!(
                stdout,
                "{}: {} packets, {} TCP, {} connections{}{}",
                args.capture.display(),
                first.packets,
                first.tcp_packets,
                conns.len(),
                skipped_text(&first),
                if chosen.len() < conns.len() {
                    format!(
                        "; showing {} (use --all or --flow for others)",
                        chosen.len()
                    )
                } else {
                    String::new()
                }
            )?;
            for s in &chosen_summaries {
                writeln!(stdout)?;
                write!(stdout, "{}", summary::text(s))?;
            }
        }
    }
    drop(stdout);

    if let Some(dir) = &out_dir {
        write_series(&args, dir, conns, &chosen, &summaries)?;
    }
    if let Some(e) = first.error {
        bail!(
            "{}: {e} (the results above cover everything before it)",
            args.capture.display()
        );
    }
    Ok(())
}

fn read(
    path: &Path,
    on_segment: impl FnMut(&vidcast_analysis::capture::PacketMeta, &vidcast_analysis::Verdict),
) -> Result<Scan> {
    let mut reader =
        CaptureReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    scan(&mut reader, on_segment).with_context(|| format!("cannot read {}", path.display()))
}

fn skipped_text(s: &Scan) -> String {
    if s.skipped.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = s.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!(" (skipped: {})", parts.join(", "))
}

/// The connections to report: filtered, then the busiest one unless --all.
fn choose(
    args: &AnalyzeArgs,
    conns: &[Connection],
    summaries: &[ConnectionSummary],
) -> Result<Vec<usize>> {
    let matching: Vec<usize> = (0..conns.len())
        .filter(|&i| args.flows.is_empty() || args.flows.iter().any(|f| f.matches(&conns[i])))
        .collect();
    if matching.is_empty() {
        let mut by_size: Vec<&ConnectionSummary> = summaries.iter().collect();
        by_size.sort_by_key(|s| std::cmp::Reverse(s.total_bytes()));
        let some: Vec<String> = by_size
            .iter()
            .take(5)
            .map(|s| format!("{}-{}", s.a, s.b))
            .collect();
        bail!(
            "no connection matches the --flow filter; the capture has {} connection(s), e.g. {}",
            conns.len(),
            some.join(", ")
        );
    }
    if args.all {
        return Ok(matching);
    }
    let busiest = matching
        .iter()
        .copied()
        .max_by_key(|&i| (summaries[i].total_bytes(), std::cmp::Reverse(i)))
        .expect("matching is not empty");
    Ok(vec![busiest])
}

/// Second pass: series for the chosen connections, then one file set per direction with data.
fn write_series(
    args: &AnalyzeArgs,
    dir: &Path,
    conns: &[Connection],
    chosen: &[usize],
    summaries: &[ConnectionSummary],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut series: HashMap<usize, ConnectionSeries> = chosen
        .iter()
        .map(|&i| (i, ConnectionSeries::new(&conns[i], args.absolute_seq)))
        .collect();
    read(&args.capture, |meta, v| {
        if let Some(s) = series.get_mut(&v.conn.0) {
            s.handle(meta.ts, v);
        }
    })?;
    let format = args.format.unwrap_or(Format::Svg);
    let mut written = Vec::new();
    for &i in chosen {
        let mut s = series.remove(&i).expect("a series per chosen connection");
        s.finish();
        let conn_id = i + 1;
        if format == Format::Json {
            let path = dir.join(format!("conn{conn_id}.json"));
            let doc = serde_json::json!({ "summary": &summaries[i], "series": &s });
            std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(path);
            continue;
        }
        for d in s.dirs.iter().filter(|d| d.has_data()) {
            let stem = format!("conn{conn_id}_{}", d.direction.replace('_', "-"));
            let files: Vec<(String, Vec<u8>)> = match format {
                Format::Svg => Graph::ALL
                    .iter()
                    .map(|&g| Ok((format!("{stem}_{}.svg", g.name()), graph::svg(g, d)?.into())))
                    .collect::<Result<_, graph::GraphError>>()?,
                Format::Png => Graph::ALL
                    .iter()
                    .map(|&g| Ok((format!("{stem}_{}.png", g.name()), graph::png(g, d)?)))
                    .collect::<Result<_, graph::GraphError>>()?,
                Format::Csv => d
                    .csv_files()
                    .into_iter()
                    .map(|(name, text)| (format!("{stem}_{name}.csv"), text.into_bytes()))
                    .collect(),
                Format::Json => unreachable!("handled above"),
            };
            for (name, bytes) in files {
                let path = dir.join(name);
                std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                written.push(path);
            }
        }
    }
    if written.is_empty() {
        eprintln!("no graphs: the chosen connection(s) carried no payload");
    }
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
