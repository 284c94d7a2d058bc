//! TCP connection tracking: a pure state machine fed segments with their capture times.
//!
//! [`FlowTable::handle_segment`] takes one segment and answers with a [`Verdict`]: which
//! connection and direction it belongs to, how it was classified, and the samples it yields
//! (RTT, bytes in flight, receive window). It never reads a clock or a file.
//!
//! Classification follows Wireshark's TCP analysis (Wireshark User's Guide, "TCP Analysis"), so
//! counts can be checked against `tshark`: the same rules for retransmission, fast
//! retransmission, spurious retransmission, out-of-order, duplicate ACK, zero window, keep-alive
//! and window update, including its 0-means-unset bookkeeping. RTT follows [`RttRule`]: by
//! default Wireshark's `tcp.analysis.ack_rtt`, or Karn's rule.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::segment::{Segment, TcpFlags};
use crate::time::Timestamp;

/// A connection's index in capture order (0 is the first connection seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub usize);

/// Direction within a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From `a` (the SYN sender when the handshake was seen) to `b`.
    AtoB,
    /// From `b` to `a`.
    BtoA,
}

impl Dir {
    /// 0 for a→b, 1 for b→a.
    pub fn index(self) -> usize {
        match self {
            Self::AtoB => 0,
            Self::BtoA => 1,
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Self::AtoB => Self::BtoA,
            Self::BtoA => Self::AtoB,
        }
    }

    /// `a_to_b` or `b_to_a`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AtoB => "a_to_b",
            Self::BtoA => "b_to_a",
        }
    }
}

/// What the analysis concluded about one segment (Wireshark's `tcp.analysis.*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// Data sent again that had been sent before (RTO or otherwise).
    pub const RETRANSMISSION: u16 = 1 << 0;
    /// Retransmission right after ≥ 2 duplicate ACKs asking for it.
    pub const FAST_RETRANSMISSION: u16 = 1 << 1;
    /// Retransmission of data already acknowledged.
    pub const SPURIOUS_RETRANSMISSION: u16 = 1 << 2;
    /// Earlier data arriving shortly after later data.
    pub const OUT_OF_ORDER: u16 = 1 << 3;
    /// A gap before this segment: the capture missed data.
    pub const LOST_SEGMENT: u16 = 1 << 4;
    /// An ACK for data the capture never showed.
    pub const ACKED_UNSEEN: u16 = 1 << 5;
    /// Same ACK, window and sequence as the previous segment, no data.
    pub const DUP_ACK: u16 = 1 << 6;
    /// Receive window 0.
    pub const ZERO_WINDOW: u16 = 1 << 7;
    /// One byte probing a zero window.
    pub const ZERO_WINDOW_PROBE: u16 = 1 << 8;
    /// The answer to a zero-window probe.
    pub const ZERO_WINDOW_PROBE_ACK: u16 = 1 << 9;
    /// A keep-alive (0 or 1 byte just below the next sequence number).
    pub const KEEP_ALIVE: u16 = 1 << 10;
    /// The answer to a keep-alive.
    pub const KEEP_ALIVE_ACK: u16 = 1 << 11;
    /// Only the window changed.
    pub const WINDOW_UPDATE: u16 = 1 << 12;

    /// Any of the three retransmission kinds (what tshark's `tcp.analysis.retransmission`
    /// marks, and what the summary counts as retransmitted).
    pub const ANY_RETRANSMISSION: u16 =
        Self::RETRANSMISSION | Self::FAST_RETRANSMISSION | Self::SPURIOUS_RETRANSMISSION;

    /// Whether any of `bits` is set.
    pub fn any(self, bits: u16) -> bool {
        self.0 & bits != 0
    }

    fn set(&mut self, bits: u16) {
        self.0 |= bits;
    }
}

/// RTT statistics in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RttStats {
    /// Samples taken.
    pub samples: u64,
    /// Smallest sample.
    pub min_ns: i64,
    /// Largest sample.
    pub max_ns: i64,
    /// Sum of samples.
    pub sum_ns: i128,
}

impl RttStats {
    fn add(&mut self, ns: i64) {
        if self.samples == 0 {
            self.min_ns = ns;
            self.max_ns = ns;
        } else {
            self.min_ns = self.min_ns.min(ns);
            self.max_ns = self.max_ns.max(ns);
        }
        self.samples += 1;
        self.sum_ns += i128::from(ns);
    }

    /// Mean sample, if any.
    pub fn avg_ns(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum_ns as f64 / self.samples as f64)
    }
}

/// Counters for one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionStats {
    /// Packets sent this way.
    pub packets: u64,
    /// Frame bytes on the wire (original length, link header included).
    pub bytes: u64,
    /// TCP payload bytes (retransmissions included).
    pub payload_bytes: u64,
    /// Segments flagged as any kind of retransmission.
    pub retransmissions: u64,
    /// Payload bytes in those segments.
    pub retransmitted_bytes: u64,
    /// Of the retransmissions, fast ones.
    pub fast_retransmissions: u64,
    /// Of the retransmissions, spurious ones.
    pub spurious_retransmissions: u64,
    /// Out-of-order segments.
    pub out_of_order: u64,
    /// Duplicate ACKs sent this way.
    pub dup_acks: u64,
    /// Segments advertising a zero window.
    pub zero_windows: u64,
    /// RTT of data sent this way, from the other side's ACKs.
    pub rtt: RttStats,
    /// Whether a SYN was sent this way.
    pub is_syn_seen: bool,
    /// Whether a FIN was sent this way.
    pub is_fin_seen: bool,
    /// Whether a RST was sent this way.
    pub is_rst_seen: bool,
    /// Window scale shift this side offered in its SYN.
    pub window_scale: Option<u8>,
}

/// Which ACKs give RTT samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RttRule {
    /// As Wireshark's `tcp.analysis.ack_rtt` (packet-tcp.c, tcp_analyze_sequence_number):
    /// every segment with data, SYN or FIN is remembered, retransmissions too; an ACK equal to
    /// the end of remembered segments is a sample timed from the oldest of them (for resent
    /// data: from the first send); a sample of exactly 0 is dropped, as tshark shows none.
    #[default]
    Tshark,
    /// Karn's rule: only ACKs of data that was sent once (never retransmitted, wholly or in
    /// part, nor overtaken out of order) give samples; 0 µs samples are kept.
    Karn,
}

/// A segment not yet acknowledged, kept for RTT samples.
#[derive(Debug, Clone, Copy)]
struct Unacked {
    seq: u32,
    end: u32,
    sent: Timestamp,
    /// Retransmitted (wholly or in part): an ACK for it is ambiguous (Karn).
    is_ambiguous: bool,
}

/// At most this many unacknowledged segments are remembered per direction (as Wireshark's
/// TCP_MAX_UNACKED_SEGMENTS), so a capture that misses the ACKs cannot grow memory.
const MAX_UNACKED: usize = 10_000;

/// Sequence-space state of one sender. Fields mirror Wireshark's, including 0 meaning "unset".
#[derive(Debug, Clone, Default)]
struct SeqState {
    base: Option<u32>,
    next_seq: u32,
    next_seq_time: Timestamp,
    max_seq_to_be_acked: u32,
    last_ack: u32,
    last_ack_time: Timestamp,
    window: Option<u16>,
    dup_ack_num: i32,
    last_flags: Flags,
    unacked: VecDeque<Unacked>,
    /// [`RttRule::Tshark`]: a segment in `unacked` starts before the end of the one sent before
    /// it (a retransmission), so an ACK must look at all of them, not just the oldest.
    is_unacked_unordered: bool,
    /// Highest sequence number seen, unwrapped to 64 bits (for relative numbers).
    unwrap_ref: Option<i64>,
}

impl SeqState {
    /// Wireshark's walk over the unacknowledged segments for an ACK: those it covers go, one it
    /// covers in part is trimmed, and the send time of the oldest that ends exactly at `ack`
    /// is the RTT's start. Kept in send order, so while no retransmission is among them the
    /// walk stops at the first segment the ACK does not cover.
    fn ack_as_wireshark(&mut self, ack: u32) -> Option<Timestamp> {
        let mut sent = None;
        if !self.is_unacked_unordered {
            while let Some(u) = self.unacked.front_mut() {
                if u.end == ack {
                    sent = sent.or(Some(u.sent));
                } else if seq_gt(u.end, ack) {
                    if seq_gt(ack, u.seq) {
                        u.seq = ack;
                    }
                    break;
                }
                self.unacked.pop_front();
            }
            return sent;
        }
        self.unacked.retain_mut(|u| {
            if u.end == ack {
                sent = sent.or(Some(u.sent));
                false
            } else if seq_gt(ack, u.seq) && seq_le(ack, u.end) {
                u.seq = ack;
                true
            } else {
                seq_gt(u.end, ack)
            }
        });
        if self.unacked.is_empty() {
            self.is_unacked_unordered = false;
        }
        sent
    }
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn seq_gt(a: u32, b: u32) -> bool {
    seq_lt(b, a)
}

fn seq_le(a: u32, b: u32) -> bool {
    !seq_gt(a, b)
}

impl SeqState {
    /// Unwraps a 32-bit sequence number near the highest seen so far.
    fn unwrap(&mut self, seq: u32, is_advancing: bool) -> i64 {
        let reference = *self.unwrap_ref.get_or_insert(i64::from(seq));
        let delta = i64::from(seq.wrapping_sub(reference as u32) as i32);
        let value = reference + delta;
        if is_advancing && value > reference {
            self.unwrap_ref = Some(value);
        }
        value
    }

    fn relative(&self, unwrapped: i64) -> i64 {
        unwrapped - i64::from(self.base.unwrap_or(0))
    }
}

/// One TCP connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Its index.
    pub id: ConnId,
    /// The SYN sender when the handshake was seen, else the sender of the first segment.
    pub a: SocketAddr,
    /// The other endpoint.
    pub b: SocketAddr,
    /// First segment's time.
    pub start: Timestamp,
    /// Last segment's time.
    pub last: Timestamp,
    /// Per direction: `[a→b, b→a]`.
    pub stats: [DirectionStats; 2],
    seq: [SeqState; 2],
    /// Time from the last SYN to the ACK of the SYN-ACK (Wireshark's "first RTT"), which
    /// bounds how late a segment may be and still count as out-of-order.
    first_rtt_ns: Option<i64>,
    /// When the most recent SYN without ACK was seen (Wireshark's `ts_mru_syn`): a SYN sent
    /// again starts the first RTT anew.
    last_syn: Option<Timestamp>,
}

/// What one segment turned out to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Its connection.
    pub conn: ConnId,
    /// Its direction.
    pub dir: Dir,
    /// Classification.
    pub flags: Flags,
    /// Sequence number relative to the sender's ISN (64-bit, unwrapped).
    pub seq_rel: i64,
    /// End of its data (`seq_rel` + payload, + 1 for SYN/FIN).
    pub end_rel: i64,
    /// ACK number relative to the receiver's ISN, with ACK set.
    pub ack_rel: Option<i64>,
    /// The sender's ISN (to turn relative numbers into absolute ones).
    pub base: u32,
    /// The other side's ISN.
    pub peer_base: u32,
    /// Payload bytes.
    pub payload_len: u32,
    /// The receive window this segment advertises, scaled, in bytes.
    pub window_bytes: u64,
    /// An RTT sample for the other direction's data, which this segment acknowledges.
    pub rtt_ns: Option<i64>,
    /// Bytes in flight this way after this segment (sent and not yet acknowledged).
    pub in_flight: Option<u64>,
    /// Bytes in flight the other way after this segment's ACK.
    pub peer_in_flight: Option<u64>,
    /// SACK blocks this segment carries, relative to the other side's ISN.
    pub sack: [(i64, i64); 4],
    /// How many SACK blocks.
    pub sack_len: u8,
}

/// Connections a table holds at once by default: a capture of millions of connections keeps
/// a bounded table (each costs ~1 KB with its tracking state).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;

/// What a full table dropped to make room (see [`FlowTable::with_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evicted {
    /// Connections dropped, the longest idle first.
    pub connections: u64,
    /// Their packets.
    pub packets: u64,
    /// Their frame bytes.
    pub bytes: u64,
}

/// All connections in a capture. Feed segments in capture order.
///
/// At most `max_connections` are held: when a new one would exceed that, the eighth that has
/// been idle longest (by its last segment's capture time) is dropped and counted in
/// [`FlowTable::evicted`]; a later segment of a dropped connection's 4-tuple starts a new one.
/// Choosing them costs one pass over the table per eighth of it, so no per-segment bookkeeping.
/// Ids ([`ConnId`]) stay those of capture order, so two passes over one capture agree.
#[derive(Debug)]
pub struct FlowTable {
    rtt_rule: RttRule,
    max_connections: usize,
    by_key: HashMap<(SocketAddr, SocketAddr), usize>,
    /// Held connections in id order (ids have gaps where connections were dropped).
    conns: Vec<Connection>,
    next_id: usize,
    evicted: Evicted,
    /// The last lookup: most segments belong to the connection of the one before, so this
    /// saves hashing two socket addresses per segment.
    last: Option<((SocketAddr, SocketAddr), usize)>,
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::with_limits(RttRule::default(), DEFAULT_MAX_CONNECTIONS)
    }
}

impl FlowTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table whose RTT samples follow `rule`.
    pub fn with_rtt_rule(rule: RttRule) -> Self {
        Self::with_limits(rule, DEFAULT_MAX_CONNECTIONS)
    }

    /// An empty table whose RTT samples follow `rule`, holding at most `max_connections`
    /// (at least 1).
    pub fn with_limits(rule: RttRule, max_connections: usize) -> Self {
        Self {
            rtt_rule: rule,
            max_connections: max_connections.max(1),
            by_key: HashMap::new(),
            conns: Vec::new(),
            next_id: 0,
            evicted: Evicted::default(),
            last: None,
        }
    }

    /// The connections held, in order of their first segment.
    pub fn connections(&self) -> &[Connection] {
        &self.conns
    }

    /// The connection with this id, if it is held.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        let i = self.conns.binary_search_by_key(&id, |c| c.id).ok()?;
        self.conns.get(i)
    }

    /// Consumes the table, giving its connections.
    pub fn into_connections(self) -> Vec<Connection> {
        self.conns
    }

    /// What was dropped to stay within the bound.
    pub fn evicted(&self) -> Evicted {
        self.evicted
    }

    /// Feeds one segment captured at `ts` in a frame of `wire_len` bytes.
    pub fn handle_segment(&mut self, ts: Timestamp, seg: &Segment, wire_len: u32) -> Verdict {
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let is_plain_syn = seg.flags.any(TcpFlags::SYN) && !seg.flags.any(TcpFlags::ACK);
        let cached = self.last.filter(|(k, _)| *k == key).map(|(_, i)| i);
        let existing = cached.or_else(|| self.by_key.get(&key).copied());
        let existing = existing.filter(|&i| {
            // A new SYN on a finished connection with another ISN is the 4-tuple reused.
            let c = &self.conns[i];
            !(is_plain_syn && c.is_finished() && c.isn_of(seg.src) != Some(seg.seq))
        });
        let index = match existing {
            Some(i) => i,
            None => {
                if self.conns.len() >= self.max_connections {
                    self.evict_idle();
                }
                let (a, b) = if seg.flags.any(TcpFlags::SYN) && seg.flags.any(TcpFlags::ACK) {
                    (seg.dst, seg.src)
                } else {
                    (seg.src, seg.dst)
                };
                let id = ConnId(self.next_id);
                self.next_id += 1;
                self.conns.push(Connection {
                    id,
                    a,
                    b,
                    start: ts,
                    last: ts,
                    stats: Default::default(),
                    seq: Default::default(),
                    first_rtt_ns: None,
                    last_syn: None,
                });
                let index = self.conns.len() - 1;
                self.by_key.insert(key, index);
                index
            }
        };
        self.last = Some((key, index));
        self.conns[index].handle(ts, seg, wire_len, self.rtt_rule)
    }

    /// Drops the eighth of the connections idle longest (at least one), counting them.
    fn evict_idle(&mut self) {
        let n = (self.conns.len() / 8).max(1);
        let mut idle: Vec<(Timestamp, ConnId)> =
            self.conns.iter().map(|c| (c.last, c.id)).collect();
        idle.select_nth_unstable(n - 1);
        idle.truncate(n);
        idle.sort_unstable_by_key(|&(_, id)| id);
        let evicted = &mut self.evicted;
        self.conns.retain(|c| {
            let is_dropped = idle.binary_search_by_key(&c.id, |&(_, id)| id).is_ok();
            if is_dropped {
                evicted.connections += 1;
                for s in &c.stats {
                    evicted.packets += s.packets;
                    evicted.bytes += s.bytes;
                }
            }
            !is_dropped
        });
        tracing::debug!(
            dropped = n,
            held = self.conns.len(),
            "flow table full: idle connections dropped"
        );
        self.by_key.clear();
        for (i, c) in self.conns.iter().enumerate() {
            let key = if c.a <= c.b { (c.a, c.b) } else { (c.b, c.a) };
            self.by_key.insert(key, i);
        }
        self.last = None;
    }
}

impl Connection {
    fn is_finished(&self) -> bool {
        self.stats.iter().any(|s| s.is_rst_seen) || self.stats.iter().all(|s| s.is_fin_seen)
    }

    fn isn_of(&self, sender: SocketAddr) -> Option<u32> {
        let d = if sender == self.a { 0 } else { 1 };
        self.stats[d]
            .is_syn_seen
            .then(|| self.seq[d].base)
            .flatten()
    }

    /// Seconds from the first to the last segment.
    pub fn duration_s(&self) -> f64 {
        self.last.since_s(self.start)
    }

    /// The window shift that applies to segments sent in `dir`: only when both SYNs offered
    /// scaling (RFC 7323 §2.2); unknown (handshake not captured) counts as none.
    fn window_shift(&self, dir: usize) -> u8 {
        match (
            self.stats[dir].window_scale,
            self.stats[1 - dir].window_scale,
        ) {
            (Some(s), Some(_)) => s.min(14),
            _ => 0,
        }
    }

    fn handle(&mut self, ts: Timestamp, seg: &Segment, wire_len: u32, rule: RttRule) -> Verdict {
        let dir = if seg.src == self.a {
            Dir::AtoB
        } else {
            Dir::BtoA
        };
        let d = dir.index();
        self.last = ts;
        self.count_sent(d, seg, wire_len);
        self.note_handshake(d, ts, seg.flags);
        let first_rtt_ns = self.first_rtt_ns;
        let [s0, s1] = &mut self.seq;
        let (fwd, rev) = if d == 0 { (s0, s1) } else { (s1, s0) };
        // Classification (Wireshark parity), then the bookkeeping it leaves for the next one.
        let f = classify(fwd, rev, ts, seg, first_rtt_ns);
        remember_unacked(fwd, ts, seg, f, rule);
        advance(fwd, ts, seg, f);
        let rtt_ns = take_rtt(rev, ts, seg, rule);
        let n = numbers(fwd, rev, seg);
        let shift = if seg.flags.any(TcpFlags::SYN) {
            0
        } else {
            self.window_shift(d)
        };
        // Statistics.
        self.count_verdict(d, f, seg.payload_len, rtt_ns);
        Verdict {
            conn: self.id,
            dir,
            flags: f,
            seq_rel: n.seq_rel,
            end_rel: n.end_rel,
            ack_rel: n.ack_rel,
            base: n.base,
            peer_base: n.peer_base,
            payload_len: seg.payload_len,
            window_bytes: u64::from(seg.window) << shift,
            rtt_ns,
            in_flight: n.in_flight,
            peer_in_flight: n.peer_in_flight,
            sack: n.sack,
            sack_len: seg.options.sack_len,
        }
    }

    /// Counts a segment sent in direction `d` (index) and what its flags say of the endpoint.
    fn count_sent(&mut self, d: usize, seg: &Segment, wire_len: u32) {
        let flags = seg.flags;
        let st = &mut self.stats[d];
        st.packets += 1;
        st.bytes += u64::from(wire_len);
        st.payload_bytes += u64::from(seg.payload_len);
        if flags.any(TcpFlags::SYN) {
            st.is_syn_seen = true;
            st.window_scale = seg.options.window_scale;
        }
        st.is_fin_seen |= flags.any(TcpFlags::FIN);
        st.is_rst_seen |= flags.any(TcpFlags::RST);
    }

    /// Wireshark's `ts_mru_syn` and first RTT (from the last SYN to the SYN sender's first ACK
    /// after the SYN-ACK), which bounds how late a segment may be and still be out-of-order.
    fn note_handshake(&mut self, d: usize, ts: Timestamp, flags: TcpFlags) {
        if flags.any(TcpFlags::SYN) && !flags.any(TcpFlags::ACK) {
            self.last_syn = Some(ts);
        }
        if self.first_rtt_ns.is_none()
            && d == 0
            && self.stats[0].is_syn_seen
            && self.stats[1].is_syn_seen
            && !flags.any(TcpFlags::SYN)
            && flags.any(TcpFlags::ACK)
        {
            self.first_rtt_ns = Some(ts.since_ns(self.last_syn.unwrap_or(self.start)));
        }
    }

    /// Counts what the classification and the RTT sample found.
    fn count_verdict(&mut self, d: usize, f: Flags, seglen: u32, rtt_ns: Option<i64>) {
        let st = &mut self.stats[d];
        if f.any(Flags::ANY_RETRANSMISSION) {
            st.retransmissions += 1;
            st.retransmitted_bytes += u64::from(seglen);
        }
        if f.any(Flags::FAST_RETRANSMISSION) {
            st.fast_retransmissions += 1;
        }
        if f.any(Flags::SPURIOUS_RETRANSMISSION) {
            st.spurious_retransmissions += 1;
        }
        if f.any(Flags::OUT_OF_ORDER) {
            st.out_of_order += 1;
        }
        if f.any(Flags::DUP_ACK) {
            st.dup_acks += 1;
        }
        if f.any(Flags::ZERO_WINDOW) {
            st.zero_windows += 1;
        }
        if let Some(ns) = rtt_ns {
            self.stats[1 - d].rtt.add(ns);
        }
    }
}

/// Wireshark's TCP analysis of one segment sent by `fwd`'s side (packet-tcp.c,
/// tcp_analyze_sequence_number): window, keep-alive, duplicate ACK, lost and unseen segments,
/// and the kind of retransmission. Updates the duplicate-ACK and ACKed-unseen bookkeeping it
/// reads; [`advance`] records the rest after it.
fn classify(
    fwd: &mut SeqState,
    rev: &mut SeqState,
    ts: Timestamp,
    seg: &Segment,
    first_rtt_ns: Option<i64>,
) -> Flags {
    let (flags, seq, ack, seglen, window) =
        (seg.flags, seg.seq, seg.ack, seg.payload_len, seg.window);
    let is_syn_fin = flags.any(TcpFlags::SYN | TcpFlags::FIN);
    let is_sfr = flags.any(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST);
    if fwd.base.is_none() {
        fwd.base = Some(if flags.any(TcpFlags::SYN) {
            seq
        } else {
            seq.wrapping_sub(1)
        });
    }
    if rev.base.is_none() && flags.any(TcpFlags::ACK) {
        rev.base = Some(ack.wrapping_sub(1));
    }

    let mut f = Flags::default();
    'fwd: {
        if seglen == 1 && seq == fwd.next_seq && rev.window == Some(0) {
            f.set(Flags::ZERO_WINDOW_PROBE);
            break 'fwd;
        }
        if window == 0 && !is_sfr {
            f.set(Flags::ZERO_WINDOW);
        }
        if fwd.next_seq != 0 && seq_gt(seq, fwd.next_seq) && !flags.any(TcpFlags::RST) {
            f.set(Flags::LOST_SEGMENT);
        }
        if seglen <= 1 && seq == fwd.next_seq.wrapping_sub(1) && !is_sfr {
            f.set(Flags::KEEP_ALIVE);
        }
        let repeats = seq == fwd.next_seq && ack == fwd.last_ack && !is_sfr && seglen == 0;
        if repeats && window != 0 && Some(window) != fwd.window {
            f.set(Flags::WINDOW_UPDATE);
        }
        if repeats
            && window != 0
            && Some(window) == fwd.window
            && rev.last_flags.any(Flags::KEEP_ALIVE)
        {
            f.set(Flags::KEEP_ALIVE_ACK);
            break 'fwd;
        }
        if repeats
            && window == 0
            && Some(window) == fwd.window
            && rev.last_flags.any(Flags::ZERO_WINDOW_PROBE)
        {
            f.set(Flags::ZERO_WINDOW_PROBE_ACK);
            break 'fwd;
        }
        if repeats && window != 0 && Some(window) == fwd.window {
            fwd.dup_ack_num = if fwd.dup_ack_num == -1 {
                1
            } else {
                fwd.dup_ack_num + 1
            };
            f.set(Flags::DUP_ACK);
        }
    }
    if ack != fwd.last_ack {
        fwd.dup_ack_num = 0;
    }

    if flags.any(TcpFlags::ACK)
        && rev.max_seq_to_be_acked != 0
        && seq_gt(ack, rev.max_seq_to_be_acked)
    {
        if seq_gt(rev.max_seq_to_be_acked, rev.next_seq) {
            rev.max_seq_to_be_acked = rev.next_seq;
            f.set(Flags::ACKED_UNSEEN);
        } else {
            if rev.dup_ack_num == 0 {
                f.set(Flags::ACKED_UNSEEN);
            }
            rev.dup_ack_num = -1;
        }
    }

    let next_seq = end_of(seg);
    if (seglen > 0 || is_syn_fin) && !f.any(Flags::KEEP_ALIVE) {
        let mut is_not_advanced = fwd.next_seq != 0 && seq_lt(seq, fwd.next_seq);
        // More than one byte right after a possible zero-window probe is new data.
        if seglen > 1 && fwd.next_seq.wrapping_sub(1) == seq {
            is_not_advanced = false;
        }
        let ooo_threshold_ns = first_rtt_ns.filter(|&t| t > 0).unwrap_or(3_000_000);
        // Wireshark's packet-tcp.c (tcp_analyze_sequence_number) takes these time
        // differences as `guint64 t`: a segment stamped even 1 ns before the ACK or the
        // segment it is compared with (capture-clock jitter, several interfaces) wraps to a
        // huge t, so it is neither a fast retransmission nor out-of-order but a plain
        // retransmission. Hence "0 ≤ t < threshold", not "t < threshold".
        let is_within =
            |since: Timestamp, limit_ns: i64| (0..limit_ns).contains(&ts.since_ns(since));
        if seglen > 0 && rev.last_ack != 0 && seq_le(seq.wrapping_add(seglen), rev.last_ack) {
            f.set(Flags::SPURIOUS_RETRANSMISSION);
        } else if is_not_advanced
            && rev.dup_ack_num >= 2
            && rev.last_ack == seq
            && is_within(rev.last_ack_time, 20_000_000)
        {
            f.set(Flags::FAST_RETRANSMISSION);
        } else if is_not_advanced
            && is_within(fwd.next_seq_time, ooo_threshold_ns)
            && fwd.next_seq != next_seq
        {
            f.set(Flags::OUT_OF_ORDER);
        } else if is_not_advanced {
            f.set(Flags::RETRANSMISSION);
        }
    }

    f
}

/// The end of a segment's sequence space: its data, plus one for SYN or FIN.
fn end_of(seg: &Segment) -> u32 {
    let is_syn_fin = seg.flags.any(TcpFlags::SYN | TcpFlags::FIN);
    seg.seq
        .wrapping_add(seg.payload_len)
        .wrapping_add(u32::from(is_syn_fin))
}

/// Remembers a segment with data, SYN or FIN for RTT samples by `rule`; resent data makes an
/// ACK of it ambiguous under Karn's rule.
fn remember_unacked(fwd: &mut SeqState, ts: Timestamp, seg: &Segment, f: Flags, rule: RttRule) {
    let (seq, seglen) = (seg.seq, seg.payload_len);
    let is_syn_fin = seg.flags.any(TcpFlags::SYN | TcpFlags::FIN);
    let next_seq = end_of(seg);
    if (seglen > 0 || is_syn_fin) && rule == RttRule::Tshark {
        if fwd.unacked.len() < MAX_UNACKED {
            if fwd.unacked.back().is_some_and(|b| seq_lt(seq, b.end)) {
                fwd.is_unacked_unordered = true;
            }
            fwd.unacked.push_back(Unacked {
                seq,
                end: next_seq,
                sent: ts,
                is_ambiguous: false,
            });
        }
    } else if seglen > 0 || is_syn_fin {
        if f.any(Flags::ANY_RETRANSMISSION | Flags::OUT_OF_ORDER) {
            for u in fwd.unacked.iter_mut() {
                if seq_lt(u.seq, next_seq) && seq_gt(u.end, seq) {
                    u.is_ambiguous = true;
                }
            }
        }
        let is_new_data = fwd.next_seq == 0 || seq_gt(next_seq, fwd.next_seq);
        if is_new_data && fwd.unacked.len() < MAX_UNACKED {
            fwd.unacked.push_back(Unacked {
                seq,
                end: next_seq,
                sent: ts,
                is_ambiguous: f.any(Flags::ANY_RETRANSMISSION),
            });
        }
    }
}

/// Records what the next segment is classified against: highest sequence number and its time,
/// the highest to be acknowledged, the window and ACK sent, the flags found.
fn advance(fwd: &mut SeqState, ts: Timestamp, seg: &Segment, f: Flags) {
    let (seq, next_seq) = (seg.seq, end_of(seg));
    let (ack, window) = (seg.ack, seg.window);
    if (fwd.next_seq == 0 || seq_gt(next_seq, fwd.next_seq)) && !f.any(Flags::ZERO_WINDOW_PROBE) {
        fwd.next_seq = next_seq;
        fwd.next_seq_time = ts;
    }
    if (fwd.max_seq_to_be_acked == 0 || seq == fwd.max_seq_to_be_acked)
        && !f.any(Flags::ZERO_WINDOW_PROBE)
    {
        fwd.max_seq_to_be_acked = fwd.next_seq;
    }
    fwd.window = Some(window);
    fwd.last_ack = ack;
    fwd.last_ack_time = ts;
    fwd.last_flags = f;
}

/// The ACK of `seg` (if any) on the other side's unacknowledged segments: those it covers go,
/// and an RTT sample by `rule`.
fn take_rtt(rev: &mut SeqState, ts: Timestamp, seg: &Segment, rule: RttRule) -> Option<i64> {
    let (flags, ack) = (seg.flags, seg.ack);
    let mut rtt_ns = None;
    if flags.any(TcpFlags::ACK) && rule == RttRule::Tshark {
        rtt_ns = rev.ack_as_wireshark(ack).map(|sent| ts.since_ns(sent));
        // tshark shows no ack_rtt of 0 (it adds the field only when the time is non-zero).
        rtt_ns = rtt_ns.filter(|&ns| ns != 0);
    } else if flags.any(TcpFlags::ACK) {
        while let Some(u) = rev.unacked.front_mut() {
            if seq_le(u.end, ack) {
                if u.end == ack && !u.is_ambiguous {
                    rtt_ns = Some(ts.since_ns(u.sent));
                }
                rev.unacked.pop_front();
            } else {
                if seq_gt(ack, u.seq) {
                    u.seq = ack;
                }
                break;
            }
        }
    }

    rtt_ns
}

/// A verdict's numbers (see [`Verdict`]'s fields of the same names).
struct Numbers {
    seq_rel: i64,
    end_rel: i64,
    ack_rel: Option<i64>,
    base: u32,
    peer_base: u32,
    in_flight: Option<u64>,
    peer_in_flight: Option<u64>,
    sack: [(i64, i64); 4],
}

/// A segment's numbers: relative sequence and ACK numbers unwrapped to 64 bits, bytes in
/// flight each way, SACK blocks, ISNs.
fn numbers(fwd: &mut SeqState, rev: &mut SeqState, seg: &Segment) -> Numbers {
    let (flags, seq, ack, seglen) = (seg.flags, seg.seq, seg.ack, seg.payload_len);
    let next_seq = end_of(seg);
    // Relative numbers, unwrapped to 64 bits.
    let seq_unwrapped = fwd.unwrap(seq, true);
    let end_unwrapped = fwd.unwrap(next_seq, true);
    let seq_rel = fwd.relative(seq_unwrapped);
    let end_rel = fwd.relative(end_unwrapped);
    let ack_rel = flags.any(TcpFlags::ACK).then(|| {
        let u = rev.unwrap(ack, false);
        rev.relative(u)
    });
    let highest_acked_by_rev = |fwd_state: &mut SeqState, rev_state: &SeqState| {
        (rev_state.last_ack != 0 && fwd_state.next_seq != 0).then(|| {
            u64::from(fwd_state.next_seq.wrapping_sub(rev_state.last_ack))
                .min(u64::from(u32::MAX / 2))
        })
    };
    let in_flight = if seglen > 0 {
        highest_acked_by_rev(fwd, rev)
    } else {
        None
    };
    let peer_in_flight = if flags.any(TcpFlags::ACK) && rev.next_seq != 0 {
        Some(u64::from(rev.next_seq.wrapping_sub(ack)).min(u64::from(u32::MAX / 2)))
    } else {
        None
    };
    let mut sack = [(0i64, 0i64); 4];
    for (slot, &(l, r)) in sack.iter_mut().zip(seg.options.sack_blocks()) {
        let lu = rev.unwrap(l, false);
        let ru = rev.unwrap(r, false);
        *slot = (rev.relative(lu), rev.relative(ru));
    }
    Numbers {
        seq_rel,
        end_rel,
        ack_rel,
        base: fwd.base.unwrap_or(0),
        peer_base: rev.base.unwrap_or(0),
        in_flight,
        peer_in_flight,
        sack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::TcpOptions;

    const A: &str = "10.0.0.1:40000";
    const B: &str = "10.0.0.2:9999";

    /// A tiny script language for segments: times in ms.
    struct Script {
        table: FlowTable,
        verdicts: Vec<Verdict>,
    }

    impl Script {
        fn new() -> Self {
            Self {
                table: FlowTable::new(),
                verdicts: Vec::new(),
            }
        }

        /// A segment at `ms`, from a or b, with `flags`, (seq, ack), `len` bytes of data and a
        /// raw `window`.
        fn seg(
            &mut self,
            ms: f64,
            from_a: bool,
            flags: u8,
            seq_ack: (u32, u32),
            len: u32,
            window: u16,
        ) -> Verdict {
            self.seg_opts(
                ms,
                from_a,
                flags,
                seq_ack,
                (len, window),
                TcpOptions::default(),
            )
        }

        /// [`Script::seg`] with options; `len_window` is (data bytes, raw window).
        fn seg_opts(
            &mut self,
            ms: f64,
            from_a: bool,
            flags: u8,
            (seq, ack): (u32, u32),
            (len, window): (u32, u16),
            options: TcpOptions,
        ) -> Verdict {
            let (src, dst) = if from_a { (A, B) } else { (B, A) };
            let seg = Segment {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                seq,
                ack,
                flags: TcpFlags(flags),
                window,
                payload_len: len,
                options,
                is_ip_len_past_frame: false,
            };
            let v = self
                .table
                .handle_segment(Timestamp((ms * 1e6) as i128), &seg, 54 + len);
            self.verdicts.push(v);
            v
        }

        fn stats(&self) -> [DirectionStats; 2] {
            self.table.connections()[0].stats
        }
    }

    const S: u8 = TcpFlags::SYN;
    const K: u8 = TcpFlags::ACK;
    const F: u8 = TcpFlags::FIN;

    /// SYN / SYN-ACK / ACK with ISNs 1000 (a) and 5000 (b), first RTT 1 ms.
    fn handshake(s: &mut Script, isn_a: u32, isn_b: u32) {
        s.seg(0.0, true, S, (isn_a, 0), 0, 65535);
        s.seg(0.5, false, S | K, (isn_b, isn_a + 1), 0, 65535);
        s.seg(1.0, true, K, (isn_a + 1, isn_b + 1), 0, 65535);
    }

    #[test]
    fn handshake_sets_endpoints_relative_numbers_and_rtt() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        let v = s.seg(10.0, true, K, (1001, 5001), 100, 512);
        assert_eq!((v.seq_rel, v.end_rel, v.ack_rel), (1, 101, Some(1)));
        let ack = s.seg(12.0, false, K, (5001, 1101), 0, 512);
        assert_eq!(ack.rtt_ns, Some(2_000_000));
        let c = &s.table.connections()[0];
        assert_eq!(c.a.to_string(), A);
        let [ab, ba] = c.stats;
        // a's SYN timed by the SYN-ACK (0.5 ms), and the data (2 ms).
        assert_eq!(
            (ab.rtt.samples, ab.rtt.min_ns, ab.rtt.max_ns),
            (2, 500_000, 2_000_000)
        );
        // b's SYN-ACK timed by a's ACK.
        assert_eq!(ba.rtt.samples, 1);
        assert_eq!((ab.packets, ab.payload_bytes, ba.packets), (3, 100, 2));
    }

    #[test]
    fn connection_seen_from_syn_ack_still_names_the_syn_sender_a() {
        let mut s = Script::new();
        s.seg(0.0, false, S | K, (5000, 1001), 0, 100);
        assert_eq!(s.table.connections()[0].a.to_string(), A);
    }

    #[test]
    fn retransmission_after_timeout_is_flagged_and_not_timed_under_karn() {
        let mut s = Script::new();
        s.table = FlowTable::with_rtt_rule(RttRule::Karn);
        handshake(&mut s, 1000, 5000);
        s.seg(10.0, true, K, (1001, 5001), 100, 512);
        let r = s.seg(300.0, true, K, (1001, 5001), 100, 512);
        assert!(r.flags.any(Flags::RETRANSMISSION), "{:?}", r.flags);
        let ack = s.seg(301.0, false, K, (5001, 1101), 0, 512);
        assert_eq!(ack.rtt_ns, None, "Karn: an ACK of resent data is no sample");
        let [ab, _] = s.stats();
        assert_eq!((ab.retransmissions, ab.retransmitted_bytes), (1, 100));
    }

    /// Wireshark times an ACK of resent data from the first send, takes the oldest of several
    /// segments ending at the ACK, walks past a retransmission that covers more than one
    /// original segment, and shows no sample of 0.
    #[test]
    fn tshark_rule_times_resent_data_from_the_first_send_and_drops_zero_samples() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        s.seg(10.0, true, K, (1001, 5001), 100, 512);
        s.seg(11.0, true, K, (1101, 5001), 100, 512);
        let r = s.seg(300.0, true, K, (1001, 5001), 200, 512);
        assert!(r.flags.any(Flags::RETRANSMISSION), "{:?}", r.flags);
        let ack = s.seg(301.0, false, K, (5001, 1101), 0, 512);
        assert_eq!(
            ack.rtt_ns,
            Some(291_000_000),
            "from the first send of 1001..1101"
        );
        // Both 1101..1201 (first sent at 11 ms) and the resend 1001..1201 end at 1201.
        let ack = s.seg(302.0, false, K, (5001, 1201), 0, 512);
        assert_eq!(ack.rtt_ns, Some(291_000_000), "from the oldest: 11 ms");
        s.seg(400.0, true, K, (1201, 5001), 100, 512);
        let ack = s.seg(400.0, false, K, (5001, 1301), 0, 512);
        assert_eq!(ack.rtt_ns, None, "a 0 ns sample is dropped");
        let [ab, _] = s.stats();
        assert_eq!(ab.rtt.samples, 1 + 2, "the handshake's and two");
    }

    #[test]
    fn two_dup_acks_then_resend_is_a_fast_retransmission() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        s.seg(10.0, true, K, (1001, 5001), 100, 512); // lost on the way
        s.seg(10.1, true, K, (1101, 5001), 100, 512);
        s.seg(10.2, true, K, (1201, 5001), 100, 512);
        s.seg(10.3, true, K, (1301, 5001), 100, 512);
        s.seg(11.0, false, K, (5001, 1001), 0, 512);
        let d1 = s.seg(11.1, false, K, (5001, 1001), 0, 512);
        let d2 = s.seg(11.2, false, K, (5001, 1001), 0, 512);
        assert!(d1.flags.any(Flags::DUP_ACK) && d2.flags.any(Flags::DUP_ACK));
        let r = s.seg(11.5, true, K, (1001, 5001), 100, 512);
        assert!(r.flags.any(Flags::FAST_RETRANSMISSION), "{:?}", r.flags);
        let [ab, ba] = s.stats();
        assert_eq!(
            (ab.retransmissions, ab.fast_retransmissions, ba.dup_acks),
            (1, 1, 2)
        );
    }

    #[test]
    fn resent_data_already_acked_is_spurious() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        s.seg(10.0, true, K, (1001, 5001), 100, 512);
        s.seg(11.0, false, K, (5001, 1101), 0, 512);
        let r = s.seg(200.0, true, K, (1001, 5001), 100, 512);
        assert!(r.flags.any(Flags::SPURIOUS_RETRANSMISSION));
        assert_eq!(s.stats()[0].retransmissions, 1);
    }

    #[test]
    fn late_segment_within_the_first_rtt_is_out_of_order_not_retransmitted() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000); // first RTT 1 ms
        s.seg(10.0, true, K, (1101, 5001), 100, 512);
        let gap = s.verdicts.last().unwrap().flags;
        assert!(gap.any(Flags::LOST_SEGMENT), "bytes 1..1101 not seen yet");
        let o = s.seg(10.2, true, K, (1001, 5001), 100, 512);
        assert!(o.flags.any(Flags::OUT_OF_ORDER), "{:?}", o.flags);
        assert_eq!(s.stats()[0].retransmissions, 0);
    }

    #[test]
    fn a_syn_sent_again_starts_the_first_rtt_anew() {
        let mut s = Script::new();
        s.seg(0.0, true, S, (1000, 0), 0, 65535);
        // The first SYN was lost: the second, a second later, is answered.
        s.seg(1000.0, true, S, (1000, 0), 0, 65535);
        s.seg(1000.5, false, S | K, (5000, 1001), 0, 65535);
        s.seg(1001.0, true, K, (1001, 5001), 0, 65535); // first RTT 1 ms, not 1001 ms
        s.seg(1010.0, true, K, (1101, 5001), 100, 512);
        let late = s.seg(1012.0, true, K, (1001, 5001), 100, 512);
        assert!(
            late.flags.any(Flags::ANY_RETRANSMISSION) && !late.flags.any(Flags::OUT_OF_ORDER),
            "2 ms late with a 1 ms first RTT: {:?}",
            late.flags
        );
    }

    #[test]
    fn window_update_is_not_a_dup_ack_and_zero_window_is_counted() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        s.seg(10.0, false, K, (5001, 1001), 0, 0);
        let upd = s.seg(11.0, false, K, (5001, 1001), 0, 400);
        assert!(upd.flags.any(Flags::WINDOW_UPDATE) && !upd.flags.any(Flags::DUP_ACK));
        let [_, ba] = s.stats();
        assert_eq!((ba.zero_windows, ba.dup_acks), (1, 0));
    }

    #[test]
    fn keep_alive_is_neither_retransmission_nor_its_ack_a_dup_ack() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        s.seg(10.0, true, K, (1001, 5001), 10, 512);
        s.seg(11.0, false, K, (5001, 1011), 0, 512);
        let ka = s.seg(5000.0, true, K, (1010, 5001), 1, 512);
        assert!(ka.flags.any(Flags::KEEP_ALIVE) && !ka.flags.any(Flags::ANY_RETRANSMISSION));
        let kaa = s.seg(5000.1, false, K, (5001, 1011), 0, 512);
        assert!(kaa.flags.any(Flags::KEEP_ALIVE_ACK) && !kaa.flags.any(Flags::DUP_ACK));
    }

    #[test]
    fn sequence_wraparound_keeps_relative_numbers_growing() {
        let mut s = Script::new();
        let isn = u32::MAX - 150;
        handshake(&mut s, isn, 7);
        let v1 = s.seg(10.0, true, K, (isn.wrapping_add(1), 8), 100, 512);
        let v2 = s.seg(10.1, true, K, (isn.wrapping_add(101), 8), 100, 512);
        assert_eq!((v1.seq_rel, v2.seq_rel, v2.end_rel), (1, 101, 201));
        assert!(!v2
            .flags
            .any(Flags::ANY_RETRANSMISSION | Flags::LOST_SEGMENT));
        let ack = s.seg(11.0, false, K, (8, isn.wrapping_add(201)), 0, 512);
        assert_eq!(ack.ack_rel, Some(201));
        assert_eq!(ack.peer_in_flight, Some(0));
    }

    #[test]
    fn window_scale_applies_only_when_both_syns_offer_it() {
        let ws = |s| TcpOptions {
            window_scale: Some(s),
            ..TcpOptions::default()
        };
        let mut s = Script::new();
        s.seg_opts(0.0, true, S, (1000, 0), (0, 65535), ws(7));
        s.seg_opts(0.5, false, S | K, (5000, 1001), (0, 65535), ws(3));
        let v = s.seg(1.0, true, K, (1001, 5001), 0, 100);
        assert_eq!(v.window_bytes, 100 << 7);
        let v = s.seg(1.1, false, K, (5001, 1001), 0, 100);
        assert_eq!(v.window_bytes, 100 << 3);

        let mut s = Script::new();
        s.seg_opts(0.0, true, S, (1000, 0), (0, 65535), ws(7));
        s.seg(0.5, false, S | K, (5000, 1001), 0, 65535);
        let v = s.seg(1.0, true, K, (1001, 5001), 0, 100);
        assert_eq!(v.window_bytes, 100);
    }

    #[test]
    fn reused_ports_after_fin_start_a_new_connection() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        s.seg(2.0, true, F | K, (1001, 5001), 0, 512);
        s.seg(3.0, false, F | K, (5001, 1002), 0, 512);
        s.seg(4.0, true, K, (1002, 5002), 0, 512);
        s.seg(100.0, true, S, (90_000, 0), 0, 512);
        assert_eq!(s.table.connections().len(), 2);
        assert_eq!(s.verdicts.last().unwrap().conn, ConnId(1));
    }

    #[test]
    fn sack_blocks_are_relative_to_the_data_sender() {
        let mut s = Script::new();
        handshake(&mut s, 1000, 5000);
        let mut o = TcpOptions::default();
        o.sack[0] = (1201, 1301);
        o.sack_len = 1;
        let v = s.seg_opts(12.0, false, K, (5001, 1101), (0, 512), o);
        assert_eq!(&v.sack[..1], &[(201, 301)]);
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use crate::segment::TcpOptions;

    fn syn(port: u16) -> Segment {
        Segment {
            src: SocketAddr::from(([192, 0, 2, 10], port)),
            dst: SocketAddr::from(([192, 0, 2, 1], 9999)),
            seq: 1000,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 512,
            payload_len: 0,
            options: TcpOptions::default(),
            is_ip_len_past_frame: false,
        }
    }

    /// 100 000 one-packet connections through a table of 1 000, with one busy connection
    /// sending all along: the table never holds more than its bound, the busy one is never
    /// dropped (it is never the idlest), ids stay in capture order and are found by id, and
    /// every dropped connection and packet is counted.
    #[test]
    fn a_full_table_drops_the_idlest_connections_and_counts_them() {
        let max = 1_000;
        let mut t = FlowTable::with_limits(RttRule::Tshark, max);
        let mut busy = syn(1);
        let first = t.handle_segment(Timestamp(0), &busy, 60);
        busy.flags = TcpFlags(TcpFlags::ACK);
        busy.seq = 1001;
        let (mut peak, n) = (0, 100_000u32);
        for i in 0..n {
            let ts = Timestamp(i128::from(i + 1) * 1000);
            let v = t.handle_segment(ts, &syn(2 + (i % 60_000) as u16 + (i / 60_000) as u16), 60);
            assert_eq!(v.conn, ConnId(i as usize + 1), "ids in capture order");
            if i % 10 == 0 {
                let v = t.handle_segment(ts, &busy, 1514);
                assert_eq!(v.conn, first.conn, "the busy connection is kept");
                busy.seq += 1;
            }
            peak = peak.max(t.connections().len());
        }
        assert!(peak <= max, "held {peak} > {max}");
        let held = t.connections().len() as u64;
        let e = t.evicted();
        assert_eq!(e.connections + held, u64::from(n) + 1);
        let packets_held: u64 = t.connections().iter().map(|c| c.stats[0].packets).sum();
        assert_eq!(
            e.packets + packets_held,
            u64::from(n) + 1 + u64::from(n / 10)
        );
        let last = t.connections().last().expect("held").id;
        assert_eq!(last, ConnId(n as usize));
        assert_eq!(t.connection(last).map(|c| c.id), Some(last));
        assert!(
            t.connection(ConnId(5)).is_none(),
            "an early idle one was dropped"
        );
        assert!(t.connections().windows(2).all(|w| w[0].id < w[1].id));
    }
}
