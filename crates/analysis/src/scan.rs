//! One pass over a capture: frames → segments → the flow table, with a hook per segment.

use std::collections::{BTreeMap, HashMap};

use crate::capture::{CaptureError, CaptureReader, Format, LinkType, PacketMeta, Source};
use crate::defrag::{self, DefragStats, Reassembler};
use crate::flow::{FlowTable, RttRule, Verdict};
use crate::segment::{self, Skipped};
use crate::time::Timestamp;

/// What a pass over a capture found.
#[derive(Debug)]
pub struct Scan {
    /// The connections.
    pub table: FlowTable,
    /// The container.
    pub format: Option<Format>,
    /// Packets read.
    pub packets: u64,
    /// Of those, TCP segments.
    pub tcp_packets: u64,
    /// Frames that were not TCP, by reason (reported, never fatal). Fragments of TCP datagrams
    /// count here but for the one that completes its datagram, which counts as TCP.
    pub skipped: BTreeMap<String, u64>,
    /// IP fragment reassembly: datagrams reassembled, dropped incomplete or malformed.
    pub defrag: DefragStats,
    /// TCP segments whose IP length field ran past the frame's end (payload length taken from
    /// the frame, as tshark does; it flags them "IPv4 total length exceeds packet length").
    pub ip_len_past_frame: u64,
    /// First and last packet times.
    pub span: Option<(Timestamp, Timestamp)>,
    /// Set when the capture ended in a truncated or corrupt record: everything above is the
    /// result up to that point.
    pub error: Option<CaptureError>,
}

/// Reads every packet, feeding TCP segments to a [`FlowTable`] and each verdict to `on_segment`.
/// Errors in the file end the pass but keep what was read; only an unreadable start (not a
/// capture, empty file) is returned as `Err`.
pub fn scan<S: Source>(
    reader: &mut CaptureReader<S>,
    mut on_segment: impl FnMut(&PacketMeta, &Verdict),
) -> Result<Scan, CaptureError> {
    scan_each(reader, RttRule::default(), |m, v, _| on_segment(m, v))
}

/// [`scan`] with RTT samples by `rtt_rule`, showing the hook the flow table as it stands after
/// each segment (its connection's addresses, for a caller that reports while reading).
pub fn scan_each<S: Source>(
    reader: &mut CaptureReader<S>,
    rtt_rule: RttRule,
    on_segment: impl FnMut(&PacketMeta, &Verdict, &FlowTable),
) -> Result<Scan, CaptureError> {
    scan_into(reader, FlowTable::with_rtt_rule(rtt_rule), on_segment)
}

/// [`scan_each`] into a table made by the caller (its RTT rule and connection bound).
pub fn scan_into<S: Source>(
    reader: &mut CaptureReader<S>,
    mut table: FlowTable,
    mut on_segment: impl FnMut(&PacketMeta, &Verdict, &FlowTable),
) -> Result<Scan, CaptureError> {
    let mut reassembler = Reassembler::new(defrag::Limits::default());
    let mut skipped_by: HashMap<Skipped, u64> = HashMap::new();
    let mut tcp_packets = 0;
    let mut ip_len_past_frame = 0;
    let mut span: Option<(Timestamp, Timestamp)> = None;
    let error = loop {
        let is_started = reader.format().is_some();
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break None,
            Err(e) if !is_started => return Err(e),
            Err(e) => break Some(e),
        };
        let meta = packet.meta;
        span = Some(match span {
            None => (meta.ts, meta.ts),
            Some((first, last)) => (first.min(meta.ts), last.max(meta.ts)),
        });
        let mut decoded = segment::decode(meta.link_type, packet.data, meta.orig_len);
        if decoded == Err(Skipped::Fragment) {
            // tshark dissects the reassembled TCP in the frame of the completing fragment.
            let whole = segment::fragment(meta.link_type, packet.data, meta.orig_len)
                .and_then(|f| reassembler.handle(meta.ts, &f));
            if let Some(d) = whole {
                decoded = segment::decode(LinkType::RAW, d.ip, d.wire_len);
            }
        }
        match decoded {
            Ok(seg) => {
                tcp_packets += 1;
                ip_len_past_frame += u64::from(seg.is_ip_len_past_frame);
                let verdict = table.handle_segment(meta.ts, &seg, meta.orig_len);
                on_segment(&meta, &verdict, &table);
            }
            // Counted by reason, named once at the end: no allocation per skipped frame.
            Err(why) => *skipped_by.entry(why).or_default() += 1,
        }
    };
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for (why, n) in skipped_by {
        let key = match why {
            Skipped::UnsupportedLink(l) if l.name() == "unsupported" => {
                format!("link type {} not supported", l.0)
            }
            Skipped::UnsupportedLink(l) => {
                format!("link type {} ({}) not supported", l.0, l.name())
            }
            Skipped::NotIp => "not IP".to_owned(),
            Skipped::NotTcp => "IP but not TCP".to_owned(),
            Skipped::Undecodable => "TCP header cut or damaged".to_owned(),
            Skipped::Fragment => "IP fragments".to_owned(),
            Skipped::IcmpError => "ICMP errors (quoted TCP not analysed, as tshark)".to_owned(),
        };
        *skipped.entry(key).or_default() += n;
    }
    Ok(Scan {
        table,
        format: reader.format(),
        packets: reader.packets(),
        tcp_packets,
        ip_len_past_frame,
        skipped,
        defrag: reassembler.finish(),
        span,
        error,
    })
}
