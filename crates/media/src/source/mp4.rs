//! H.264 in MP4, read without system libraries: `mp4` demuxes, OpenH264 (bundled C) decodes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use openh264::decoder::Decoder;

use super::pace::{pts_us, Pacer};
use super::{Captured, VideoSource, MAX_FPS};
use crate::h264::{h264_error, to_frame};
use crate::{Clock, Codec, EncodedFrame, MediaError, RawFrame};
use vidcast_h264::nal_units;

/// Annex B start code: what the decoder expects before each NAL unit.
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The first H.264 video track of an MP4 file, decoded and played at the track's rate.
pub struct Mp4Source {
    reader: mp4::Mp4Reader<BufReader<File>>,
    what: String,
    track_id: u32,
    sample_count: u32,
    /// 1-based, as in the MP4 sample tables.
    next_sample: u32,
    decoder: Decoder,
    /// Bytes of each NAL unit's length prefix in samples (avcC `lengthSizeMinusOne + 1`).
    nal_len_bytes: usize,
    /// SPS and PPS in Annex B, put before every sync sample so decoding can start there.
    parameter_sets: Vec<u8>,
    width: u32,
    height: u32,
    fps: f64,
    pacer: Pacer,
    /// Decoded pictures not yet played (the first one is decoded at open to learn the size).
    pending: VecDeque<RawFrame>,
    next_index: u64,
    /// Hand samples over as H.264 access units instead of decoding them.
    passthrough: bool,
}

impl std::fmt::Debug for Mp4Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp4Source")
            .field("what", &self.what)
            .field("size", &(self.width, self.height))
            .field("fps", &self.fps)
            .field("next_sample", &self.next_sample)
            .finish_non_exhaustive()
    }
}

/// What [`Mp4Source::open`] found.
#[derive(Debug)]
pub enum Mp4Open {
    /// An H.264 track the built-in decoder plays.
    Native(Box<Mp4Source>),
    /// A valid MP4 that needs ffmpeg, and why (for the message if ffmpeg is missing).
    NeedsFfmpeg(&'static str),
}

impl Mp4Source {
    /// Opens `path` and decodes its first picture, or says why ffmpeg must play it: no
    /// H.264 video track (H.265, VP9, AV1…), or B-frames, which OpenH264 cannot decode.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Mp4Open, MediaError> {
        let what = path.display().to_string();
        let input = |reason: String| MediaError::Input {
            what: what.clone(),
            reason,
        };
        let io = |source| MediaError::Io {
            what: what.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        check_box_tree(&mut file, size)
            .map_err(|reason| input(format!("not a readable MP4 file: {reason}")))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let reader = mp4::Mp4Reader::read_header(BufReader::new(file), size)
            .map_err(|e| input(format!("not a readable MP4 file: {e}")))?;
        let mut tracks: Vec<&mp4::Mp4Track> = reader.tracks().values().collect();
        tracks.sort_by_key(|t| t.track_id());
        let Some(track) = tracks
            .into_iter()
            .find(|t| t.trak.mdia.minf.stbl.stsd.avc1.is_some())
        else {
            return Ok(Mp4Open::NeedsFfmpeg("has no H.264 video track"));
        };
        let Some(avc1) = &track.trak.mdia.minf.stbl.stsd.avc1 else {
            return Ok(Mp4Open::NeedsFfmpeg("has no H.264 video track"));
        };
        // Spec: frames shown in another order than decoded carry composition offsets (ctts).
        // What encoders do: x264's default (High profile) uses B-frames, so most files have
        // them. Our choice: OpenH264 fails on B-slices, so such files go to ffmpeg.
        let stbl = &track.trak.mdia.minf.stbl;
        if stbl
            .ctts
            .as_ref()
            .is_some_and(|c| c.entries.iter().any(|e| e.sample_offset != 0))
        {
            return Ok(Mp4Open::NeedsFfmpeg(
                "uses H.264 B-frames, which the built-in decoder cannot play (or re-encode it \
                 with -bf 0)",
            ));
        }
        let avcc = &avc1.avcc;
        let mut parameter_sets = Vec::new();
        for nal in avcc
            .sequence_parameter_sets
            .iter()
            .chain(&avcc.picture_parameter_sets)
        {
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(&nal.bytes);
        }
        let fps = track.frame_rate();
        if !(fps.is_finite() && fps > 0.0 && fps <= MAX_FPS) {
            return Err(input(format!(
                "video track frame rate {fps} is not in (0, {MAX_FPS}]"
            )));
        }
        let decoder =
            Decoder::new().map_err(|e| input(format!("cannot start the H.264 decoder: {e}")))?;
        let mut source = Self {
            track_id: track.track_id(),
            sample_count: track.sample_count(),
            nal_len_bytes: usize::from(avcc.length_size_minus_one & 3) + 1,
            reader,
            what: what.clone(),
            next_sample: 1,
            decoder,
            parameter_sets,
            width: 0,
            height: 0,
            passthrough: false,
            fps,
            pacer: Pacer::new(clock),
            pending: VecDeque::new(),
            next_index: 0,
        };
        let Some(first) = source.decode_next()? else {
            return Err(source.input("no decodable H.264 picture in the video track".into()));
        };
        (source.width, source.height) = (first.width, first.height);
        source.pending.push_back(first);
        Ok(Mp4Open::Native(Box::new(source)))
    }

    /// Feeds samples to the decoder until a picture comes out; at the end, drains the
    /// decoder's delayed pictures. `None` when everything has been decoded.
    fn decode_next(&mut self) -> Result<Option<RawFrame>, MediaError> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(Some(frame));
        }
        while let Some((annex_b, _)) = self.next_access_unit()? {
            let id = self.next_sample - 1;
            let decoded = self
                .decoder
                .decode(&annex_b)
                .map_err(|e| MediaError::Input {
                    what: self.what.clone(),
                    reason: format!("H.264 decode failed at sample {id}: {}", h264_error(&e)),
                })?;
            if let Some(yuv) = decoded {
                return to_frame(&yuv).map(Some);
            }
        }
        let remaining = self
            .decoder
            .flush_remaining()
            .map_err(|e| MediaError::Input {
                what: self.what.clone(),
                reason: format!("H.264 decoder flush failed: {}", h264_error(&e)),
            })?;
        let frames = remaining
            .iter()
            .map(to_frame)
            .collect::<Result<Vec<_>, _>>()?;
        self.pending.extend(frames);
        Ok(self.pending.pop_front())
    }

    /// From now on (and from the first sample again) [`VideoSource::next_captured`] hands
    /// each sample over as an H.264 access unit (Annex B, parameter sets before each sync
    /// sample), paced like decoded frames: a stream that needs no re-encoding. Only for
    /// callers that send H.264 and read `next_captured` ([`VideoSource::next_frame`] still
    /// decodes).
    pub fn pass_h264_through(&mut self) {
        self.passthrough = true;
        self.next_sample = 1;
        self.next_index = 0;
        self.pending.clear();
    }

    /// The next sample as an Annex B access unit with its sync flag.
    fn next_access_unit(&mut self) -> Result<Option<(Vec<u8>, bool)>, MediaError> {
        while self.next_sample <= self.sample_count {
            let id = self.next_sample;
            self.next_sample += 1;
            let sample = self
                .reader
                .read_sample(self.track_id, id)
                .map_err(|e| self.input(format!("cannot read sample {id}: {e}")))?;
            let Some(sample) = sample else { continue };
            let mut annex_b = Vec::with_capacity(sample.bytes.len() + 64);
            if sample.is_sync {
                annex_b.extend_from_slice(&self.parameter_sets);
            }
            // MP4 samples hold NAL units behind big-endian lengths; the decoder wants
            // start codes.
            vidcast_h264::avcc_to_annex_b(&sample.bytes, self.nal_len_bytes, &mut annex_b)
                .map_err(|reason| self.input(format!("sample {id}: {reason}")))?;
            return Ok(Some((annex_b, sample.is_sync)));
        }
        Ok(None)
    }

    fn input(&self, reason: String) -> MediaError {
        MediaError::Input {
            what: self.what.clone(),
            reason,
        }
    }
}

/// Boxes whose children the `mp4` crate walks, and the bytes of fields before the children.
const CONTAINERS: [(&[u8; 4], usize); 16] = [
    (b"moov", 0),
    (b"trak", 0),
    (b"mdia", 0),
    (b"minf", 0),
    (b"stbl", 0),
    (b"dinf", 0),
    (b"edts", 0),
    (b"udta", 0),
    (b"mvex", 0),
    (b"moof", 0),
    (b"traf", 0),
    (b"meta", 4),
    (b"stsd", 8),
    (b"avc1", 78),
    (b"hev1", 78),
    (b"mp4a", 28),
];

/// The most moov/moof bytes read into memory for checking (real headers are far smaller).
const MAX_HEADER_BYTES: u64 = 64 << 20;

/// Checks every box size the `mp4` crate will follow before it does: given a size smaller
/// than a box header it seeks backwards and loops forever (found by flipping bytes of a
/// real file), so such files must be refused here.
fn check_box_tree(file: &mut File, file_len: u64) -> Result<(), String> {
    let mut pos = 0u64;
    while pos < file_len {
        let mut header = [0u8; 16];
        let avail = (file_len - pos).min(16) as usize;
        file.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        file.read_exact(&mut header[..avail])
            .map_err(|e| e.to_string())?;
        let (kind, header_len, size) = box_header(&header[..avail], pos, file_len - pos, true)?;
        if kind == *b"moov" || kind == *b"moof" {
            if size > MAX_HEADER_BYTES {
                return Err(format!("{} box of {size} bytes at byte {pos}", name(&kind)));
            }
            let mut body = vec![0u8; (size - header_len) as usize];
            file.seek(SeekFrom::Start(pos + header_len))
                .map_err(|e| e.to_string())?;
            file.read_exact(&mut body).map_err(|e| e.to_string())?;
            check_children(&body, pos + header_len)?;
        }
        pos += size;
    }
    Ok(())
}

/// Checks the boxes in `data` (which starts at file offset `at`) and their children.
fn check_children(data: &[u8], at: u64) -> Result<(), String> {
    let mut pos = 0usize;
    while pos < data.len() {
        let offset = at + pos as u64;
        let (kind, header_len, size) =
            box_header(&data[pos..], offset, (data.len() - pos) as u64, false)?;
        let end = pos + size as usize;
        if let Some(&(_, fields)) = CONTAINERS.iter().find(|(k, _)| **k == kind) {
            let children = pos + header_len as usize + fields;
            if children < end {
                check_children(&data[children..end], at + children as u64)?;
            }
        }
        pos = end;
    }
    Ok(())
}

/// A box's type, header length and total size, checked against the `room` it has.
fn box_header(
    bytes: &[u8],
    offset: u64,
    room: u64,
    top_level: bool,
) -> Result<([u8; 4], u64, u64), String> {
    let cut = || format!("box header cut short at byte {offset}");
    let size32 = bytes.get(0..4).ok_or_else(cut)?;
    let kind: [u8; 4] = bytes
        .get(4..8)
        .ok_or_else(cut)?
        .try_into()
        .map_err(|_| cut())?;
    let (header_len, size) = match u32::from_be_bytes(size32.try_into().map_err(|_| cut())?) {
        1 => {
            let large = bytes.get(8..16).ok_or_else(cut)?;
            (16, u64::from_be_bytes(large.try_into().map_err(|_| cut())?))
        }
        // Size 0 means "to the end of the file", which only a top-level box may say.
        0 if top_level => (8, room),
        n => (8, u64::from(n)),
    };
    if size < header_len {
        return Err(format!(
            "{} box at byte {offset} has size {size}, smaller than its header",
            name(&kind)
        ));
    }
    if size > room {
        return Err(format!(
            "{} box at byte {offset} ({size} bytes) runs past its container ({room} bytes left)",
            name(&kind)
        ));
    }
    Ok((kind, header_len, size))
}

fn name(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

impl VideoSource for Mp4Source {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn fps(&self) -> f64 {
        self.fps
    }

    fn describe(&self) -> String {
        format!(
            "{} (H.264 MP4 {}x{} @ {:.3} fps, {} frames{})",
            self.what,
            self.width,
            self.height,
            self.fps,
            self.sample_count,
            if self.passthrough {
                "; sent as it is, without re-encoding: keyframes only where the file has them"
            } else {
                ""
            }
        )
    }

    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        let Some(mut frame) = self.decode_next()? else {
            return Ok(None);
        };
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(self.input(format!(
                "picture size changed from {}x{} to {}x{} mid-stream",
                self.width, self.height, frame.width, frame.height
            )));
        }
        frame.seq = self.next_index;
        self.next_index += 1;
        frame.capture_us = self.pacer.wait(pts_us(frame.seq, self.fps));
        Ok(Some(frame))
    }

    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        if !self.passthrough {
            return Ok(self.next_frame()?.map(Captured::Raw));
        }
        let Some((annex_b, is_keyframe)) = self.next_access_unit()? else {
            return Ok(None);
        };
        let seq = self.next_index;
        self.next_index += 1;
        Ok(Some(Captured::H264(EncodedFrame {
            codec: Codec::H264,
            width: self.width,
            height: self.height,
            data: annex_b.into(),
            seq,
            capture_us: self.pacer.wait(pts_us(seq, self.fps)),
            is_keyframe,
        })))
    }
}

/// Writes `frames` frames of a moving picture as H.264 (OpenH264, baseline) in an MP4 at
/// `fps`. For tests, so they need no tool to make a video file.
pub fn write_test_mp4(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
) -> Result<(), MediaError> {
    use openh264::encoder::Encoder;
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    let err = |reason: String| MediaError::Input {
        what: path.display().to_string(),
        reason,
    };
    let mut encoder = Encoder::new().map_err(|e| err(format!("encoder: {e}")))?;
    let mut samples = Vec::new();
    let (mut sps, mut pps) = (Vec::new(), Vec::new());
    for i in 0..frames {
        let rgb: Vec<u8> = (0..width * height)
            .flat_map(|p| {
                let (x, y) = (p % width, p / width);
                [(x + 4 * i) as u8, (y * 2) as u8, (i * 8) as u8]
            })
            .collect();
        let yuv =
            YUVBuffer::from_rgb8_source(RgbSliceU8::new(&rgb, (width as usize, height as usize)));
        let stream = encoder
            .encode(&yuv)
            .map_err(|e| err(format!("encode: {e}")))?;
        let annex_b = stream.to_vec();
        let mut avcc = Vec::new();
        let mut is_sync = false;
        for nal in nal_units(&annex_b) {
            match nal.first().map(|b| b & 0x1f) {
                Some(7) => sps = nal.to_vec(),
                Some(8) => pps = nal.to_vec(),
                Some(t) => {
                    is_sync |= t == 5;
                    let len = u32::try_from(nal.len()).map_err(|e| err(e.to_string()))?;
                    avcc.extend_from_slice(&len.to_be_bytes());
                    avcc.extend_from_slice(nal);
                }
                None => {}
            }
        }
        samples.push((avcc, is_sync));
    }
    let file = File::create(path).map_err(|source| MediaError::Io {
        what: path.display().to_string(),
        source,
    })?;
    let mp4_err = |e: mp4::Error| err(format!("mp4: {e}"));
    let config = mp4::Mp4Config {
        major_brand: "isom".parse().map_err(mp4_err)?,
        minor_version: 512,
        compatible_brands: vec![
            "isom".parse().map_err(mp4_err)?,
            "avc1".parse().map_err(mp4_err)?,
        ],
        timescale: 1000,
    };
    let mut writer =
        mp4::Mp4Writer::write_start(std::io::BufWriter::new(file), &config).map_err(mp4_err)?;
    writer
        .add_track(&mp4::TrackConfig {
            track_type: mp4::TrackType::Video,
            timescale: fps * 1000,
            language: "und".into(),
            media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                width: u16::try_from(width).map_err(|e| err(e.to_string()))?,
                height: u16::try_from(height).map_err(|e| err(e.to_string()))?,
                seq_param_set: sps,
                pic_param_set: pps,
            }),
        })
        .map_err(mp4_err)?;
    for (i, (bytes, is_sync)) in samples.into_iter().enumerate() {
        let sample = mp4::Mp4Sample {
            start_time: i as u64 * 1000,
            duration: 1000,
            rendering_offset: 0,
            is_sync,
            bytes: bytes.into(),
        };
        writer.write_sample(1, &sample).map_err(mp4_err)?;
    }
    writer.write_end().map_err(mp4_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn box_sizes_the_parser_would_loop_on_are_refused() {
        // ftyp, then a moov whose child claims 4 bytes (less than its own header).
        let mut file = Vec::new();
        file.extend_from_slice(&[0, 0, 0, 16]);
        file.extend_from_slice(b"ftypisom\0\0\0\0");
        file.extend_from_slice(&[0, 0, 0, 24]);
        file.extend_from_slice(b"moov");
        file.extend_from_slice(&[0, 0, 0, 4]);
        file.extend_from_slice(b"trak");
        file.extend_from_slice(&[0; 8]);
        let dir = std::env::temp_dir().join(format!("vidcast-boxes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("loop.mp4");
        std::fs::write(&path, &file).expect("write");
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let err = Mp4Source::open(&path, clock.clone()).expect_err("refused");
        assert!(
            err.to_string().contains("trak box at byte 24 has size 4"),
            "{err}"
        );
        // A child running past its parent.
        file[27] = 40;
        std::fs::write(&path, &file).expect("write");
        let err = Mp4Source::open(&path, clock).expect_err("refused");
        assert!(err.to_string().contains("runs past its container"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn h264_mp4_plays_every_frame_at_the_track_rate() {
        let dir = std::env::temp_dir().join(format!("vidcast-mp4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("clip.mp4");
        write_test_mp4(&path, 96, 64, 20, 12).expect("writes");
        let clock = Arc::new(ManualClock::new(0));
        let Mp4Open::Native(mut s) = Mp4Source::open(&path, clock.clone()).expect("opens") else {
            panic!("plays natively");
        };
        assert_eq!((s.size(), s.fps()), ((96, 64), 20.0));
        let mut n = 0;
        while let Some(f) = s.next_frame().expect("decodes") {
            assert_eq!(
                (f.width, f.height, f.seq, f.capture_us),
                (96, 64, n, n * 50_000)
            );
            n += 1;
        }
        assert_eq!(n, 12);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn passthrough_hands_over_every_sample_as_a_decodable_access_unit() {
        let dir = std::env::temp_dir().join(format!("vidcast-mp4-pass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("clip.mp4");
        write_test_mp4(&path, 64, 48, 25, 12).expect("written");
        let Mp4Open::Native(mut s) =
            Mp4Source::open(&path, Arc::new(crate::ManualClock::new(0))).expect("opens")
        else {
            panic!("our own file plays natively");
        };
        s.pass_h264_through();
        assert!(s.describe().contains("without re-encoding"));
        let mut decoder = crate::H264Decoder::new().expect("decoder");
        let mut seqs = Vec::new();
        while let Some(captured) = s.next_captured().expect("reads") {
            let Captured::H264(unit) = captured else {
                panic!("not passed through: {captured:?}");
            };
            assert_eq!(unit.is_keyframe, seqs.is_empty(), "one keyframe, first");
            assert_eq!(unit.is_keyframe, vidcast_h264::is_keyframe(&unit.data));
            let picture = decoder
                .decode(&unit.data)
                .expect("decodes")
                .expect("a picture");
            assert_eq!((picture.width, picture.height), (64, 48));
            seqs.push(unit.seq);
        }
        assert_eq!(seqs, (0..12).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }
}
