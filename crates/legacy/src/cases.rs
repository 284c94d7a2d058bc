//! One table of legacy streams that drives the decode tests (whole and split at every offset),
//! the allocation test and the fuzz seeds.
//!
//! Valid cases are written by the same code as [`crate::encode_frame`], which the Python tests
//! check byte for byte against `pickle.dumps` under numpy 1.x and 2.x. Hostile cases are
//! spelled opcode by opcode.

use crate::error::LegacyError;
use crate::frame::LegacyFrame;
use crate::writer::{pickle_array, with_len_prefix, Flavor};

/// The frame limit the table is decoded with.
pub const CASE_MAX_FRAME_BYTES: u32 = 4096;

/// What decoding a case's bytes must give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// These frames, in order, and nothing left over.
    Frames(Vec<LegacyFrame>),
    /// These frames, then this error.
    Error(Vec<LegacyFrame>, LegacyError),
}

/// A named legacy byte stream (length prefixes included) and what it decodes to.
#[derive(Debug, Clone)]
pub struct LegacyCase {
    /// Short name for test output and seed file names.
    pub name: &'static str,
    /// The stream.
    pub bytes: Vec<u8>,
    /// The outcome.
    pub expected: Expected,
}

/// The pixels the tests use for a `height x width x 3` frame, packed in C order:
/// byte `n` is `(7n + n / 251) mod 256` (the Python helper computes the same).
pub fn test_pattern(height: u32, width: u32) -> Vec<u8> {
    let n = height as usize * width as usize * 3;
    (0..n).map(|i| ((i * 7 + i / 251) % 256) as u8).collect()
}

/// The same pixels in Fortran order (first axis fastest), as `np.asfortranarray` holds them.
pub fn to_fortran(c_order: &[u8], height: u32, width: u32) -> Vec<u8> {
    let (h, w) = (height as usize, width as usize);
    let mut out = Vec::with_capacity(c_order.len());
    for k in 0..3 {
        for j in 0..w {
            for i in 0..h {
                out.push(c_order[(i * w + j) * 3 + k]);
            }
        }
    }
    out
}

/// The test pattern as a frame.
pub fn pattern_frame(height: u32, width: u32) -> LegacyFrame {
    LegacyFrame {
        width,
        height,
        bgr: test_pattern(height, width),
    }
}

fn flavor(protocol: u8, is_numpy2: bool) -> Flavor {
    Flavor {
        protocol,
        is_numpy2,
        is_readonly: false,
    }
}

/// `pickle.dumps` of the test pattern, without the length prefix.
fn pattern_pickle(flavor: Flavor, height: u32, width: u32, is_fortran: bool) -> Vec<u8> {
    let c = test_pattern(height, width);
    // numpy calls an array Fortran-ordered only if it is not also C-ordered.
    let is_fortran = is_fortran && (height > 1 || width > 1);
    let data = if is_fortran {
        to_fortran(&c, height, width)
    } else {
        c
    };
    pickle_array(flavor, &[height, width, 3], is_fortran, &data)
}

fn pickle_with_shape(protocol: u8, shape: &[u32], data_len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..data_len).map(|i| i as u8).collect();
    with_len_prefix(&pickle_array(flavor(protocol, true), shape, false, &data))
}

/// Replaces the only occurrence of `from` in `bytes`; returns its index.
fn replace_once(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let found: Vec<usize> = (0..=bytes.len() - from.len())
        .filter(|&i| bytes[i..].starts_with(from))
        .collect();
    assert_eq!(found.len(), 1, "{from:?} must occur once");
    bytes[found[0]..found[0] + to.len()].copy_from_slice(to);
    found[0]
}

fn position(bytes: &[u8], pattern: &[u8]) -> u64 {
    (0..bytes.len())
        .find(|&i| bytes[i..].starts_with(pattern))
        .expect("pattern present") as u64
}

fn malformed(offset: u64, what: &'static str) -> LegacyError {
    LegacyError::Malformed { offset, what }
}

/// All cases.
pub fn all() -> Vec<LegacyCase> {
    let valid = |name, bytes: Vec<u8>, frames: Vec<LegacyFrame>| LegacyCase {
        name,
        bytes,
        expected: Expected::Frames(frames),
    };
    let one = |name, flavor, h, w, is_fortran| {
        valid(
            name,
            with_len_prefix(&pattern_pickle(flavor, h, w, is_fortran)),
            vec![pattern_frame(h, w)],
        )
    };
    let readonly = Flavor {
        is_readonly: true,
        ..flavor(5, true)
    };
    let mut cases = vec![
        valid(
            "original_client_numpy1_p4_2x3",
            crate::encode_frame(3, 2, &test_pattern(2, 3)).expect("valid size"),
            vec![pattern_frame(2, 3)],
        ),
        one("numpy2_p2_2x3", flavor(2, true), 2, 3, false),
        one("numpy1_p2_2x3_fortran", flavor(2, false), 2, 3, true),
        one("numpy2_p3_1x1", flavor(3, true), 1, 1, false),
        one("numpy1_p3_3x2_fortran", flavor(3, false), 3, 2, true),
        one("numpy2_p4_2x3_fortran", flavor(4, true), 2, 3, true),
        one("numpy2_p5_2x3", flavor(5, true), 2, 3, false),
        one("numpy1_p5_2x3_fortran", flavor(5, false), 2, 3, true),
        one("numpy2_p5_readonly_3x2", readonly, 3, 2, false),
        valid(
            "two_frames_p4_then_p5",
            [
                with_len_prefix(&pattern_pickle(flavor(4, false), 1, 1, false)),
                with_len_prefix(&pattern_pickle(flavor(5, true), 2, 3, false)),
            ]
            .concat(),
            vec![pattern_frame(1, 1), pattern_frame(2, 3)],
        ),
    ];

    let err = |name, bytes, before: Vec<LegacyFrame>, e| LegacyCase {
        name,
        bytes,
        expected: Expected::Error(before, e),
    };
    // A legacy frame around a hand-written pickle.
    let framed = |pickle: &[u8]| with_len_prefix(pickle);
    let first = with_len_prefix(&pattern_pickle(flavor(4, true), 1, 1, false));
    cases.extend([
        err(
            "length_over_limit",
            (u64::from(CASE_MAX_FRAME_BYTES) + 1).to_le_bytes().to_vec(),
            vec![],
            LegacyError::TooLarge {
                offset: 0,
                len: 4097,
                max: CASE_MAX_FRAME_BYTES,
            },
        ),
        err(
            "length_2_pow_63_after_a_frame",
            [&first[..], &(1u64 << 63).to_le_bytes()].concat(),
            vec![pattern_frame(1, 1)],
            LegacyError::TooLarge {
                offset: first.len() as u64,
                len: 1 << 63,
                max: CASE_MAX_FRAME_BYTES,
            },
        ),
        err(
            "not_a_pickle",
            framed(b"GET / HTTP/1.1\r\n"),
            vec![],
            malformed(8, "a pickle from numpy starts with PROTO 2 to 5"),
        ),
        err(
            "protocol_1",
            framed(b"\x80\x01N."),
            vec![],
            LegacyError::UnsupportedProtocol {
                offset: 8,
                version: 1,
            },
        ),
        err(
            "protocol_6",
            framed(b"\x80\x06N."),
            vec![],
            LegacyError::UnsupportedProtocol {
                offset: 8,
                version: 6,
            },
        ),
        err(
            // pickle.dumps of an object whose __reduce__ returns (os.system, ('id',)), protocol 2.
            "global_os_system",
            framed(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."),
            vec![],
            LegacyError::ForbiddenGlobal {
                offset: 10,
                module: "os".into(),
                name: "system".into(),
            },
        ),
        err(
            // The same with builtins.eval, protocol 4.
            "stack_global_builtins_eval",
            framed(b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94."),
            vec![],
            LegacyError::ForbiddenGlobal {
                offset: 8 + 2 + 9 + 11 + 7,
                module: "builtins".into(),
                name: "eval".into(),
            },
        ),
        err(
            "reduce_ndarray",
            framed(b"\x80\x02cnumpy\nndarray\nK\x01\x85R."),
            vec![],
            LegacyError::ForbiddenCall {
                offset: 8 + 2 + 15 + 3,
                callable: "numpy.ndarray",
                what: "only allowed as _reconstruct's first argument",
            },
        ),
        err(
            "reduce_of_a_str",
            framed(b"\x80\x04\x8c\x01x)R."),
            vec![],
            LegacyError::ForbiddenCall {
                offset: 8 + 2 + 3 + 1,
                callable: "a str",
                what: "not a callable",
            },
        ),
        err(
            "codecs_encode_rot13",
            framed(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."),
            vec![],
            LegacyError::ForbiddenCall {
                offset: 8 + 2 + 16 + 6 + 10 + 1,
                callable: "_codecs.encode",
                what: "arguments are not (str, 'latin1')",
            },
        ),
        err(
            "codecs_encode_above_latin1",
            framed(b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x81X\x06\x00\x00\x00latin1\x86R."),
            vec![],
            LegacyError::ForbiddenCall {
                offset: 8 + 2 + 16 + 7 + 11 + 1,
                callable: "_codecs.encode",
                what: "a character above U+00FF is not latin1",
            },
        ),
        err(
            "reconstruct_wrong_stub",
            framed(b"\x80\x03cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01x\x87R."),
            vec![],
            LegacyError::ForbiddenCall {
                offset: 8 + 2 + 37 + 15 + 2 + 1 + 3 + 1,
                callable: "numpy _reconstruct",
                what: "arguments are not (numpy.ndarray, (0,), b'b')",
            },
        ),
        {
            let mut b = with_len_prefix(&pattern_pickle(flavor(4, true), 2, 3, false));
            let at = replace_once(&mut b, b"\x8c\x02u1", b"\x8c\x02f8");
            // u1 MEMOIZE NEWFALSE NEWTRUE TUPLE3 MEMOIZE, then REDUCE.
            err(
                "dtype_float64",
                b,
                vec![],
                LegacyError::UnsupportedDtype {
                    offset: at as u64 + 4 + 5,
                    dtype: "f8".into(),
                },
            )
        },
        {
            let mut b = with_len_prefix(&pattern_pickle(flavor(3, false), 2, 3, false));
            replace_once(&mut b, b"X\x01\x00\x00\x00|", b"X\x01\x00\x00\x00>");
            // X'>' BINPUT NONE*3 BININT*2 BININT1 TUPLE BINPUT (26 bytes), then BUILD.
            let build = position(&b, b"X\x01\x00\x00\x00>") + 26;
            err(
                "dtype_state_big_endian",
                b,
                vec![],
                malformed(build, "dtype state is not uint8's (3, '|', None, None, None, -1, -1, 0)"),
            )
        },
        {
            let mut b = with_len_prefix(&pattern_pickle(flavor(3, true), 2, 3, false));
            replace_once(&mut b, b"(K\x01K\x02K\x03K\x03\x87", b"(K\x02K\x02K\x03K\x03\x87");
            err(
                "setstate_version_2",
                b.clone(),
                vec![],
                malformed(b.len() as u64 - 2, "array state is not (1, shape, dtype, is_fortran, data)"),
            )
        },
        {
            let b = pickle_with_shape(3, &[3, 3, 3], 18);
            err(
                "shape_does_not_match_bytes",
                b.clone(),
                vec![],
                LegacyError::ShapeMismatch {
                    offset: b.len() as u64 - 2,
                    shape: vec![3, 3, 3],
                    expected: 27,
                    actual: 18,
                },
            )
        },
        {
            let b = pickle_with_shape(2, &[2, 3], 6);
            err(
                "grey_2d_refused",
                b.clone(),
                vec![],
                LegacyError::UnsupportedShape {
                    offset: b.len() as u64 - 2,
                    shape: vec![2, 3],
                },
            )
        },
        {
            let b = pickle_with_shape(5, &[1, 2, 4], 8);
            err(
                "rgba_refused",
                b.clone(),
                vec![],
                LegacyError::UnsupportedShape {
                    offset: b.len() as u64 - 3,
                    shape: vec![1, 2, 4],
                },
            )
        },
        {
            let b = pickle_with_shape(4, &[0, 0, 3], 0);
            err(
                "empty_frame_refused",
                b.clone(),
                vec![],
                LegacyError::UnsupportedShape {
                    offset: b.len() as u64 - 2,
                    shape: vec![0, 0, 3],
                },
            )
        },
        {
            let mut p = pattern_pickle(flavor(3, true), 1, 1, false);
            p.push(b'.');
            err(
                "bytes_after_stop",
                with_len_prefix(&p),
                vec![],
                LegacyError::TrailingBytes {
                    offset: 8 + p.len() as u64 - 2,
                    extra: 1,
                },
            )
        },
        {
            let mut p = pattern_pickle(flavor(3, true), 1, 1, false);
            p.pop();
            err(
                "no_stop",
                with_len_prefix(&p),
                vec![],
                LegacyError::PastEnd {
                    offset: 8 + p.len() as u64,
                    what: "an opcode (the pickle has no STOP)",
                    needed: 1,
                    available: 0,
                },
            )
        },
        err(
            "binbytes_past_end",
            framed(b"\x80\x03B\xe8\x03\x00\x00abc"),
            vec![],
            LegacyError::PastEnd {
                offset: 10,
                what: "the bytes",
                needed: 1000,
                available: 3,
            },
        ),
        err(
            "binbytes8_claims_4_gib",
            framed(b"\x80\x04\x8e\x00\x00\x00\x00\x01\x00\x00\x00abc"),
            vec![],
            LegacyError::PastEnd {
                offset: 10,
                what: "the bytes",
                needed: 1 << 32,
                available: 3,
            },
        ),
        err(
            "bytearray8_claims_u64_max",
            framed(b"\x80\x05\x96\xff\xff\xff\xff\xff\xff\xff\xff"),
            vec![],
            LegacyError::PastEnd {
                offset: 10,
                what: "the bytes",
                needed: u64::MAX,
                available: 0,
            },
        ),
        err(
            "binunicode8_claims_4_gib",
            framed(b"\x80\x04\x8d\x00\x00\x00\x00\x01\x00\x00\x00"),
            vec![],
            LegacyError::PastEnd {
                offset: 10,
                what: "the string",
                needed: 1 << 32,
                available: 0,
            },
        ),
        err(
            "frame_opcode_past_end",
            framed(b"\x80\x04\x95\x00\x10\x00\x00\x00\x00\x00\x00N."),
            vec![],
            LegacyError::PastEnd {
                offset: 10,
                what: "FRAME",
                needed: 4096,
                available: 2,
            },
        ),
        err(
            "binunicode_not_utf8",
            framed(b"\x80\x02X\x02\x00\x00\x00\xff\xfe."),
            vec![],
            malformed(10, "string is not UTF-8"),
        ),
        err(
            "marks_1000",
            framed(&[&b"\x80\x02"[..], &[b'('; 1000]].concat()),
            vec![],
            LegacyError::Limit {
                offset: 8 + 2 + 4,
                what: "open MARKs",
                limit: 4,
            },
        ),
        err(
            "nested_tuples_1000",
            framed(&[&b"\x80\x02)"[..], &[0x85; 1000]].concat()),
            vec![],
            LegacyError::Limit {
                offset: 8 + 3 + 3,
                what: "tuple nesting",
                limit: 4,
            },
        ),
        err(
            "stack_of_1000_nones",
            framed(&[&b"\x80\x02"[..], &[b'N'; 1000]].concat()),
            vec![],
            LegacyError::Limit {
                offset: 8 + 2 + 32,
                what: "stack depth",
                limit: 32,
            },
        ),
        err(
            // A 21-value tuple memoized, then a tuple of it twice: copying memo entries cannot
            // multiply a small pickle into a large tree.
            "tuple_of_43_values",
            framed(&[&b"\x80\x02("[..], &[b'N'; 20], b"tq\x00(h\x00h\x00t."].concat()),
            vec![],
            LegacyError::Limit {
                offset: 8 + 31,
                what: "values in a tuple",
                limit: 32,
            },
        ),
        err(
            "memo_index_4_billion",
            framed(b"\x80\x02Nr\xff\xff\xff\xff"),
            vec![],
            LegacyError::Limit {
                offset: 11,
                what: "memo index",
                limit: 64,
            },
        ),
        err(
            "memo_get_empty_slot",
            framed(b"\x80\x02h\x05."),
            vec![],
            malformed(10, "memo get of an empty slot"),
        ),
        err(
            "tuple2_underflow",
            framed(b"\x80\x02N\x86."),
            vec![],
            malformed(11, "TUPLE1/2/3 with too few values on the stack"),
        ),
        err(
            "reduce_reaches_below_mark",
            framed(b"\x80\x02cnumpy\ndtype\n(N\x85R."),
            vec![],
            malformed(8 + 2 + 13 + 3, "stack underflow"),
        ),
        err(
            "empty_list",
            framed(b"\x80\x02]."),
            vec![],
            LegacyError::UnsupportedOpcode {
                offset: 10,
                opcode: b']',
            },
        ),
        err(
            "persistent_id",
            framed(b"\x80\x02X\x01\x00\x00\x00xQ."),
            vec![],
            LegacyError::UnsupportedOpcode {
                offset: 16,
                opcode: b'Q',
            },
        ),
        err(
            "inst",
            framed(b"\x80\x02(ios\nsystem\n."),
            vec![],
            LegacyError::UnsupportedOpcode {
                offset: 11,
                opcode: b'i',
            },
        ),
        err(
            "out_of_band_buffer",
            framed(b"\x80\x05\x97."),
            vec![],
            LegacyError::UnsupportedOpcode {
                offset: 10,
                opcode: 0x97,
            },
        ),
        err(
            "frame_in_protocol_2",
            framed(b"\x80\x02\x95\x01\x00\x00\x00\x00\x00\x00\x00N."),
            vec![],
            LegacyError::UnsupportedOpcode {
                offset: 10,
                opcode: 0x95,
            },
        ),
        err(
            "global_line_too_long",
            framed(&[&b"\x80\x02c"[..], &[b'a'; 100], b"\nb\n."].concat()),
            vec![],
            LegacyError::Limit {
                offset: 10,
                what: "GLOBAL line length",
                limit: 64,
            },
        ),
        err(
            "result_is_not_an_array",
            framed(b"\x80\x02N."),
            vec![],
            malformed(11, "the pickle's result is not a numpy array"),
        ),
    ]);
    cases
}
