//! Fragmented MP4 (ISO/IEC 14496-12 with the 14496-15 `avc1` sample entry) for one H.264
//! track: an init segment (`ftyp` + `moov` with an empty sample table and `mvex`), then one
//! `moof` + `mdat` per fragment. A file cut anywhere still plays up to its last whole
//! fragment, because nothing at the end of the file (no `moov` index) is needed.
//!
//! Call order: [`Fmp4Writer::init_segment`] once, [`Fmp4Writer::push`] per frame (it returns
//! a finished fragment when the frame starts a new one), [`Fmp4Writer::finish`] at the end.

use crate::h264::AvcConfig;
use vidcast_h264::avc_decoder_configuration_record;

/// Media time units per second (the MPEG 90 kHz clock: µs timestamps fit with no drift
/// worth measuring, and players expect it).
pub const TIMESCALE: u32 = 90_000;
/// A fragment ends at the next keyframe, or after this long if keyframes are rarer.
pub const FRAGMENT_MAX_US: u64 = 1_000_000;
/// A fragment also ends before its samples pass this many bytes: what the writer holds in
/// memory for a stream stays bounded however large its frames.
pub const FRAGMENT_MAX_BYTES: usize = 8 << 20;
/// The duration given to a segment's last frame when no earlier frame tells the rate.
const DEFAULT_DURATION: u32 = TIMESCALE / 30;

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
const MP4_EPOCH_OFFSET_S: u64 = 2_082_844_800;
/// Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01.
const NTP_EPOCH_OFFSET_S: u64 = 2_208_988_800;

/// `sample_depends_on` = 2 (an IDR depends on nothing).
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_depends_on` = 1 and `sample_is_non_sync_sample`.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// One frame waiting for its fragment.
#[derive(Debug)]
struct Sample {
    /// Decode time (= presentation time: no B-frames), in [`TIMESCALE`] units from the start.
    dts: u64,
    is_keyframe: bool,
    /// Length-prefixed NAL units.
    data: Vec<u8>,
}

/// Writes one fragmented MP4 file's bytes (sans-IO: the caller stores them).
#[derive(Debug)]
pub struct Fmp4Writer {
    config: AvcConfig,
    start_us: u64,
    /// `mfhd` sequence number of the next fragment, from 1.
    sequence: u32,
    pending: Vec<Sample>,
    last_dts: Option<u64>,
    last_duration: u32,
}

impl Fmp4Writer {
    /// A writer whose media time 0 is `start_us` (µs on the recording's clock).
    pub fn new(config: AvcConfig, start_us: u64) -> Self {
        Self {
            config,
            start_us,
            sequence: 1,
            pending: Vec::new(),
            last_dts: None,
            last_duration: DEFAULT_DURATION,
        }
    }

    /// The track's decoder configuration.
    pub fn config(&self) -> &AvcConfig {
        &self.config
    }

    /// `ftyp` and `moov`: what a player needs before the first fragment.
    pub fn init_segment(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        write_box(&mut out, b"ftyp", |b| {
            b.extend_from_slice(b"isom");
            put_u32(b, 0x200);
            for brand in [b"isom", b"iso6", b"iso2", b"avc1", b"mp41"] {
                b.extend_from_slice(brand);
            }
        });
        write_box(&mut out, b"moov", |b| {
            self.write_mvhd(b);
            self.write_trak(b);
            write_box(b, b"mvex", |b| {
                write_full_box(b, b"trex", 0, 0, |b| {
                    put_u32(b, 1); // track_ID
                    put_u32(b, 1); // default_sample_description_index
                    put_u32(b, 0); // default duration, size, flags: every trun says its own
                    put_u32(b, 0);
                    put_u32(b, 0);
                });
            });
        });
        out
    }

    /// Adds a frame (`sample`: length-prefixed NAL units) captured at `timestamp_us`. Returns
    /// the previous fragment, complete, when this frame starts a new one. Timestamps that go
    /// backwards are moved just after the previous frame (durations stay positive).
    pub fn push(
        &mut self,
        timestamp_us: u64,
        is_keyframe: bool,
        sample: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let raw = timestamp_us.saturating_sub(self.start_us) * u64::from(TIMESCALE) / 1_000_000;
        let dts = self.last_dts.map_or(raw, |last| raw.max(last + 1));
        if let Some(last) = self.last_dts {
            self.last_duration = u32::try_from(dts - last).unwrap_or(u32::MAX);
        }
        self.last_dts = Some(dts);
        let max_ticks = FRAGMENT_MAX_US * u64::from(TIMESCALE) / 1_000_000;
        let held: usize = self.pending.iter().map(|s| s.data.len()).sum();
        let full = held + sample.len() > FRAGMENT_MAX_BYTES;
        let fragment = match self.pending.first() {
            Some(first) if is_keyframe || full || dts - first.dts >= max_ticks => {
                Some(self.fragment(dts))
            }
            _ => None,
        };
        self.pending.push(Sample {
            dts,
            is_keyframe,
            data: sample,
        });
        fragment
    }

    /// The last fragment, if frames are waiting; its last frame lasts as long as the one
    /// before it.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let end = self.pending.last()?.dts + u64::from(self.last_duration);
        Some(self.fragment(end))
    }

    /// `moof` + `mdat` of the pending samples; `next_dts` ends the last one.
    fn fragment(&mut self, next_dts: u64) -> Vec<u8> {
        let samples = std::mem::take(&mut self.pending);
        let durations: Vec<u32> = samples
            .iter()
            .zip(samples.iter().skip(1).map(|s| s.dts).chain([next_dts]))
            .map(|(s, next)| u32::try_from(next.saturating_sub(s.dts)).unwrap_or(u32::MAX))
            .collect();
        let payload: usize = samples.iter().map(|s| s.data.len()).sum();
        let mut out = Vec::with_capacity(payload + 160 + 12 * samples.len());
        let base_dts = samples.first().map_or(0, |s| s.dts);
        // Producer reference time: the wall-clock capture time of the fragment's first frame,
        // so files of different clients line up to the microsecond, not just by name.
        let wall_us = self.start_us + base_dts * 1_000_000 / u64::from(TIMESCALE);
        write_full_box(&mut out, b"prft", 1, 0, |b| {
            put_u32(b, 1); // reference_track_ID
            put_u64(b, ntp_timestamp(wall_us));
            put_u64(b, base_dts);
        });
        let moof_at = out.len();
        let mut data_offset_at = 0;
        write_box(&mut out, b"moof", |b| {
            write_full_box(b, b"mfhd", 0, 0, |b| put_u32(b, self.sequence));
            write_box(b, b"traf", |b| {
                // default-base-is-moof: data offsets count from this moof's first byte.
                write_full_box(b, b"tfhd", 0, 0x02_0000, |b| put_u32(b, 1));
                write_full_box(b, b"tfdt", 1, 0, |b| put_u64(b, base_dts));
                // data-offset, sample-duration, sample-size and sample-flags present.
                write_full_box(b, b"trun", 0, 0x0701, |b| {
                    put_u32(b, samples.len() as u32);
                    data_offset_at = b.len();
                    put_u32(b, 0);
                    for (s, &duration) in samples.iter().zip(&durations) {
                        put_u32(b, duration);
                        put_u32(b, s.data.len() as u32);
                        put_u32(
                            b,
                            if s.is_keyframe {
                                FLAGS_SYNC
                            } else {
                                FLAGS_NON_SYNC
                            },
                        );
                    }
                });
            });
        });
        // The payload starts after the moof and the mdat's 8-byte header.
        let data_offset = (out.len() - moof_at + 8) as u32;
        out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        put_u32(&mut out, (payload + 8) as u32);
        out.extend_from_slice(b"mdat");
        for s in &samples {
            out.extend_from_slice(&s.data);
        }
        self.sequence += 1;
        out
    }

    /// The start time in seconds since 1904 (players show it as the creation time; 32 bits
    /// last until 2040, then it saturates).
    fn creation_time(&self) -> u32 {
        u32::try_from(self.start_us / 1_000_000 + MP4_EPOCH_OFFSET_S).unwrap_or(u32::MAX)
    }

    fn write_mvhd(&self, b: &mut Vec<u8>) {
        write_full_box(b, b"mvhd", 0, 0, |b| {
            put_u32(b, self.creation_time()); // creation time
            put_u32(b, self.creation_time()); // modification time
            put_u32(b, 1000); // timescale
            put_u32(b, 0); // duration: unknown, the fragments tell
            put_u32(b, 0x0001_0000); // rate 1.0
            b.extend_from_slice(&[0x01, 0x00]); // volume 1.0
            b.extend_from_slice(&[0; 10]); // reserved
            put_matrix(b);
            b.extend_from_slice(&[0; 24]); // pre_defined
            put_u32(b, 2); // next_track_ID
        });
    }

    fn write_trak(&self, b: &mut Vec<u8>) {
        let (width, height) = (self.config.width, self.config.height);
        write_box(b, b"trak", |b| {
            // Flags: track enabled, in movie.
            write_full_box(b, b"tkhd", 0, 3, |b| {
                put_u32(b, self.creation_time());
                put_u32(b, self.creation_time());
                put_u32(b, 1); // track_ID
                put_u32(b, 0); // reserved
                put_u32(b, 0); // duration
                b.extend_from_slice(&[0; 8]); // reserved
                b.extend_from_slice(&[0; 8]); // layer, alternate_group, volume, reserved
                put_matrix(b);
                put_u32(b, u32::from(width) << 16);
                put_u32(b, u32::from(height) << 16);
            });
            write_box(b, b"mdia", |b| {
                write_full_box(b, b"mdhd", 0, 0, |b| {
                    put_u32(b, self.creation_time());
                    put_u32(b, self.creation_time());
                    put_u32(b, TIMESCALE);
                    put_u32(b, 0);
                    b.extend_from_slice(&[0x55, 0xc4, 0, 0]); // language "und", pre_defined
                });
                write_full_box(b, b"hdlr", 0, 0, |b| {
                    put_u32(b, 0);
                    b.extend_from_slice(b"vide");
                    b.extend_from_slice(&[0; 12]);
                    b.extend_from_slice(b"vidcast\0");
                });
                write_box(b, b"minf", |b| {
                    write_full_box(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                    write_box(b, b"dinf", |b| {
                        write_full_box(b, b"dref", 0, 0, |b| {
                            put_u32(b, 1);
                            // Flag 1: the media is in this file.
                            write_full_box(b, b"url ", 0, 1, |_| {});
                        });
                    });
                    write_box(b, b"stbl", |b| {
                        write_full_box(b, b"stsd", 0, 0, |b| {
                            put_u32(b, 1);
                            self.write_avc1(b);
                        });
                        // Empty tables: every sample lives in a fragment.
                        for kind in [b"stts", b"stsc", b"stco"] {
                            write_full_box(b, kind, 0, 0, |b| put_u32(b, 0));
                        }
                        write_full_box(b, b"stsz", 0, 0, |b| {
                            put_u32(b, 0);
                            put_u32(b, 0);
                        });
                    });
                });
            });
        });
    }

    fn write_avc1(&self, b: &mut Vec<u8>) {
        let c = &self.config;
        write_box(b, b"avc1", |b| {
            b.extend_from_slice(&[0; 6]); // reserved
            b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
            b.extend_from_slice(&[0; 16]); // pre_defined, reserved
            b.extend_from_slice(&c.width.to_be_bytes());
            b.extend_from_slice(&c.height.to_be_bytes());
            put_u32(b, 0x0048_0000); // 72 dpi
            put_u32(b, 0x0048_0000);
            put_u32(b, 0); // reserved
            b.extend_from_slice(&1u16.to_be_bytes()); // frame_count
            b.extend_from_slice(&[0; 32]); // compressorname
            b.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
            b.extend_from_slice(&(-1i16).to_be_bytes()); // pre_defined
            write_box(b, b"avcC", |b| {
                // `AvcConfig::from_access_unit` made sure the record can be built.
                let record = avc_decoder_configuration_record(&c.sps, &c.pps);
                b.extend_from_slice(&record.unwrap_or_default());
            });
        });
    }
}

/// µs since the Unix epoch as a 64-bit NTP timestamp (seconds since 1900 . 32-bit fraction).
fn ntp_timestamp(unix_us: u64) -> u64 {
    let seconds = unix_us / 1_000_000 + NTP_EPOCH_OFFSET_S;
    let fraction = (unix_us % 1_000_000) * (1u64 << 32) / 1_000_000;
    (seconds << 32) | fraction
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
fn put_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        put_u32(out, v);
    }
}

/// A box: 32-bit size, type, then whatever `body` writes.
fn write_box(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: a box whose body starts with a version byte and 24 bits of flags.
fn write_full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, kind, |b| {
        put_u32(b, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(b);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A box as the tests read it back: type, body, and children for container boxes.
    #[derive(Debug)]
    struct Parsed {
        kind: String,
        body: Vec<u8>,
        children: Vec<Parsed>,
    }

    const CONTAINERS: [&str; 9] = [
        "moov", "trak", "mdia", "minf", "stbl", "dinf", "mvex", "moof", "traf",
    ];

    fn parse(mut data: &[u8]) -> Vec<Parsed> {
        let mut boxes = Vec::new();
        while !data.is_empty() {
            assert!(data.len() >= 8, "truncated box header");
            let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && size <= data.len(),
                "box size {size} of {}",
                data.len()
            );
            let kind = String::from_utf8_lossy(&data[4..8]).into_owned();
            let body = data[8..size].to_vec();
            let children = if CONTAINERS.contains(&kind.as_str()) {
                parse(&body)
            } else {
                Vec::new()
            };
            boxes.push(Parsed {
                kind,
                body,
                children,
            });
            data = &data[size..];
        }
        boxes
    }

    fn find<'a>(boxes: &'a [Parsed], path: &str) -> &'a Parsed {
        let (head, rest) = path.split_once('/').unwrap_or((path, ""));
        let b = boxes.iter().find(|b| b.kind == head).unwrap_or_else(|| {
            panic!(
                "no {head} in {:?}",
                boxes.iter().map(|b| &b.kind).collect::<Vec<_>>()
            )
        });
        if rest.is_empty() {
            b
        } else {
            find(&b.children, rest)
        }
    }

    fn u32_at(body: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(body[at..at + 4].try_into().unwrap())
    }

    fn config() -> AvcConfig {
        AvcConfig {
            sps: vec![0x67, 0x42, 0xc0, 0x1e, 0xaa],
            pps: vec![0x68, 0xce],
            width: 640,
            height: 480,
        }
    }

    /// (tfdt, durations, flags, payload) of one fragment, checking its offsets.
    fn read_fragment(bytes: &[u8]) -> (u64, Vec<u32>, Vec<u32>, Vec<u8>) {
        let boxes = parse(bytes);
        assert_eq!(boxes.len(), 3, "prft, moof, mdat");
        assert_eq!(boxes[0].kind, "prft");
        let boxes = &boxes[1..];
        let tfdt = find(boxes, "moof/traf/tfdt");
        assert_eq!(tfdt.body[0], 1, "64-bit tfdt");
        let base = u64::from_be_bytes(tfdt.body[4..12].try_into().unwrap());
        let trun = &find(boxes, "moof/traf/trun").body;
        let count = u32_at(trun, 4) as usize;
        let data_offset = u32_at(trun, 8) as usize;
        let moof_len = boxes[0].body.len() + 8;
        assert_eq!(
            data_offset,
            moof_len + 8,
            "data offset points past the mdat header"
        );
        let (mut durations, mut sizes, mut flags) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..count {
            durations.push(u32_at(trun, 12 + 12 * i));
            sizes.push(u32_at(trun, 16 + 12 * i) as usize);
            flags.push(u32_at(trun, 20 + 12 * i));
        }
        assert_eq!(sizes.iter().sum::<usize>(), boxes[1].body.len());
        (base, durations, flags, boxes[1].body.clone())
    }

    /// The `avcC` body of an init segment.
    fn avcc_of(config: AvcConfig) -> Vec<u8> {
        let init = Fmp4Writer::new(config, 0).init_segment();
        let boxes = parse(&init);
        let stsd = &find(&boxes, "moov/trak/mdia/minf/stbl/stsd").body;
        let entries = parse(&stsd[8..]);
        parse(&entries[0].body[78..])[0].body.clone()
    }

    #[test]
    fn a_high_profile_avcc_carries_chroma_format_and_bit_depths() {
        // x264's 1920x1080 High profile SPS: 4:2:0, 8 bits.
        let sps = vec![
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0x08, 0x3c, 0x60, 0xc6, 0x58,
        ];
        let high = avcc_of(AvcConfig {
            sps,
            pps: vec![0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0],
            width: 1920,
            height: 1080,
        });
        assert_eq!(high[1..4], [0x64, 0x00, 0x28]);
        assert_eq!(high[high.len() - 4..], [0xfd, 0xf8, 0xf8, 0x00]);
        // Baseline ends with the PPS.
        let baseline = avcc_of(config());
        assert_eq!(baseline[baseline.len() - 2..], [0x68, 0xce]);
    }

    #[test]
    fn a_fragment_ends_before_its_samples_pass_the_byte_bound() {
        let mut w = Fmp4Writer::new(config(), 0);
        let big = vec![0u8; FRAGMENT_MAX_BYTES / 2];
        assert!(w.push(0, true, big.clone()).is_none());
        assert!(
            w.push(1_000, false, big.clone()).is_none(),
            "exactly at the bound"
        );
        let fragment = w
            .push(2_000, false, big)
            .expect("over the bound: a fragment");
        assert!(fragment.len() > FRAGMENT_MAX_BYTES && fragment.len() < FRAGMENT_MAX_BYTES + 400);
    }

    #[test]
    fn init_segment_has_the_track_an_mp4_player_needs() {
        let init = Fmp4Writer::new(config(), 0).init_segment();
        let boxes = parse(&init);
        assert_eq!(&find(&boxes, "ftyp").body[..4], b"isom");
        assert_eq!(u32_at(&find(&boxes, "moov/mvex/trex").body, 4), 1);
        let mdhd = &find(&boxes, "moov/trak/mdia/mdhd").body;
        assert_eq!(u32_at(mdhd, 12), TIMESCALE);
        let tkhd = &find(&boxes, "moov/trak/tkhd").body;
        assert_eq!((u32_at(tkhd, 76) >> 16, u32_at(tkhd, 80) >> 16), (640, 480));
        let stsd = &find(&boxes, "moov/trak/mdia/minf/stbl/stsd").body;
        let entries = parse(&stsd[8..]);
        assert_eq!(entries[0].kind, "avc1");
        let avc1 = &entries[0].body;
        assert_eq!(
            (&avc1[24..26], &avc1[26..28]),
            (&[2u8, 0x80][..], &[1u8, 0xe0][..])
        );
        let avcc = parse(&avc1[78..]);
        assert_eq!(avcc[0].kind, "avcC");
        assert_eq!(
            avcc[0].body,
            [
                1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1e, 0xaa, 1, 0, 2, 0x68,
                0xce
            ]
        );
        assert_eq!(find(&boxes, "moov/trak/mdia/hdlr").body[8..12], *b"vide");
    }

    #[test]
    fn fragments_start_at_keyframes_with_durations_from_timestamps() {
        let mut w = Fmp4Writer::new(config(), 1_000_000);
        let mut fragments = Vec::new();
        // 0, 40, 70 ms, keyframe at 100 ms, then 133 ms.
        for (ts, key) in [
            (0, true),
            (40, false),
            (70, false),
            (100, true),
            (133, false),
        ] {
            fragments.extend(w.push(1_000_000 + ts * 1000, key, vec![key as u8; 5]));
        }
        fragments.extend(w.finish());
        assert_eq!(fragments.len(), 2);
        let (base, durations, flags, payload) = read_fragment(&fragments[0]);
        assert_eq!(base, 0);
        assert_eq!(durations, [3600, 2700, 2700]);
        assert_eq!(flags, [FLAGS_SYNC, FLAGS_NON_SYNC, FLAGS_NON_SYNC]);
        assert_eq!(payload, [[1; 5], [0; 5], [0; 5]].concat());
        let (base, durations, _, _) = read_fragment(&fragments[1]);
        assert_eq!(base, 9000);
        assert_eq!(
            durations,
            [2970, 2970],
            "the last frame lasts as long as the one before"
        );
        let second = parse(&fragments[1]);
        assert_eq!(u32_at(&second[1].children[0].body, 4), 2, "mfhd sequence");
        // prft: the fragment's first frame, 1.1 s after the Unix epoch, as NTP.
        let ntp = u64::from_be_bytes(second[0].body[8..16].try_into().unwrap());
        assert_eq!(ntp >> 32, 1 + NTP_EPOCH_OFFSET_S);
        assert_eq!(
            ((ntp & 0xffff_ffff) * 1000) >> 32,
            99,
            "0.1 s, rounded down"
        );
        assert_eq!(
            u64::from_be_bytes(second[0].body[16..24].try_into().unwrap()),
            9000
        );
    }

    #[test]
    fn a_long_group_is_cut_into_one_second_fragments() {
        let mut w = Fmp4Writer::new(config(), 0);
        let fragments: Vec<_> = (0..100u64)
            .filter_map(|i| w.push(i * 33_333, i == 0, vec![1]))
            .collect();
        assert_eq!(fragments.len(), 3, "3.3 s of frames with one keyframe");
    }

    proptest! {
        /// Whatever the timestamps (jitter, repeats, going backwards), fragments tile the
        /// timeline: each starts where the previous ended, every duration is positive.
        #[test]
        fn fragments_tile_the_timeline(
            steps in proptest::collection::vec((0u64..80_000, any::<bool>(), any::<bool>()), 1..200)
        ) {
            let mut w = Fmp4Writer::new(config(), 5_000);
            let mut ts = 5_000u64;
            let mut fragments = Vec::new();
            for (i, (step, backwards, key)) in steps.iter().enumerate() {
                ts = if *backwards { ts.saturating_sub(*step / 4) } else { ts + step };
                fragments.extend(w.push(ts, i == 0 || *key, vec![0; 3]));
            }
            fragments.extend(w.finish());
            let mut expected_base = read_fragment(&fragments[0]).0;
            let mut count = 0;
            for f in &fragments {
                let (base, durations, _, _) = read_fragment(f);
                prop_assert_eq!(base, expected_base);
                prop_assert!(durations.iter().all(|&d| d > 0));
                expected_base += durations.iter().map(|&d| u64::from(d)).sum::<u64>();
                count += durations.len();
            }
            prop_assert_eq!(count, steps.len());
        }
    }
}
