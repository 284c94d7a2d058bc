//! Offline TCP analysis of packet captures: pcap/pcapng → TCP connections → per-connection
//! summaries (tcptrace / Wireshark Conversations style) and per-direction series (Stevens
//! time-sequence, throughput, RTT, bytes in flight) drawn as SVG/PNG or written as CSV/JSON.
//!
//! Layers, each testable alone: [`capture`] (sans-IO pcap/pcapng parser; a reader over a
//! memory-mapped file, a pipe or stdin, gzip-compressed or not), [`segment`] (link/IP/TCP decoding), [`defrag`] (IP fragment reassembly), [`flow`] (a pure state machine classifying
//! segments), [`summary`], [`series`], [`graph`]. [`scan`] ties them together in one pass.
//!
//! Must not depend on tokio, the hub or the client: it reads captures, nothing else.

pub mod capture;
pub mod defrag;
pub mod filter;
pub mod flow;
pub mod graph;
pub mod scan;
pub mod segment;
pub mod series;
pub mod summary;
pub mod synth;
pub mod time;

pub use capture::{CaptureError, CaptureReader, LinkType};
pub use filter::FlowFilter;
pub use flow::{ConnId, Connection, Dir, FlowTable, RttRule, Verdict};
pub use scan::{scan, scan_each, scan_into, Scan};
pub use time::Timestamp;
