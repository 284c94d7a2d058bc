//! Matroska (RFC 9559) with one `V_MJPEG` video track: each JPEG is a `SimpleBlock`
//! keyframe. Clusters of about a second are written whole with their size known, and the
//! `Segment` starts with an unknown size, so a file cut anywhere plays up to its last whole
//! cluster; a clean finish patches in the segment size and the duration.
//!
//! Call order: [`MkvWriter::header`] once, [`MkvWriter::push`] per frame (it returns a
//! finished cluster when the frame starts a new one), [`MkvWriter::finish`] at the end.

use bytes::Bytes;

/// Block timestamps are in milliseconds (`TimestampScale` 1 000 000 ns).
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// A cluster ends once it spans this long.
pub const CLUSTER_MAX_MS: u64 = 1_000;
/// A cluster also ends before its pictures pass this many bytes: what the writer holds in
/// memory for a stream stays bounded however large its frames.
pub const CLUSTER_MAX_BYTES: usize = 8 << 20;
/// The duration of a file's last frame when no earlier frame tells the rate.
const DEFAULT_FRAME_MS: u64 = 33;
/// 2001-01-01T00:00:00Z, the epoch of `DateUTC`, in µs since the Unix epoch.
const MATROSKA_EPOCH_US: u64 = 978_307_200_000_000;

const ID_EBML: u32 = 0x1A45_DFA3;
const ID_SEGMENT: u32 = 0x1853_8067;
const ID_INFO: u32 = 0x1549_A966;
const ID_DURATION: u32 = 0x4489;
const ID_TRACKS: u32 = 0x1654_AE6B;
const ID_CLUSTER: u32 = 0x1F43_B675;
const ID_TIMESTAMP: u32 = 0xE7;
const ID_SIMPLE_BLOCK: u32 = 0xA3;

/// A rewrite of bytes already written: `bytes` at `offset` from the file's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Where, from the start of the file.
    pub offset: u64,
    /// The new bytes.
    pub bytes: Vec<u8>,
}

/// Writes one Matroska file's bytes (sans-IO: the caller stores them).
#[derive(Debug)]
pub struct MkvWriter {
    width: u16,
    height: u16,
    start_us: u64,
    /// Bytes handed out so far (header and clusters).
    written: u64,
    segment_size_at: u64,
    segment_data_at: u64,
    duration_at: u64,
    /// The open cluster: its timestamp and (block time, picture) pairs.
    cluster_ms: u64,
    /// The pictures are kept as shared `Bytes`: copied once, into the cluster.
    blocks: Vec<(u64, Bytes)>,
    last_ms: Option<u64>,
    last_frame_ms: u64,
}

impl MkvWriter {
    /// A writer for pictures of `width` x `height` whose time 0 is `start_us` (µs since the
    /// Unix epoch: it also becomes the file's `DateUTC`).
    pub fn new(width: u16, height: u16, start_us: u64) -> Self {
        Self {
            width,
            height,
            start_us,
            written: 0,
            segment_size_at: 0,
            segment_data_at: 0,
            duration_at: 0,
            cluster_ms: 0,
            blocks: Vec::new(),
            last_ms: None,
            last_frame_ms: DEFAULT_FRAME_MS,
        }
    }

    /// The EBML header, the start of the `Segment`, `Info` and `Tracks`.
    pub fn header(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut ebml = Vec::new();
        uint_element(&mut ebml, 0x4286, 1); // EBMLVersion
        uint_element(&mut ebml, 0x42F7, 1); // EBMLReadVersion
        uint_element(&mut ebml, 0x42F2, 4); // EBMLMaxIDLength
        uint_element(&mut ebml, 0x42F3, 8); // EBMLMaxSizeLength
        element(&mut ebml, 0x4282, b"matroska"); // DocType
        uint_element(&mut ebml, 0x4287, 4); // DocTypeVersion
        uint_element(&mut ebml, 0x4285, 2); // DocTypeReadVersion
        element(&mut out, ID_EBML, &ebml);

        put_id(&mut out, ID_SEGMENT);
        self.segment_size_at = out.len() as u64;
        // Unknown size until finish: a cut file is still a valid live-style Matroska file.
        out.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        self.segment_data_at = out.len() as u64;

        let mut info = Vec::new();
        uint_element(&mut info, 0x2A_D7B1, TIMESTAMP_SCALE_NS); // TimestampScale
        element(&mut info, 0x4D80, b"vidcast"); // MuxingApp
        element(&mut info, 0x5741, b"vidcast"); // WritingApp
        let date_ns = (self.start_us.saturating_sub(MATROSKA_EPOCH_US) as i64).saturating_mul(1000);
        element(&mut info, 0x4461, &date_ns.to_be_bytes()); // DateUTC
                                                            // Duration must be > 0, and is known only at finish: until then a Void element of the
                                                            // same length holds its place, so a cut file has no Duration rather than a wrong one.
        let duration_in_info = info.len();
        info.extend_from_slice(&DURATION_PLACEHOLDER);
        put_id(&mut out, ID_INFO);
        put_size(&mut out, info.len() as u64);
        self.duration_at = (out.len() + duration_in_info) as u64;
        out.extend_from_slice(&info);

        let mut video = Vec::new();
        uint_element(&mut video, 0xB0, u64::from(self.width)); // PixelWidth
        uint_element(&mut video, 0xBA, u64::from(self.height)); // PixelHeight
        let mut entry = Vec::new();
        uint_element(&mut entry, 0xD7, 1); // TrackNumber
        uint_element(&mut entry, 0x73C5, 1); // TrackUID
        uint_element(&mut entry, 0x83, 1); // TrackType: video
        uint_element(&mut entry, 0x9C, 0); // FlagLacing
        element(&mut entry, 0x86, b"V_MJPEG"); // CodecID
        element(&mut entry, 0xE0, &video); // Video
        let mut tracks = Vec::new();
        element(&mut tracks, 0xAE, &entry); // TrackEntry
        element(&mut out, ID_TRACKS, &tracks);
        self.written += out.len() as u64;
        out
    }

    /// Adds a JPEG captured at `timestamp_us`; returns the previous cluster, complete, when
    /// this frame starts a new one. Times that go backwards are held at the previous frame's.
    pub fn push(&mut self, timestamp_us: u64, jpeg: Bytes) -> Option<Vec<u8>> {
        let raw_ms = timestamp_us.saturating_sub(self.start_us) / 1000;
        let ms = self.last_ms.map_or(raw_ms, |last| raw_ms.max(last));
        if let Some(last) = self.last_ms {
            if ms > last {
                self.last_frame_ms = ms - last;
            }
        }
        self.last_ms = Some(ms);
        let held: usize = self.blocks.iter().map(|(_, d)| d.len()).sum();
        let full = held + jpeg.len() > CLUSTER_MAX_BYTES;
        let cluster = (!self.blocks.is_empty() && (ms - self.cluster_ms >= CLUSTER_MAX_MS || full))
            .then(|| self.cluster());
        if self.blocks.is_empty() {
            self.cluster_ms = ms;
        }
        self.blocks.push((ms, jpeg));
        cluster
    }

    /// The last cluster (if frames wait) and the patches that make the file complete: the
    /// segment's size and the duration.
    pub fn finish(&mut self) -> (Option<Vec<u8>>, Vec<Patch>) {
        let cluster = (!self.blocks.is_empty()).then(|| self.cluster());
        let duration_ms = self.last_ms.map_or(0, |last| last + self.last_frame_ms);
        let mut size = vec![0x01];
        size.extend_from_slice(&(self.written - self.segment_data_at).to_be_bytes()[1..]);
        let patches = vec![
            Patch {
                offset: self.segment_size_at,
                bytes: size,
            },
            Patch {
                offset: self.duration_at,
                bytes: duration_element(duration_ms as f64),
            },
        ];
        (cluster, patches)
    }

    fn cluster(&mut self) -> Vec<u8> {
        let blocks = std::mem::take(&mut self.blocks);
        let mut timestamp = Vec::with_capacity(10);
        uint_element(&mut timestamp, ID_TIMESTAMP, self.cluster_ms);
        // A SimpleBlock: ID (1 byte), size, track (1), relative time (2), flags (1), picture.
        let block_len = |data: &Bytes| 1 + size_len(data.len() as u64 + 4) + 4 + data.len();
        let body_len = timestamp.len() + blocks.iter().map(|(_, d)| block_len(d)).sum::<usize>();
        // Written in place (no intermediate body): the pictures are most of the bytes.
        let mut out = Vec::with_capacity(body_len + 12);
        put_id(&mut out, ID_CLUSTER);
        put_size(&mut out, body_len as u64);
        out.extend_from_slice(&timestamp);
        for (ms, data) in &blocks {
            put_id(&mut out, ID_SIMPLE_BLOCK);
            put_size(&mut out, data.len() as u64 + 4);
            out.push(0x81); // track number 1 as a 1-byte vint
                            // Below CLUSTER_MAX_MS (plus one frame gap), far inside i16.
            let relative = i16::try_from(ms - self.cluster_ms).unwrap_or(i16::MAX);
            out.extend_from_slice(&relative.to_be_bytes());
            out.push(0x80); // keyframe
            out.extend_from_slice(data);
        }
        self.written += out.len() as u64;
        out
    }
}

/// A Void element (ID 0xEC, a 2-byte size of 8, 8 zero bytes) as long as [`duration_element`].
const DURATION_PLACEHOLDER: [u8; 11] = [0xEC, 0x40, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];

/// The Duration element (a 64-bit float), 11 bytes.
fn duration_element(ms: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(DURATION_PLACEHOLDER.len());
    put_id(&mut out, ID_DURATION);
    put_size(&mut out, 8);
    out.extend_from_slice(&ms.to_be_bytes());
    out
}

/// An element ID as written: IDs carry their own length marker, so drop leading zeros.
fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// Bytes of the shortest EBML variable-length integer for `size` (all ones means "unknown").
fn size_len(size: u64) -> usize {
    (1..8).find(|&n| size < (1u64 << (7 * n)) - 1).unwrap_or(8)
}

/// A data size as the shortest EBML variable-length integer.
fn put_size(out: &mut Vec<u8>, size: u64) {
    let len = size_len(size);
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn uint_element(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element read back: ID, body, children (for the master elements we write).
    #[derive(Debug)]
    struct Element {
        id: u32,
        body: Vec<u8>,
        children: Vec<Element>,
    }

    const MASTERS: [u32; 6] = [ID_EBML, ID_SEGMENT, ID_INFO, ID_TRACKS, 0xAE, 0xE0];

    fn vint(data: &[u8], keep_marker: bool) -> (u64, usize) {
        let len = data[0].leading_zeros() as usize + 1;
        let mut value = u64::from(data[0]);
        if !keep_marker {
            value &= (1u64 << (8 - len)) - 1;
        }
        for &b in &data[1..len] {
            value = (value << 8) | u64::from(b);
        }
        (value, len)
    }

    fn parse(mut data: &[u8]) -> Vec<Element> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (id, id_len) = vint(data, true);
            let (size, size_len) = vint(&data[id_len..], false);
            let start = id_len + size_len;
            let end = if size == (1u64 << (7 * size_len)) - 1 {
                data.len() // unknown size: to the end
            } else {
                start + size as usize
            };
            let body = data[start..end].to_vec();
            let id = id as u32;
            let children = if MASTERS.contains(&id) || id == ID_CLUSTER {
                parse(&body)
            } else {
                Vec::new()
            };
            out.push(Element { id, body, children });
            data = &data[end..];
        }
        out
    }

    fn child(e: &Element, id: u32) -> &Element {
        e.children
            .iter()
            .find(|c| c.id == id)
            .expect("child present")
    }

    fn uint(body: &[u8]) -> u64 {
        body.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
    }

    fn apply(file: &mut [u8], patches: &[Patch]) {
        for p in patches {
            let at = p.offset as usize;
            file[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
    }

    #[test]
    fn a_cluster_ends_before_its_pictures_pass_the_byte_bound() {
        let mut w = MkvWriter::new(64, 48, 0);
        let big = Bytes::from(vec![0u8; CLUSTER_MAX_BYTES / 2]);
        assert!(w.push(0, big.clone()).is_none());
        assert!(w.push(1_000, big.clone()).is_none(), "exactly at the bound");
        let cluster = w.push(2_000, big).expect("over the bound: a cluster");
        assert!(cluster.len() > CLUSTER_MAX_BYTES && cluster.len() < CLUSTER_MAX_BYTES + 100);
    }

    #[test]
    fn sizes_are_shortest_vints_and_never_the_unknown_marker() {
        let encode = |size| {
            let mut v = Vec::new();
            put_size(&mut v, size);
            v
        };
        assert_eq!(encode(0), [0x80]);
        assert_eq!(encode(126), [0xfe]);
        assert_eq!(encode(127), [0x40, 0x7f], "0xff would mean unknown");
        assert_eq!(encode(300), [0x41, 0x2c]);
        for size in [0, 1, 127, 16_382, 16_383, 1 << 30, 1 << 50] {
            assert_eq!(vint(&encode(size), false).0, size);
        }
    }

    #[test]
    fn a_finished_file_has_track_clusters_size_and_duration() {
        let start_us = 1_700_000_000_000_000;
        let mut w = MkvWriter::new(640, 480, start_us);
        let mut file = w.header();
        for i in 0..45u64 {
            let ts = start_us + i * 50_000 + if i == 10 { 7_000 } else { 0 };
            file.extend(
                w.push(ts, Bytes::from(vec![0xff, 0xd8, i as u8, 0xff, 0xd9]))
                    .unwrap_or_default(),
            );
        }
        let (last, patches) = w.finish();
        file.extend(last.expect("frames were waiting"));
        apply(&mut file, &patches);

        let top = parse(&file);
        assert_eq!(top.len(), 2, "EBML header and one Segment");
        assert_eq!(child(&top[0], 0x4282).body, b"matroska");
        let segment = &top[1];
        assert_eq!(segment.body.len(), file.len() - 12 - top[0].body.len() - 5);
        let info = child(segment, ID_INFO);
        assert_eq!(duration_element(1.0).len(), DURATION_PLACEHOLDER.len());
        let duration = f64::from_be_bytes(child(info, ID_DURATION).body[..].try_into().unwrap());
        assert_eq!(
            duration, 2250.0,
            "44 frames at 50 ms and the last one's 50 ms"
        );
        let entry = child(child(segment, ID_TRACKS), 0xAE);
        assert_eq!(child(entry, 0x86).body, b"V_MJPEG");
        let video = child(entry, 0xE0);
        assert_eq!(
            (
                uint(&child(video, 0xB0).body),
                uint(&child(video, 0xBA).body)
            ),
            (640, 480)
        );

        let clusters: Vec<_> = segment
            .children
            .iter()
            .filter(|c| c.id == ID_CLUSTER)
            .collect();
        assert_eq!(clusters.len(), 3, "about a second each");
        let mut seen = 0;
        for c in &clusters {
            let base = uint(&child(c, ID_TIMESTAMP).body);
            for block in c.children.iter().filter(|b| b.id == ID_SIMPLE_BLOCK) {
                let rel = i16::from_be_bytes([block.body[1], block.body[2]]);
                let expected = seen * 50 + if seen == 10 { 7 } else { 0 };
                assert_eq!(base + rel as u64, expected);
                assert_eq!((block.body[0], block.body[3]), (0x81, 0x80));
                assert_eq!(block.body[6], seen as u8, "the picture, whole");
                seen += 1;
            }
        }
        assert_eq!(seen, 45);
    }

    #[test]
    fn a_cut_file_still_parses_up_to_its_last_cluster() {
        let mut w = MkvWriter::new(16, 16, 0);
        let mut file = w.header();
        for i in 0..30u64 {
            file.extend(
                w.push(i * 100_000, Bytes::from_static(&[1, 2, 3]))
                    .unwrap_or_default(),
            );
        }
        // No finish: the segment keeps its unknown size and still holds the clusters; the
        // Duration's place is a Void element (a duration of 0 is not allowed).
        let top = parse(&file);
        let info = child(&top[1], ID_INFO);
        assert!(info.children.iter().all(|c| c.id != ID_DURATION));
        assert_eq!(
            info.children
                .iter()
                .find(|c| c.id == 0xEC)
                .map(|c| c.body.len()),
            Some(8)
        );
        let clusters = top[1]
            .children
            .iter()
            .filter(|c| c.id == ID_CLUSTER)
            .count();
        assert_eq!(clusters, 2);
    }
}
