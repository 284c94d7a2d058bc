//! Writes a large capture for benchmarks: `bulk_capture OUT.pcap MEGABYTES [CONNECTIONS]`
//! (see `vidcast_analysis::synth::bulk_pcap`; used by `scripts/bench-analyze`).

use std::io::BufWriter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bulk_capture OUT.pcap MEGABYTES [CONNECTIONS]";
    let out = args.next().ok_or(usage)?;
    let mb: u64 = args.next().ok_or(usage)?.parse()?;
    let conns: u16 = args.next().map_or(Ok(8), |c| c.parse())?;
    let file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let packets = vidcast_analysis::synth::bulk_pcap(file, mb << 20, conns)?;
    eprintln!("{out}: {packets} packets, {conns} connections");
    Ok(())
}
