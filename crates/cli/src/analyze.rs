//! `vidcast analyze`: TCP analysis of a capture file (pcap or pcapng).
//!
//! One pass summarises every connection; with `--out DIR` a second pass collects the series of
//! the chosen connections (their time span is known by then, so throughput bins are fixed and
//! memory stays flat) and writes graphs or CSV/JSON.
//!
//! The capture may be a file (memory-mapped), gzip-compressed, or a stream (`-`, a pipe, a
//! FIFO). A stream cannot be read twice: with `--out DIR` the first pass copies it to a
//! temporary file in DIR, which the second pass reads and then deletes. `--follow` prints a line
//! per interval of capture time while the first pass runs, for watching a live capture:
//! `tcpdump -U -w - port 9999 | vidcast analyze --follow -`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use vidcast_analysis::capture::{AnySource, PacketMeta};
use vidcast_analysis::flow::{ConnId, FlowTable, DEFAULT_MAX_CONNECTIONS};
use vidcast_analysis::graph::{self, Graph};
use vidcast_analysis::series::ConnectionSeries;
use vidcast_analysis::summary::{self, ConnectionSummary};
use vidcast_analysis::{scan_into, CaptureReader, Connection, FlowFilter, RttRule, Scan, Verdict};

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

/// RTT sampling rules (see [`RttRule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rtt {
    /// As tshark's tcp.analysis.ack_rtt.
    Tshark,
    /// Karn's rule: no samples from ACKs of retransmitted data.
    Karn,
}

impl From<Rtt> for RttRule {
    fn from(r: Rtt) -> Self {
        match r {
            Rtt::Tshark => Self::Tshark,
            Rtt::Karn => Self::Karn,
        }
    }
}

/// Options of `vidcast analyze`.
#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// The capture: pcap or pcapng (tcpdump, dumpcap, Wireshark), gzip-compressed or not; "-"
    /// (or a pipe, a FIFO, /dev/stdin) reads a stream as it arrives, e.g. from
    /// `tcpdump -U -w -`. Not with --live.
    #[arg(required_unless_present = "live", conflicts_with = "live")]
    pub capture: Option<PathBuf>,
    /// Capture on this interface instead (AF_PACKET, needs root or CAP_NET_RAW) until Ctrl-C or
    /// SIGTERM; with --follow prints the lines as it goes, with --out writes the graphs at the end.
    #[arg(long, value_name = "IFACE")]
    pub live: Option<String>,
    /// With --live: which packets to keep, as terms joined by "and": tcp, port N, host ADDR
    /// (e.g. 'port 9999 and host 10.0.0.2').
    #[arg(long, value_name = "EXPR", requires = "live")]
    pub filter: Option<crate::live::LiveFilter>,
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
    /// While reading, print one line per connection direction and --interval of capture time:
    /// throughput, retransmissions, duplicate ACKs, zero windows, RTT, bytes in flight (for
    /// watching a live capture piped in). The summary follows at the end of the input.
    #[arg(long)]
    pub follow: bool,
    /// Which ACKs give RTT samples: "tshark" (the default) as tshark's tcp.analysis.ack_rtt
    /// (ACKs of resent data timed from the first send, no 0 µs samples); "karn" only ACKs of
    /// data sent once.
    #[arg(long, value_enum, default_value_t = Rtt::Tshark)]
    pub rtt: Rtt,
    /// Graphs and series start this many seconds after each connection's start (its busy part
    /// of a long idle connection; times on the axes stay since the connection's start).
    #[arg(long, value_name = "SECONDS")]
    pub from: Option<f64>,
    /// Graphs and series end this many seconds after each connection's start.
    #[arg(long, value_name = "SECONDS")]
    pub to: Option<f64>,
    /// Connections held at once: when a new one would exceed this, the eighth idle longest are
    /// dropped (counted in the summary line), so memory stays bounded on any capture.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// The --follow interval in seconds of capture time.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub interval: f64,
}

/// Runs the subcommand.
pub fn main(args: AnalyzeArgs) -> Result<()> {
    let out_dir = args.out.as_ref().filter(|p| p.as_os_str() != "-").cloned();
    if out_dir.is_none() && matches!(args.format, Some(Format::Svg | Format::Png)) {
        bail!("graphs are files: give --out DIR with --format svg or png");
    }
    let from = args.from.unwrap_or(0.0);
    if !(from >= 0.0 && from.is_finite()) || args.to.is_some_and(|t| t.is_nan() || t <= from) {
        bail!("--from and --to are seconds since a connection's start, with 0 ≤ from < to");
    }
    if !(args.interval > 0.0 && args.interval.is_finite()) {
        bail!("--interval must be a positive number of seconds");
    }
    // The name in messages: the file, or the interface.
    let capture = match (&args.capture, &args.live) {
        (Some(path), _) => path.clone(),
        (None, Some(iface)) => PathBuf::from(format!("live capture on {iface}")),
        (None, None) => bail!("give a capture file or --live IFACE"),
    };
    // A stream is read once: with --out, the first pass keeps a copy for the second.
    let spool = match &out_dir {
        Some(dir) if args.live.is_some() || is_stream(&capture) => Some(Spool::new(dir)?),
        _ => None,
    };
    let mut follow = args.follow.then(|| Follow::new(&args));
    let first = {
        let mut reader = match (&args.live, &spool) {
            (Some(iface), spool) => {
                let live = Box::new(crate::live::LiveCapture::open(iface, args.filter.clone())?);
                eprintln!("capturing on {iface} (Ctrl-C or SIGTERM ends it)");
                match spool {
                    Some(spool) => spool.tee_from(live, &capture)?,
                    None => CaptureReader::from_stream(live)
                        .with_context(|| format!("cannot read {}", capture.display()))?,
                }
            }
            (None, Some(spool)) => spool.tee(&capture)?,
            (None, None) => open(&capture)?,
        };
        scan_into(&mut reader, table(&args), |meta, v, table| {
            if let Some(f) = follow.as_mut() {
                f.handle(meta, v, table);
            }
        })
        .with_context(|| format!("cannot read {}", capture.display()))?
    };
    if let Some(f) = follow.as_mut() {
        f.flush(&first.table);
    }
    if first.packets == 0 {
        if let Some(e) = &first.error {
            bail!("{}: {e}", capture.display());
        }
        bail!("{}: the capture holds no packets", capture.display());
    }
    let conns = first.table.connections();
    if conns.is_empty() {
        if let Some(e) = &first.error {
            // The damage, not its consequence, is the news.
            bail!(
                "{}: {e} (after {} packets, none of them TCP{})",
                capture.display(),
                first.packets,
                skipped_text(&first)
            );
        }
        bail!(
            "{}: no TCP segments among its {} packets{}",
            capture.display(),
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
                capture.display(),
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
        let path = spool.as_ref().map_or(capture.as_path(), |s| &s.path);
        write_series(&args, path, dir, conns, &chosen, &summaries)?;
    }
    drop(spool);
    if let Some(e) = first.error {
        bail!(
            "{}: {e} (the results above cover everything before it)",
            capture.display()
        );
    }
    Ok(())
}

fn open(path: &Path) -> Result<CaptureReader<AnySource>> {
    CaptureReader::open(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The flow table of both passes (the same bound, so the same connection ids).
fn table(args: &AnalyzeArgs) -> FlowTable {
    FlowTable::with_limits(args.rtt.into(), args.max_connections)
}

fn read(
    path: &Path,
    args: &AnalyzeArgs,
    mut on_segment: impl FnMut(&PacketMeta, &Verdict),
) -> Result<Scan> {
    scan_into(&mut open(path)?, table(args), |m, v, _| on_segment(m, v))
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Whether the capture is read as a stream (once) rather than as a file.
fn is_stream(path: &Path) -> bool {
    path.as_os_str() == "-" || std::fs::metadata(path).is_ok_and(|m| !m.is_file())
}

/// A temporary copy of a streamed capture in the output directory, deleted when dropped.
struct Spool {
    path: PathBuf,
}

impl Spool {
    fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!(".vidcast-analyze-input-{}.tmp", std::process::id()));
        Ok(Self { path })
    }

    /// A reader of the stream at `input` that copies every byte it reads into the spool file.
    fn tee(&self, input: &Path) -> Result<CaptureReader<AnySource>> {
        let stream: Box<dyn Read + Send> = if input.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(input).with_context(|| format!("cannot read {}", input.display()))?)
        };
        self.tee_from(stream, input)
    }

    /// A reader of `stream` (named `input` in messages) that copies every byte it reads into
    /// the spool file.
    fn tee_from(
        &self,
        stream: Box<dyn Read + Send>,
        input: &Path,
    ) -> Result<CaptureReader<AnySource>> {
        let copy = File::create(&self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        let tee = Tee {
            from: stream,
            to: std::io::BufWriter::new(copy),
        };
        CaptureReader::from_stream(Box::new(tee))
            .with_context(|| format!("cannot read {}", input.display()))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads from `from`, writing what it read to `to`.
struct Tee<W: std::io::Write> {
    from: Box<dyn Read + Send>,
    to: W,
}

impl<W: std::io::Write> Read for Tee<W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.from.read(buf)?;
        self.to.write_all(&buf[..n])?;
        if n == 0 {
            self.to.flush()?;
        }
        Ok(n)
    }
}

/// `--follow`: per connection direction, what happened in the current interval.
struct Follow {
    flows: Vec<FlowFilter>,
    interval_ns: i64,
    /// Start of the current interval (capture time), set by the first segment.
    start: Option<vidcast_analysis::Timestamp>,
    /// Interval counters per (connection, direction index).
    now: HashMap<(usize, usize), Interval>,
    /// Whether the flow filter matched, per connection.
    matched: HashMap<usize, bool>,
}

#[derive(Default)]
struct Interval {
    packets: u64,
    payload: u64,
    retrans: u64,
    dup_acks: u64,
    zero_windows: u64,
    rtt_ns: (u64, i64),
    in_flight: Option<u64>,
}

impl Follow {
    fn new(args: &AnalyzeArgs) -> Self {
        Self {
            flows: args.flows.clone(),
            interval_ns: (args.interval * 1e9) as i64,
            start: None,
            now: HashMap::new(),
            matched: HashMap::new(),
        }
    }

    fn handle(&mut self, meta: &PacketMeta, v: &Verdict, table: &FlowTable) {
        let start = *self.start.get_or_insert(meta.ts);
        if meta.ts.since_ns(start) >= self.interval_ns {
            self.flush(table);
            // Next interval: the one this segment falls in (idle intervals print nothing).
            let n = meta.ts.since_ns(start) / self.interval_ns;
            self.start = Some(start.plus_ns(n.saturating_mul(self.interval_ns)));
        }
        let conn = v.conn.0;
        let flows = &self.flows;
        let is_match = *self.matched.entry(conn).or_insert_with(|| {
            flows.is_empty()
                || table
                    .connection(v.conn)
                    .is_some_and(|c| flows.iter().any(|f| f.matches(c)))
        });
        if !is_match {
            return;
        }
        let i = self.now.entry((conn, v.dir.index())).or_default();
        i.packets += 1;
        i.payload += u64::from(v.payload_len);
        i.retrans += u64::from(
            v.flags
                .any(vidcast_analysis::flow::Flags::ANY_RETRANSMISSION),
        );
        i.dup_acks += u64::from(v.flags.any(vidcast_analysis::flow::Flags::DUP_ACK));
        i.zero_windows += u64::from(v.flags.any(vidcast_analysis::flow::Flags::ZERO_WINDOW));
        if v.in_flight.is_some() {
            i.in_flight = v.in_flight;
        }
        if let Some(rtt) = v.rtt_ns {
            // The sample times the other direction's data.
            let o = self.now.entry((conn, v.dir.reverse().index())).or_default();
            o.rtt_ns.0 += 1;
            o.rtt_ns.1 += rtt;
        }
    }

    /// Prints the current interval's lines and starts an empty one.
    fn flush(&mut self, table: &FlowTable) {
        let Some(start) = self.start else { return };
        let mut rows: Vec<_> = self.now.drain().collect();
        rows.sort_by_key(|(k, _)| *k);
        let secs = self.interval_ns as f64 / 1e9;
        let mut stdout = std::io::stdout().lock();
        for ((conn, dir), i) in rows {
            let Some(c) = table.connection(ConnId(conn)) else {
                continue;
            };
            if i.packets == 0 {
                continue;
            }
            let (from, to) = if dir == 0 { (c.a, c.b) } else { (c.b, c.a) };
            let rtt = if i.rtt_ns.0 > 0 {
                format!("{:.3} ms", i.rtt_ns.1 as f64 / i.rtt_ns.0 as f64 / 1e6)
            } else {
                "-".to_owned()
            };
            let _ = writeln!(
                stdout,
                "{start} conn{} {from} → {to}: {} pkts, {}, {} retrans, {} dup ACKs, {} zero win, RTT {rtt}, in flight {}",
                conn + 1,
                i.packets,
                summary::rate(i.payload as f64 * 8.0 / secs),
                i.retrans,
                i.dup_acks,
                i.zero_windows,
                i.in_flight.map_or("-".to_owned(), summary::bytes),
            );
        }
    }
}

fn skipped_text(s: &Scan) -> String {
    let mut text = String::new();
    if s.ip_len_past_frame > 0 {
        text = format!(
            " ({} with an IP length past the frame's end: payload taken from the frame)",
            s.ip_len_past_frame
        );
    }
    let e = s.table.evicted();
    if e.connections > 0 {
        text += &format!(
            " ({} connections idle longest dropped to hold at most --max-connections: {} packets, {})",
            e.connections,
            e.packets,
            summary::bytes(e.bytes)
        );
    }
    let d = s.defrag;
    if d.fragments > 0 {
        text += &format!(
            " ({} IP datagrams reassembled from {} fragments, {} dropped incomplete, {} malformed)",
            d.reassembled, d.fragments, d.incomplete, d.malformed
        );
    }
    if s.skipped.is_empty() {
        return text;
    }
    let parts: Vec<String> = s.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
    text + &format!(" (skipped: {})", parts.join(", "))
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
    capture: &Path,
    dir: &Path,
    conns: &[Connection],
    chosen: &[usize],
    summaries: &[ConnectionSummary],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut series: HashMap<usize, ConnectionSeries> = chosen
        .iter()
        .map(|&i| {
            let (from, to) = (args.from.unwrap_or(0.0), args.to.unwrap_or(f64::INFINITY));
            (
                conns[i].id.0,
                ConnectionSeries::with_range(&conns[i], args.absolute_seq, from, to),
            )
        })
        .collect();
    read(capture, args, |meta, v| {
        if let Some(s) = series.get_mut(&v.conn.0) {
            s.handle(meta.ts, v);
        }
    })?;
    let format = args.format.unwrap_or(Format::Svg);
    let mut written = Vec::new();
    for &i in chosen {
        let mut s = series
            .remove(&conns[i].id.0)
            .expect("a series per chosen connection");
        s.finish();
        let conn_id = conns[i].id.0 + 1;
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
