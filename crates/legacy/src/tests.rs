//! Decoder tests: the case table (whole, split at every offset, byte by byte), hostile inputs
//! at full size, property tests, and the fuzz seeds.

use bytes::BytesMut;
use proptest::prelude::*;

use crate::cases::{self, Expected, CASE_MAX_FRAME_BYTES};
use crate::*;

fn decode_all(chunks: &[&[u8]], max: u32) -> (Vec<LegacyFrame>, Option<LegacyError>) {
    let mut decoder = LegacyDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    assert_eq!(decoder.consumed() + buf.len() as u64, {
        chunks.iter().map(|c| c.len() as u64).sum::<u64>()
    });
    (out, None)
}

fn check_case(case: &cases::LegacyCase, got: (Vec<LegacyFrame>, Option<LegacyError>), how: &str) {
    match &case.expected {
        Expected::Frames(want) => {
            assert_eq!(&got.0, want, "{} ({how})", case.name);
            assert_eq!(got.1, None, "{} ({how})", case.name);
        }
        Expected::Error(before, err) => {
            assert_eq!(&got.0, before, "{} ({how})", case.name);
            assert_eq!(got.1.as_ref(), Some(err), "{} ({how})", case.name);
        }
    }
}

#[test]
fn every_case_decodes_as_expected_whole() {
    for case in cases::all() {
        check_case(
            &case,
            decode_all(&[&case.bytes], CASE_MAX_FRAME_BYTES),
            "whole",
        );
    }
}

#[test]
fn every_case_decodes_the_same_split_at_every_offset() {
    for case in cases::all() {
        for at in 0..=case.bytes.len() {
            let (a, b) = case.bytes.split_at(at);
            check_case(
                &case,
                decode_all(&[a, b], CASE_MAX_FRAME_BYTES),
                &format!("split at {at}"),
            );
        }
    }
}

#[test]
fn every_case_decodes_the_same_byte_by_byte() {
    for case in cases::all() {
        let bytes: Vec<&[u8]> = case.bytes.chunks(1).collect();
        check_case(
            &case,
            decode_all(&bytes, CASE_MAX_FRAME_BYTES),
            "byte by byte",
        );
    }
}

#[test]
fn every_case_is_detected_as_legacy_or_refused() {
    for case in cases::all() {
        let d = detect(&case.bytes);
        if matches!(case.expected, Expected::Frames(_)) {
            assert_eq!(d, Detection::Legacy, "{}", case.name);
        } else {
            assert_ne!(d, Detection::Vidcast, "{}", case.name);
        }
    }
}

#[test]
fn every_error_names_a_byte_inside_the_stream() {
    for case in cases::all() {
        if let Expected::Error(_, e) = &case.expected {
            let text = e.to_string();
            assert!(text.contains("byte "), "{}: {text}", case.name);
        }
    }
}

#[test]
fn oversize_length_is_refused_from_the_prefix_alone() {
    let mut decoder = LegacyDecoder::new(1000);
    let mut buf = BytesMut::from(&1001u64.to_le_bytes()[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(LegacyError::TooLarge {
            offset: 0,
            len: 1001,
            max: 1000
        })
    );
    let mut decoder = LegacyDecoder::new(u32::MAX);
    let mut buf = BytesMut::from(&(1u64 << 63).to_le_bytes()[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(LegacyError::TooLarge { len, .. }) if len == 1 << 63
    ));
}

#[test]
fn forbidden_global_is_refused_before_the_rest_of_the_frame_arrives() {
    let head = b"\x80\x02cos\nsystem\n";
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&4000u64.to_le_bytes());
    buf.extend_from_slice(head);
    let mut decoder = LegacyDecoder::new(4096);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(LegacyError::ForbiddenGlobal {
            offset: 10,
            module: "os".into(),
            name: "system".into()
        })
    );
}

#[test]
fn decoder_reports_what_it_still_wants() {
    let bytes = encode_frame(3, 2, &cases::test_pattern(2, 3)).unwrap();
    let mut decoder = LegacyDecoder::new(4096);
    let mut buf = BytesMut::from(&bytes[..20]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.bytes_wanted(&buf), bytes.len() - 20);
    assert!(decoder.is_mid_frame(&buf));
    buf.extend_from_slice(&bytes[20..]);
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert!(!decoder.is_mid_frame(&buf));
    assert_eq!(decoder.last_frame_offset(), 0);
    assert_eq!(decoder.consumed(), bytes.len() as u64);
}

/// The brief's "100k MARKs / nested tuples" at full size: refused at the limit, early.
#[test]
fn deep_nesting_at_full_size_is_refused_at_the_limit() {
    for (filler, what) in [(b'(', "open MARKs"), (0x85, "tuple nesting")] {
        let mut pickle = b"\x80\x02)".to_vec();
        pickle.resize(100_000, filler);
        pickle.push(b'.');
        let bytes = crate::writer::with_len_prefix(&pickle);
        let (frames, err) = decode_all(&[&bytes], 1 << 20);
        assert!(frames.is_empty());
        match err {
            Some(LegacyError::Limit {
                what: w, offset, ..
            }) => {
                assert_eq!(w, what);
                assert!(offset < 20, "refused late, at {offset}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn encode_frame_refuses_a_buffer_of_the_wrong_size() {
    assert_eq!(
        encode_frame(2, 2, &[0; 11]),
        Err(EncodeError::Size {
            width: 2,
            height: 2,
            len: 11
        })
    );
    assert!(encode_frame(0, 0, &[]).is_err());
    assert!(encode_frame(1 << 31, 1, &[]).is_err());
}

fn decode_one(bytes: &[u8], max: u32) -> LegacyFrame {
    let (mut frames, err) = decode_all(&[bytes], max);
    assert_eq!(err, None);
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

#[test]
fn large_frames_round_trip_through_writer_and_reader() {
    // 286x380 is the original client's width-380 resize of 640x480; 1x21846 crosses the 64 KiB
    // pickle framing boundary.
    for (h, w) in [(286, 380), (480, 640), (1, 21846)] {
        let px = cases::test_pattern(h, w);
        let bytes = encode_frame(w, h, &px).unwrap();
        let f = decode_one(&bytes, 16 << 20);
        assert_eq!((f.width, f.height), (w, h));
        assert!(f.bgr == px, "{h}x{w} pixels differ");
    }
}

/// Every saved crash input and every seed, through the fuzz target's entry point.
#[test]
fn fuzz_regressions_and_seeds_replay_cleanly() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for dir in ["regressions", "seeds"] {
        for entry in std::fs::read_dir(fuzz.join(dir).join("legacy_decode")).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".keep") {
                continue;
            }
            crate::fuzzing::decode_stream(&std::fs::read(&path).unwrap(), 1 << 16);
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "replayed only {replayed} inputs");
}

/// The fuzz seeds in `fuzz/seeds/legacy_decode` are the case table's bytes; regenerate with
/// `VIDCAST_WRITE_SEEDS=1`.
#[test]
fn fuzz_seeds_match_the_case_table() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/legacy_decode");
    let write = std::env::var_os("VIDCAST_WRITE_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for case in cases::all() {
        let path = dir.join(case.name);
        if write {
            std::fs::write(&path, &case.bytes).unwrap();
        } else {
            let on_disk = std::fs::read(&path).unwrap_or_else(|_| {
                panic!("missing seed {path:?}: run VIDCAST_WRITE_SEEDS=1 cargo test -p vidcast-legacy fuzz_seeds")
            });
            assert_eq!(on_disk, case.bytes, "seed {path:?} is stale");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::decode_stream(&data, 1024);
        let _ = detect(&data);
    }

    #[test]
    fn arbitrary_pickle_bodies_never_panic(
        proto in 2u8..=5,
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut pickle = vec![0x80, proto];
        pickle.extend_from_slice(&body);
        fuzzing::decode_stream(&crate::writer::with_len_prefix(&pickle), 1024);
    }

    #[test]
    fn mutated_valid_pickles_never_panic(
        case in 0usize..10,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = cases::all().swap_remove(case).bytes;
        let i = at.index(bytes.len());
        bytes[i] = byte;
        fuzzing::decode_stream(&bytes, 4096);
    }

    #[test]
    fn encode_then_decode_round_trips_in_any_chunks(
        w in 1u32..40,
        h in 1u32..40,
        seed in any::<u8>(),
        chunk in 1usize..300,
    ) {
        let px: Vec<u8> = (0..(w * h * 3) as usize).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let bytes = encode_frame(w, h, &px).unwrap();
        let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
        let (frames, err) = decode_all(&chunks, 1 << 20);
        prop_assert_eq!(err, None);
        prop_assert_eq!(frames, vec![LegacyFrame { width: w, height: h, bgr: px }]);
    }
}

#[test]
fn a_frame_arriving_is_reported_with_its_offset_and_whole_length() {
    let mut decoder = LegacyDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&1000u64.to_le_bytes()[..4]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.receiving(&buf), None, "no length yet");
    buf.extend_from_slice(&[0, 0, 0, 0, 0x80, 0x04]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.receiving(&buf), Some((0, 1008)));
}
