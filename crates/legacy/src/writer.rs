//! Writing frames the way the original client does: `struct.pack("Q", len) + pickle.dumps(frame)`.
//!
//! [`encode_frame`] writes what numpy 1.x under Python 3.8–3.13 writes by default: protocol 4
//! with `numpy.core.multiarray._reconstruct`. Both numpy 1.x and numpy 2.x load that without a
//! warning (numpy 2 maps the old module path itself), whereas numpy 2's own `numpy._core` path
//! fails on numpy < 1.26 and protocol 5's `numpy.core.numeric._frombuffer` warns on numpy 2.
//!
//! The general [`pickle_array`] reproduces CPython's C pickler byte for byte for every protocol
//! and both numpy module paths, framing included (the Python tests compare them), so the test
//! table can hold exactly what real clients send.

use crate::error::EncodeError;
use crate::framing::LEN_PREFIX;
use crate::opcode as op;

/// CPython's `_FRAME_SIZE_TARGET`: frames close once they reach 64 KiB, and a bytes payload of
/// 64 KiB or more is written outside any frame.
const FRAME_SIZE_TARGET: usize = 64 * 1024;
/// FRAME opcode + u64 length.
const FRAME_HEADER: usize = 9;
/// CPython drops the header of a frame shorter than this (`FRAME_SIZE_MIN`).
const FRAME_SIZE_MIN: usize = 4;

/// One legacy frame, length prefix included, ready for the socket: what the original
/// `client.py` sends for a `height x width x 3` uint8 array holding `bgr` (packed, row-major).
pub fn encode_frame(width: u32, height: u32, bgr: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let size_err = || EncodeError::Size {
        width,
        height,
        len: bgr.len(),
    };
    let fits_int = |v: u32| v > 0 && i32::try_from(v).is_ok();
    if !fits_int(width) || !fits_int(height) {
        return Err(size_err());
    }
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3));
    if expected != Some(bgr.len()) {
        return Err(size_err());
    }
    Ok(with_len_prefix(&pickle_array(
        Flavor::ORIGINAL_CLIENT,
        &[height, width, 3],
        false,
        bgr,
    )))
}

/// `struct.pack("Q", len(pickle)) + pickle`.
pub(crate) fn with_len_prefix(pickle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN_PREFIX + pickle.len());
    out.extend_from_slice(&(pickle.len() as u64).to_le_bytes());
    out.extend_from_slice(pickle);
    out
}

/// Which `pickle.dumps(array, protocol)` to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flavor {
    /// Pickle protocol, 2 to 5.
    pub(crate) protocol: u8,
    /// numpy 2.x module paths (`numpy._core`) rather than 1.x (`numpy.core`).
    pub(crate) is_numpy2: bool,
    /// Protocol 5 only: the array was read-only, so its buffer is bytes, not a bytearray.
    pub(crate) is_readonly: bool,
}

impl Flavor {
    /// The original client on numpy 1.x and Python 3.8–3.13: `pickle.dumps(frame)`.
    pub(crate) const ORIGINAL_CLIENT: Flavor = Flavor {
        protocol: 4,
        is_numpy2: false,
        is_readonly: false,
    };
}

/// `pickle.dumps(a, protocol)` for a contiguous uint8 array `a` of `shape` whose memory (in
/// Fortran order when `is_fortran`) is `data`. `is_fortran` follows numpy: set only when the
/// array is Fortran- but not C-contiguous.
pub(crate) fn pickle_array(
    flavor: Flavor,
    shape: &[u32],
    is_fortran: bool,
    data: &[u8],
) -> Vec<u8> {
    let core = if flavor.is_numpy2 {
        "numpy._core"
    } else {
        "numpy.core"
    };
    let mut w = PickleWriter::new(flavor.protocol, data.len() * 2 + 256);
    w.start_object(); // the array
    if flavor.protocol >= 5 {
        // ndarray.__reduce_ex__(5): _frombuffer(PickleBuffer(a), dtype, shape, order)
        w.global(&format!("{core}.numeric"), "_frombuffer");
        w.start_object();
        w.write(&[op::MARK]);
        w.start_object();
        let header = [&[op::BYTEARRAY8][..], &(data.len() as u64).to_le_bytes()].concat();
        if flavor.is_readonly {
            w.bytes_payload(data);
        } else {
            w.payload(&header, data);
        }
        w.memoize();
        w.dtype_u1();
        w.shape(shape);
        w.str(if is_fortran { "F" } else { "C" });
        w.memoized(op::TUPLE);
        w.memoized(op::REDUCE);
    } else {
        // ndarray.__reduce__(): _reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, dtype,
        // is_fortran, data)
        w.global(&format!("{core}.multiarray"), "_reconstruct");
        w.start_object();
        w.global("numpy", "ndarray");
        w.start_object();
        w.int(0);
        w.memoized(op::TUPLE1);
        w.bytes(b"b");
        w.memoized(op::TUPLE3);
        w.memoized(op::REDUCE);
        w.start_object();
        w.write(&[op::MARK]);
        w.int(1);
        w.shape(shape);
        w.dtype_u1();
        w.bool(is_fortran);
        w.bytes(data);
        w.memoized(op::TUPLE);
        w.write(&[op::BUILD]);
    }
    w.finish()
}

/// Mirrors `_pickle.c`'s output buffer: memo numbering, and framing for protocol 4+.
struct PickleWriter {
    out: Vec<u8>,
    protocol: u8,
    /// Start of the open frame's 9-byte header, reserved when the frame opened.
    frame_start: Option<usize>,
    memo_len: u32,
    /// Memo slots of objects pickled once and then referenced (same Python object).
    memo_numpy: Option<u32>,
    memo_codecs_encode: Option<u32>,
    memo_latin1: Option<u32>,
}

impl PickleWriter {
    fn new(protocol: u8, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&[op::PROTO, protocol]);
        Self {
            out,
            protocol,
            frame_start: None,
            memo_len: 0,
            memo_numpy: None,
            memo_codecs_encode: None,
            memo_latin1: None,
        }
    }

    fn is_framing(&self) -> bool {
        self.protocol >= 4
    }

    /// Framed write: opens a frame if none is open.
    fn write(&mut self, bytes: &[u8]) {
        if self.is_framing() && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0; FRAME_HEADER]);
        }
        self.out.extend_from_slice(bytes);
    }

    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let len = self.out.len() - start - FRAME_HEADER;
        if len >= FRAME_SIZE_MIN {
            self.out[start] = op::FRAME;
            self.out[start + 1..start + FRAME_HEADER].copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER);
        }
    }

    /// CPython closes a frame of 64 KiB or more when it starts saving the next object.
    fn start_object(&mut self) {
        if let Some(start) = self.frame_start {
            if self.out.len() - start - FRAME_HEADER >= FRAME_SIZE_TARGET {
                self.commit_frame();
            }
        }
    }

    /// A bytes-like payload: 64 KiB or more goes outside any frame, header included.
    fn payload(&mut self, header: &[u8], data: &[u8]) {
        if self.is_framing() && data.len() >= FRAME_SIZE_TARGET {
            self.commit_frame();
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(data);
        } else {
            self.write(header);
            self.write(data);
        }
    }

    /// An opcode that builds an object, then the object memoized.
    fn memoized(&mut self, opcode: u8) {
        self.write(&[opcode]);
        self.memoize();
    }

    fn memoize(&mut self) -> u32 {
        let index = self.memo_len;
        if self.protocol >= 4 {
            self.write(&[op::MEMOIZE]);
        } else if let Ok(i) = u8::try_from(index) {
            self.write(&[op::BINPUT, i]);
        } else {
            self.write(&[&[op::LONG_BINPUT][..], &index.to_le_bytes()].concat());
        }
        self.memo_len += 1;
        index
    }

    fn get(&mut self, index: u32) {
        match u8::try_from(index) {
            Ok(i) => self.write(&[op::BINGET, i]),
            Err(_) => self.write(&[&[op::LONG_BINGET][..], &index.to_le_bytes()].concat()),
        }
    }

    fn int(&mut self, v: i32) {
        self.start_object();
        match (u8::try_from(v), u16::try_from(v)) {
            (Ok(b), _) => self.write(&[op::BININT1, b]),
            (_, Ok(s)) => self.write(&[&[op::BININT2][..], &s.to_le_bytes()].concat()),
            _ => self.write(&[&[op::BININT][..], &v.to_le_bytes()].concat()),
        }
    }

    fn bool(&mut self, b: bool) {
        self.start_object();
        self.write(&[if b { op::NEWTRUE } else { op::NEWFALSE }]);
    }

    fn none(&mut self) {
        self.start_object();
        self.write(&[op::NONE]);
    }

    fn str(&mut self, s: &str) -> u32 {
        self.start_object();
        self.str_payload(s.as_bytes())
    }

    /// A str from its UTF-8 bytes, then memoized (the caller started the object).
    fn str_payload(&mut self, utf8: &[u8]) -> u32 {
        let header = match u8::try_from(utf8.len()) {
            Ok(n) if self.protocol >= 4 => vec![op::SHORT_BINUNICODE, n],
            _ => [&[op::BINUNICODE][..], &(utf8.len() as u32).to_le_bytes()].concat(),
        };
        self.payload(&header, utf8);
        self.memoize()
    }

    /// A str that is one Python object wherever it appears (`'numpy'`, `'latin1'`).
    fn shared_str(&mut self, s: &str, slot: fn(&mut Self) -> &mut Option<u32>) {
        self.start_object();
        match *slot(self) {
            Some(i) => self.get(i),
            None => {
                let i = self.str_payload(s.as_bytes());
                *slot(self) = Some(i);
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.start_object();
        if self.protocol >= 4 {
            if module == "numpy" {
                self.shared_str(module, |w| &mut w.memo_numpy);
            } else {
                self.str(module);
            }
            self.str(name);
            self.write(&[op::STACK_GLOBAL]);
        } else {
            self.write(format!("c{module}\n{name}\n").as_bytes());
        }
        self.memoize();
    }

    /// A bytes object: protocol 3+ writes it; protocol 2 writes `_codecs.encode(s, 'latin1')`.
    fn bytes(&mut self, data: &[u8]) {
        self.start_object();
        if self.protocol >= 3 {
            self.bytes_payload(data);
            self.memoize();
            return;
        }
        match self.memo_codecs_encode {
            Some(i) => {
                self.start_object();
                self.get(i);
            }
            None => {
                self.global("_codecs", "encode");
                self.memo_codecs_encode = Some(self.memo_len - 1);
            }
        }
        self.start_object(); // the argument tuple
        self.start_object();
        let mut utf8 = Vec::with_capacity(data.len() * 2);
        for &b in data {
            if b < 0x80 {
                utf8.push(b);
            } else {
                utf8.extend_from_slice(&[0xc0 | (b >> 6), 0x80 | (b & 0x3f)]);
            }
        }
        self.str_payload(&utf8);
        self.shared_str("latin1", |w| &mut w.memo_latin1);
        self.memoized(op::TUPLE2);
        self.memoized(op::REDUCE);
    }

    /// SHORT_BINBYTES / BINBYTES / BINBYTES8 and the payload, not memoized.
    fn bytes_payload(&mut self, data: &[u8]) {
        let header = match (u8::try_from(data.len()), u32::try_from(data.len())) {
            (Ok(n), _) => vec![op::SHORT_BINBYTES, n],
            (_, Ok(n)) => [&[op::BINBYTES][..], &n.to_le_bytes()].concat(),
            _ => [&[op::BINBYTES8][..], &(data.len() as u64).to_le_bytes()].concat(),
        };
        self.payload(&header, data);
    }

    fn shape(&mut self, shape: &[u32]) {
        self.start_object();
        if shape.is_empty() {
            self.write(&[op::EMPTY_TUPLE]); // not memoized, as in CPython
            return;
        }
        let is_short = shape.len() <= 3;
        if !is_short {
            self.write(&[op::MARK]);
        }
        for &d in shape {
            self.int(i32::try_from(d).unwrap_or(i32::MAX));
        }
        if is_short {
            self.write(&[op::TUPLE1 + shape.len() as u8 - 1]);
        } else {
            self.write(&[op::TUPLE]);
        }
        self.memoize();
    }

    /// `numpy.dtype('u1')`: REDUCE `dtype('u1', False, True)`, BUILD its state.
    fn dtype_u1(&mut self) {
        self.start_object();
        self.global("numpy", "dtype");
        self.start_object();
        self.str("u1");
        self.bool(false);
        self.bool(true);
        self.memoized(op::TUPLE3);
        self.memoized(op::REDUCE);
        self.start_object();
        self.write(&[op::MARK]);
        self.int(3);
        self.str("|");
        self.none();
        self.none();
        self.none();
        self.int(-1);
        self.int(-1);
        self.int(0);
        self.memoized(op::TUPLE);
        self.write(&[op::BUILD]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.write(&[op::STOP]);
        self.commit_frame();
        self.out
    }
}
