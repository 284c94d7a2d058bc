//! IPv4 and IPv6 fragment reassembly for the TCP analysis, bounded in datagrams, memory and
//! capture time.
//!
//! tshark reassembles fragmented datagrams (its `ip.defragment` and `ipv6.defragment`
//! preferences, on by default) and dissects TCP in the frame whose fragment completes the
//! datagram; the other fragments are no TCP frames. [`Reassembler`] does the same: it is fed
//! the fragments of TCP datagrams with their capture times and answers, for the one that
//! completes a datagram, an IP packet that [`crate::segment::decode`] reads like any other.
//!
//! Only what the analysis reads is kept: the first [`HEAD_BYTES`] bytes of each datagram's
//! payload (the TCP header and options) and the byte ranges seen, from which the payload length
//! follows. Bounds: [`Limits::max_datagrams`] in flight (the oldest is dropped for a new one),
//! [`MAX_PIECES`] separate ranges per datagram (more is treated as an attack and the datagram
//! dropped), and [`Limits::timeout_ns`] of capture time from a datagram's first fragment (Linux's
//! `ipfrag_time` is 30 s; Wireshark keeps fragments for the whole file). Overlapping and
//! duplicate fragments are merged, the bytes seen first kept; a fragment past 64 KiB or past
//! the end a last fragment set drops its datagram. Every outcome is counted in [`DefragStats`].

use std::collections::{HashMap, VecDeque};

use crate::time::Timestamp;

/// Bytes of each datagram's payload kept for decoding: a TCP header with the largest options
/// (60 bytes) with room to spare.
pub const HEAD_BYTES: usize = 256;

/// Separate byte ranges a datagram may be in before it is dropped (a datagram of 8-byte
/// fragments sent every other one would otherwise hold thousands).
pub const MAX_PIECES: usize = 64;

/// Largest IP payload a reassembled datagram may carry (an IPv4 total length of 65 535 less the
/// smallest header; the same bound for IPv6's 16-bit payload length).
const MAX_PAYLOAD: u32 = 65_535 - 20;

/// Which datagram a fragment belongs to (RFC 791: source, destination, protocol and
/// identification; RFC 8200: source, destination and identification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragmentKey {
    /// An IPv4 datagram.
    V4 {
        /// Source address.
        src: [u8; 4],
        /// Destination address.
        dst: [u8; 4],
        /// Identification field.
        id: u16,
        /// Protocol field.
        protocol: u8,
    },
    /// An IPv6 datagram.
    V6 {
        /// Source address.
        src: [u8; 16],
        /// Destination address.
        dst: [u8; 16],
        /// The fragment header's identification.
        id: u32,
        /// The fragment header's next header.
        next_header: u8,
    },
}

impl FragmentKey {
    /// The protocol of the reassembled payload.
    pub fn protocol(&self) -> u8 {
        match *self {
            Self::V4 { protocol, .. } => protocol,
            Self::V6 { next_header, .. } => next_header,
        }
    }
}

/// One fragment as read from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Its datagram.
    pub key: FragmentKey,
    /// Where its data goes in the datagram's payload, in bytes.
    pub offset: u32,
    /// Its data's length on the wire (from the IP header, trimmed to the frame).
    pub len: u32,
    /// No more fragments follow (the last one sets the datagram's length).
    pub is_last: bool,
    /// The captured part of its data (shorter than `len` when the snaplen cut the frame).
    pub data: &'a [u8],
}

/// The reassembler's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Datagrams in flight at once; a new one beyond this drops the oldest.
    pub max_datagrams: usize,
    /// Capture time from a datagram's first fragment after which it is dropped incomplete.
    pub timeout_ns: i64,
}

impl Default for Limits {
    /// 4 096 datagrams (at most ~6 MB held: a head and two range lists each) and 30 s, Linux's default `ipfrag_time`.
    fn default() -> Self {
        Self {
            max_datagrams: 4096,
            timeout_ns: 30_000_000_000,
        }
    }
}

/// What the reassembler did, for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefragStats {
    /// Fragments fed in.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped incomplete: timed out, pushed out by newer ones, or still waiting at
    /// the end of the capture.
    pub incomplete: u64,
    /// Datagrams dropped as malformed: past 64 KiB, data past the last fragment's end, two
    /// different ends, or too many separate pieces.
    pub malformed: u64,
    /// Fragments that overlapped data already held (duplicates included); merged, not fatal.
    pub overlapping: u64,
}

/// A datagram being reassembled.
#[derive(Debug)]
struct Datagram {
    first_seen: Timestamp,
    /// Payload byte ranges seen on the wire, sorted and merged.
    pieces: Vec<(u32, u32)>,
    /// Of the first [`HEAD_BYTES`], the ranges captured into `head`, sorted and merged.
    captured: Vec<(u32, u32)>,
    head: Box<[u8; HEAD_BYTES]>,
    /// The payload's length, once the last fragment was seen.
    total: Option<u32>,
}

/// A completed datagram: an IP packet with the reassembled payload's head, and its length on
/// the wire (header plus the whole payload) to decode it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reassembled<'a> {
    /// IPv4 (20-byte header) or IPv6 (40-byte header, no extensions) packet, cut after the
    /// payload's captured head.
    pub ip: &'a [u8],
    /// Header plus the whole payload's length.
    pub wire_len: u32,
}

/// Fragment reassembly: a pure state machine fed fragments and capture times.
#[derive(Debug, Default)]
pub struct Reassembler {
    limits: Limits,
    in_flight: HashMap<FragmentKey, Datagram>,
    /// Datagrams by first fragment, oldest first; entries of datagrams already gone are skipped
    /// when met and compacted away when the queue grows past twice the datagram bound.
    order: VecDeque<(Timestamp, FragmentKey)>,
    stats: DefragStats,
    out: Vec<u8>,
}

impl Reassembler {
    /// A reassembler with these bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> DefragStats {
        self.stats
    }

    /// Datagrams waiting for fragments.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Takes one fragment captured at `ts`; answers the datagram when this one completes it.
    pub fn handle(&mut self, ts: Timestamp, frag: &Fragment<'_>) -> Option<Reassembled<'_>> {
        self.stats.fragments += 1;
        self.expire(ts);
        let end = frag.offset.saturating_add(frag.len);
        if !self.in_flight.contains_key(&frag.key) {
            if end > MAX_PAYLOAD {
                self.stats.malformed += 1;
                return None;
            }
            self.make_room();
            self.order.push_back((ts, frag.key));
            if self.order.len() > 2 * self.limits.max_datagrams.max(1) {
                let live = &self.in_flight;
                self.order
                    .retain(|(t, k)| live.get(k).is_some_and(|d| d.first_seen == *t));
            }
            self.in_flight.insert(
                frag.key,
                Datagram {
                    first_seen: ts,
                    pieces: Vec::new(),
                    captured: Vec::new(),
                    head: Box::new([0; HEAD_BYTES]),
                    total: None,
                },
            );
        }
        let d = self.in_flight.get_mut(&frag.key)?;
        match add(d, frag, end) {
            Added::Malformed => {
                self.in_flight.remove(&frag.key);
                self.stats.malformed += 1;
                return None;
            }
            Added::Overlapping => self.stats.overlapping += 1,
            Added::Fresh => {}
        }
        let total = d.total?;
        if d.pieces.as_slice() != [(0, total)] && !(total == 0 && d.pieces.is_empty()) {
            return None;
        }
        let d = self.in_flight.remove(&frag.key)?;
        self.stats.reassembled += 1;
        let head_len = match d.captured.first() {
            Some(&(0, e)) => e as usize,
            _ => 0,
        };
        self.out.clear();
        match frag.key {
            FragmentKey::V4 {
                src, dst, protocol, ..
            } => {
                let total_len = (20 + total) as u16;
                self.out.extend_from_slice(&[0x45, 0]);
                self.out.extend_from_slice(&total_len.to_be_bytes());
                self.out
                    .extend_from_slice(&[0, 0, 0, 0, 64, protocol, 0, 0]);
                self.out.extend_from_slice(&src);
                self.out.extend_from_slice(&dst);
            }
            FragmentKey::V6 {
                src,
                dst,
                next_header,
                ..
            } => {
                self.out.extend_from_slice(&[0x60, 0, 0, 0]);
                self.out.extend_from_slice(&(total as u16).to_be_bytes());
                self.out.extend_from_slice(&[next_header, 64]);
                self.out.extend_from_slice(&src);
                self.out.extend_from_slice(&dst);
            }
        }
        let header_len = self.out.len() as u32;
        self.out.extend_from_slice(&d.head[..head_len]);
        Some(Reassembled {
            ip: &self.out,
            wire_len: header_len + total,
        })
    }

    /// Drops every datagram still waiting (the capture ended) and counts it incomplete.
    pub fn finish(&mut self) -> DefragStats {
        self.stats.incomplete += self.in_flight.len() as u64;
        self.in_flight.clear();
        self.order.clear();
        self.stats
    }

    /// Drops datagrams whose first fragment is older than the timeout.
    fn expire(&mut self, now: Timestamp) {
        while let Some(&(t, key)) = self.order.front() {
            if now.since_ns(t) <= self.limits.timeout_ns {
                break;
            }
            self.order.pop_front();
            if self.in_flight.get(&key).is_some_and(|d| d.first_seen == t) {
                self.in_flight.remove(&key);
                self.stats.incomplete += 1;
            }
        }
    }

    /// Drops the oldest datagrams until a new one fits.
    fn make_room(&mut self) {
        while self.in_flight.len() >= self.limits.max_datagrams.max(1) {
            let Some((t, key)) = self.order.pop_front() else {
                break;
            };
            if self.in_flight.get(&key).is_some_and(|d| d.first_seen == t) {
                self.in_flight.remove(&key);
                self.stats.incomplete += 1;
            }
        }
    }
}

enum Added {
    Fresh,
    Overlapping,
    Malformed,
}

/// Adds a fragment's range (`offset..end`) and captured bytes to a datagram.
fn add(d: &mut Datagram, frag: &Fragment<'_>, end: u32) -> Added {
    if end > MAX_PAYLOAD {
        return Added::Malformed;
    }
    if frag.is_last {
        match d.total {
            Some(t) if t != end => return Added::Malformed,
            _ => d.total = Some(end),
        }
    }
    if d.total
        .is_some_and(|t| d.pieces.last().is_some_and(|&(_, e)| e > t))
    {
        return Added::Malformed;
    }
    if d.total.is_some_and(|t| end > t) {
        return Added::Malformed;
    }
    // The captured bytes within the head, where nothing was captured before (first copy kept).
    let head_end = (HEAD_BYTES as u32).min(end);
    let cap_end = frag
        .offset
        .saturating_add(frag.data.len() as u32)
        .min(head_end);
    if frag.offset < cap_end {
        for (s, e) in gaps(&d.captured, frag.offset, cap_end) {
            let from = (s - frag.offset) as usize;
            let to = (e - frag.offset) as usize;
            d.head[s as usize..e as usize].copy_from_slice(&frag.data[from..to]);
        }
        insert(&mut d.captured, frag.offset, cap_end);
    }
    if frag.len == 0 {
        return Added::Fresh;
    }
    let is_overlapping = gaps(&d.pieces, frag.offset, end)
        .iter()
        .map(|(s, e)| e - s)
        .sum::<u32>()
        != end - frag.offset;
    insert(&mut d.pieces, frag.offset, end);
    if d.pieces.len() > MAX_PIECES {
        return Added::Malformed;
    }
    if is_overlapping {
        Added::Overlapping
    } else {
        Added::Fresh
    }
}

/// The parts of `start..end` that no range in `ranges` (sorted, merged) covers.
fn gaps(ranges: &[(u32, u32)], start: u32, end: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut at = start;
    for &(s, e) in ranges {
        if e <= at {
            continue;
        }
        if s >= end {
            break;
        }
        if s > at {
            out.push((at, s));
        }
        at = e;
        if at >= end {
            break;
        }
    }
    if at < end {
        out.push((at, end));
    }
    out
}

/// Adds `start..end` to sorted, merged `ranges`, merging it with those it touches.
fn insert(ranges: &mut Vec<(u32, u32)>, start: u32, end: u32) {
    let (mut s, mut e) = (start, end);
    let first = ranges.partition_point(|&(_, re)| re < s);
    let mut last = first;
    while last < ranges.len() && ranges[last].0 <= e {
        s = s.min(ranges[last].0);
        e = e.max(ranges[last].1);
        last += 1;
    }
    ranges.splice(first..last, [(s, e)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: FragmentKey = FragmentKey::V4 {
        src: [192, 0, 2, 1],
        dst: [192, 0, 2, 2],
        id: 7,
        protocol: 6,
    };

    fn frag(offset: u32, data: &[u8], is_last: bool) -> Fragment<'_> {
        Fragment {
            key: KEY,
            offset,
            len: data.len() as u32,
            is_last,
            data,
        }
    }

    #[test]
    fn ranges_merge_and_gaps_are_what_is_left() {
        let mut r = Vec::new();
        insert(&mut r, 16, 24);
        insert(&mut r, 0, 8);
        insert(&mut r, 40, 48);
        assert_eq!(r, [(0, 8), (16, 24), (40, 48)]);
        assert_eq!(gaps(&r, 0, 50), [(8, 16), (24, 40), (48, 50)]);
        assert_eq!(gaps(&r, 4, 20), [(8, 16)]);
        assert_eq!(gaps(&r, 0, 8).len(), 0);
        insert(&mut r, 8, 40);
        assert_eq!(r, [(0, 48)]);
    }

    #[test]
    fn fragments_in_any_order_with_duplicates_give_the_datagram_once() {
        let payload: Vec<u8> = (0..100u8).collect();
        let mut r = Reassembler::new(Limits::default());
        let t = Timestamp(0);
        assert!(r.handle(t, &frag(96, &payload[96..], true)).is_none());
        assert!(r.handle(t, &frag(48, &payload[48..96], false)).is_none());
        assert!(r.handle(t, &frag(48, &payload[48..96], false)).is_none());
        let got = r
            .handle(t, &frag(0, &payload[..56], false))
            .expect("complete");
        assert_eq!(got.wire_len, 120);
        assert_eq!(&got.ip[20..], &payload[..]);
        assert_eq!(&got.ip[..4], &[0x45, 0, 0, 120]);
        let s = r.stats();
        assert_eq!((s.fragments, s.reassembled, s.overlapping), (4, 1, 2));
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn bounds_drop_old_too_large_and_inconsistent_datagrams() {
        let data = [0u8; 8];
        let mut r = Reassembler::new(Limits {
            max_datagrams: 2,
            timeout_ns: 1000,
        });
        for id in 0..3u16 {
            let key = FragmentKey::V4 {
                src: [0; 4],
                dst: [0; 4],
                id,
                protocol: 6,
            };
            r.handle(
                Timestamp(0),
                &Fragment {
                    key,
                    ..frag(0, &data, false)
                },
            );
        }
        assert_eq!((r.in_flight(), r.stats().incomplete), (2, 1));
        // Past the timeout: both waiting ones go before this one is held.
        r.handle(Timestamp(5000), &frag(8, &data, false));
        assert_eq!((r.in_flight(), r.stats().incomplete), (1, 3));
        // Two different ends, then past 64 KiB.
        r.handle(Timestamp(5000), &frag(16, &data, true));
        r.handle(Timestamp(5000), &frag(32, &data, true));
        assert_eq!((r.in_flight(), r.stats().malformed), (0, 1));
        r.handle(Timestamp(5000), &frag(65_528, &data, true));
        assert_eq!(r.stats().malformed, 2);
        // Every other 8 bytes: too many pieces.
        for i in 0..=MAX_PIECES as u32 {
            r.handle(Timestamp(5000), &frag(i * 16, &data, false));
        }
        assert_eq!((r.in_flight(), r.stats().malformed), (0, 3));
        assert_eq!(r.finish().incomplete, 3);
    }
}
