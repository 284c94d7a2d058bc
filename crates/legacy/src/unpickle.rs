//! A strict, resumable reader for the pickles numpy writes for a `uint8` array, and nothing else.
//!
//! It is not a pickle VM: values are a closed enum, "globals" are five known names compared as
//! strings, and REDUCE/BUILD are checked against the exact calls numpy's `__reduce_ex__` emits:
//!
//! - protocols 2–4 (and 5 for arrays that are not contiguous):
//!   `_reconstruct(ndarray, (0,), b'b')` then BUILD with `(1, shape, dtype, is_fortran, data)`;
//!   protocol 2 spells bytes as `_codecs.encode(str, 'latin1')`.
//! - protocol 5: `_frombuffer(buffer, dtype, shape, order)` with the buffer in-band
//!   (BYTEARRAY8, or bytes when the array was read-only).
//! - the dtype is `numpy.dtype('u1', False, True)`, optionally BUILD with `(3, '|', None, None,
//!   None, -1, -1, 0)`.
//!
//! Values hold byte ranges into the pickle, never copies, so the only allocation that grows
//! with the input is the final pixel buffer, whose size was checked against bytes present.
//! Every opcode reads all its operands before it changes any state, so when bytes are missing
//! the reader stops at that opcode and resumes there on the next call.

use std::ops::Range;

use crate::error::LegacyError;
use crate::opcode as op;

/// Stack entries (numpy's pickles need about 12).
pub(crate) const MAX_STACK: usize = 32;
/// Open MARKs (numpy's pickles nest 2).
pub(crate) const MAX_MARKS: usize = 4;
/// Memo slots, by index (numpy's pickles use about 21).
pub(crate) const MAX_MEMO: usize = 64;
/// Tuple nesting (numpy's pickles nest 2).
pub(crate) const MAX_DEPTH: usize = 4;
/// Values inside one tuple, counted through nested tuples (numpy's largest has 9).
pub(crate) const MAX_TUPLE_VALUES: usize = 32;
/// Bytes of one GLOBAL line (`numpy._core.multiarray` is 22).
pub(crate) const MAX_GLOBAL_LINE: usize = 64;

/// The callables numpy's pickles name. Anything else is refused at the GLOBAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    /// `numpy.core.multiarray._reconstruct` (numpy 1.x) / `numpy._core.multiarray._reconstruct` (2.x).
    Reconstruct,
    /// `numpy.ndarray`: only as `_reconstruct`'s first argument.
    NdArray,
    /// `numpy.dtype`.
    Dtype,
    /// `numpy.core.numeric._frombuffer` / `numpy._core.numeric._frombuffer` (protocol 5).
    FromBuffer,
    /// `_codecs.encode`: protocol 2's way to spell bytes.
    CodecsEncode,
}

impl Global {
    fn lookup(module: &str, name: &str) -> Option<Self> {
        match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Some(Self::Reconstruct)
            }
            ("numpy", "ndarray") => Some(Self::NdArray),
            ("numpy", "dtype") => Some(Self::Dtype),
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => Some(Self::FromBuffer),
            ("_codecs", "encode") => Some(Self::CodecsEncode),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Reconstruct => "numpy _reconstruct",
            Self::NdArray => "numpy.ndarray",
            Self::Dtype => "numpy.dtype",
            Self::FromBuffer => "numpy _frombuffer",
            Self::CodecsEncode => "_codecs.encode",
        }
    }
}

/// Where an array's bytes are in the pickle.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    /// Raw bytes (BINBYTES*, BYTEARRAY8).
    Raw(Range<usize>),
    /// UTF-8 text whose characters are all below 256, one byte each (protocol 2).
    Latin1(Range<usize>),
}

/// A checked `(height, width, 3)` uint8 array, still pointing into the pickle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) height: u32,
    pub(crate) width: u32,
    is_fortran: bool,
    data: Data,
}

impl Image {
    /// The pixels as packed `height x width x 3` bytes in C (row-major) order. Allocates
    /// exactly `height * width * 3` bytes, which the data already holds.
    pub(crate) fn pixels(&self, pickle: &[u8]) -> Vec<u8> {
        let (h, w) = (self.height as usize, self.width as usize);
        let n = h * w * 3;
        match (&self.data, self.is_fortran) {
            (Data::Raw(r), false) => pickle[r.clone()].to_vec(),
            (Data::Latin1(r), false) => {
                let mut out = Vec::with_capacity(n);
                out.extend(latin1_bytes(&pickle[r.clone()]));
                out
            }
            (Data::Raw(r), true) => from_fortran(pickle[r.clone()].iter().copied(), h, w),
            (Data::Latin1(r), true) => from_fortran(latin1_bytes(&pickle[r.clone()]), h, w),
        }
    }
}

/// Fortran order walks the first axis fastest: element (i, j, k) is at `i + h*(j + w*k)`.
fn from_fortran(mut src: impl Iterator<Item = u8>, h: usize, w: usize) -> Vec<u8> {
    let mut out = vec![0; h * w * 3];
    for k in 0..3 {
        for j in 0..w {
            for i in 0..h {
                out[(i * w + j) * 3 + k] = src.next().unwrap_or(0);
            }
        }
    }
    out
}

/// Decodes UTF-8 already checked by [`latin1_len`]: only 1-byte and 2-byte (lead 0xC2/0xC3)
/// sequences.
fn latin1_bytes(utf8: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut it = utf8.iter().copied();
    std::iter::from_fn(move || {
        let b = it.next()?;
        if b < 0x80 {
            Some(b)
        } else {
            let cont = it.next().unwrap_or(0x80);
            Some(((b & 0x1f) << 6) | (cont & 0x3f))
        }
    })
}

/// Number of characters if valid UTF-8 text has only characters below 256, else `None`.
fn latin1_len(utf8: &[u8]) -> Option<usize> {
    let mut n = 0;
    for &b in utf8 {
        match b {
            0x80..=0xbf => {}                    // continuation byte
            0x00..=0x7f | 0xc2 | 0xc3 => n += 1, // U+0000..U+00FF
            _ => return None,
        }
    }
    Some(n)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// UTF-8 checked text.
    Str(Range<usize>),
    /// bytes or bytearray.
    Bytes(Range<usize>),
    /// `_codecs.encode(text, 'latin1')`: `len` bytes.
    Latin1 {
        text: Range<usize>,
        len: usize,
    },
    Tuple(Vec<Value>),
    Global(Global),
    /// `numpy.dtype('u1', False, True)`; `has_state` once BUILD gave it its state.
    Dtype {
        has_state: bool,
    },
    /// `_reconstruct(ndarray, (0,), b'b')`: an empty array waiting for BUILD.
    EmptyArray,
    Array(Image),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Str(_) => "a str",
            Value::Bytes(_) | Value::Latin1 { .. } => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::Global(g) => g.name(),
            Value::Dtype { .. } => "a dtype",
            Value::EmptyArray | Value::Array(_) => "an array",
        }
    }

    /// (nesting depth, values counted through nested tuples).
    fn weight(&self) -> (usize, usize) {
        match self {
            Value::Tuple(items) => {
                let (depth, count) = items.iter().fold((0, 1), |(d, n), v| {
                    let (vd, vn) = v.weight();
                    (d.max(vd), n + vn)
                });
                (depth + 1, count)
            }
            _ => (0, 1),
        }
    }
}

/// Why a step stopped short of completing an opcode.
enum Halt {
    /// The opcode's bytes have not all arrived; nothing was changed.
    NeedMore,
    Bad(LegacyError),
}

impl From<LegacyError> for Halt {
    fn from(e: LegacyError) -> Self {
        Halt::Bad(e)
    }
}

/// Reads one opcode's bytes from the pickle received so far.
struct Cursor<'a> {
    /// The pickle's bytes received so far (never more than `len`).
    data: &'a [u8],
    /// The pickle's declared length.
    len: usize,
    pos: usize,
    /// Stream offset of the opcode being read.
    offset: u64,
}

impl<'a> Cursor<'a> {
    /// `n` bytes; a claim past the declared length is an error whatever has arrived.
    fn take(&mut self, n: u64, what: &'static str) -> Result<Range<usize>, Halt> {
        let left = (self.len - self.pos) as u64;
        if n > left {
            return Err(Halt::Bad(LegacyError::PastEnd {
                offset: self.offset,
                what,
                needed: n,
                available: left,
            }));
        }
        let end = self.pos + n as usize; // n <= left <= usize::MAX
        if end > self.data.len() {
            return Err(Halt::NeedMore);
        }
        let r = self.pos..end;
        self.pos = end;
        Ok(r)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Halt> {
        let r = self.take(N as u64, what)?;
        let mut a = [0; N];
        a.copy_from_slice(&self.data[r]);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Halt> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Halt> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, Halt> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A newline-terminated line of at most [`MAX_GLOBAL_LINE`] bytes (GLOBAL's operands).
    fn line(&mut self) -> Result<Range<usize>, Halt> {
        let window_end = self.len.min(self.pos + MAX_GLOBAL_LINE + 1);
        let seen = &self.data[self.pos..self.data.len().min(window_end)];
        match seen.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let r = self.pos..self.pos + i;
                self.pos += i + 1;
                Ok(r)
            }
            None if self.data.len() < window_end => Err(Halt::NeedMore),
            None if window_end == self.len => Err(Halt::Bad(LegacyError::PastEnd {
                offset: self.offset,
                what: "GLOBAL line",
                needed: (seen.len() + 1) as u64,
                available: seen.len() as u64,
            })),
            None => Err(Halt::Bad(LegacyError::Limit {
                offset: self.offset,
                what: "GLOBAL line length",
                limit: MAX_GLOBAL_LINE,
            })),
        }
    }

    fn text(&self, r: &Range<usize>) -> &'a [u8] {
        &self.data[r.clone()]
    }
}

/// Reads one pickle, resumably. Create one per frame; call [`Unpickler::run`] with the pickle's
/// bytes so far each time more arrive (always the same bytes, extended).
#[derive(Debug, Clone)]
pub(crate) struct Unpickler {
    /// Stream offset of the pickle's first byte.
    base: u64,
    /// Next opcode, relative to the pickle's start.
    pos: usize,
    protocol: Option<u8>,
    stack: Vec<Value>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
    /// Filled memo slots (MEMOIZE's next index, as in CPython).
    memo_len: usize,
}

impl Unpickler {
    pub(crate) fn new(base: u64) -> Self {
        Self {
            base,
            pos: 0,
            protocol: None,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Vec::new(),
            memo_len: 0,
        }
    }

    /// Runs opcodes over `data` (the first bytes of a pickle of `len` bytes). `Ok(None)`: more
    /// bytes are needed. `Ok(Some(image))`: STOP ended the pickle exactly at `len`.
    pub(crate) fn run(&mut self, data: &[u8], len: usize) -> Result<Option<Image>, LegacyError> {
        debug_assert!(data.len() <= len);
        loop {
            let mut c = Cursor {
                data,
                len,
                pos: self.pos,
                offset: self.base + self.pos as u64,
            };
            match self.step(&mut c) {
                Ok(None) => self.pos = c.pos,
                Ok(Some(image)) => {
                    if c.pos != len {
                        return Err(LegacyError::TrailingBytes {
                            offset: c.offset,
                            extra: (len - c.pos) as u64,
                        });
                    }
                    self.pos = c.pos;
                    return Ok(Some(image));
                }
                Err(Halt::NeedMore) => return Ok(None),
                Err(Halt::Bad(e)) => return Err(e),
            }
        }
    }

    fn err(&self, c: &Cursor, what: &'static str) -> Halt {
        Halt::Bad(LegacyError::Malformed {
            offset: c.offset,
            what,
        })
    }

    fn step(&mut self, c: &mut Cursor) -> Result<Option<Image>, Halt> {
        let opcode = c.u8("an opcode (the pickle has no STOP)")?;
        let Some(protocol) = self.protocol else {
            if opcode != op::PROTO {
                return Err(self.err(c, "a pickle from numpy starts with PROTO 2 to 5"));
            }
            let version = c.u8("PROTO's version")?;
            if !(2..=5).contains(&version) {
                return Err(Halt::Bad(LegacyError::UnsupportedProtocol {
                    offset: c.offset,
                    version,
                }));
            }
            self.protocol = Some(version);
            return Ok(None);
        };
        match opcode {
            op::FRAME if protocol >= 4 => {
                // Frames only hint at read sizes; the declared length must still fit.
                let n = c.u64("FRAME's length")?;
                let left = (c.len - c.pos) as u64;
                if n > left {
                    return Err(Halt::Bad(LegacyError::PastEnd {
                        offset: c.offset,
                        what: "FRAME",
                        needed: n,
                        available: left,
                    }));
                }
            }
            op::MARK => {
                if self.marks.len() >= MAX_MARKS {
                    return Err(self.limit(c, "open MARKs", MAX_MARKS));
                }
                self.marks.push(self.stack.len());
            }
            op::STOP => {
                if !self.marks.is_empty() || self.stack.len() != 1 {
                    return Err(self.err(c, "STOP with more than one value or an open MARK"));
                }
                return match self.stack.pop() {
                    Some(Value::Array(image)) => Ok(Some(image)),
                    _ => Err(self.err(c, "the pickle's result is not a numpy array")),
                };
            }
            op::NONE => self.push(c, Value::None)?,
            op::NEWTRUE => self.push(c, Value::Bool(true))?,
            op::NEWFALSE => self.push(c, Value::Bool(false))?,
            op::BININT1 => {
                let v = c.u8("BININT1's value")?;
                self.push(c, Value::Int(i64::from(v)))?;
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(c.array("BININT2's value")?);
                self.push(c, Value::Int(i64::from(v)))?;
            }
            op::BININT => {
                let v = i32::from_le_bytes(c.array("BININT's value")?);
                self.push(c, Value::Int(i64::from(v)))?;
            }
            op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => {
                let n = match opcode {
                    op::SHORT_BINUNICODE => u64::from(c.u8("SHORT_BINUNICODE's length")?),
                    op::BINUNICODE => u64::from(c.u32("BINUNICODE's length")?),
                    _ => c.u64("BINUNICODE8's length")?,
                };
                let r = c.take(n, "the string")?;
                if std::str::from_utf8(c.text(&r)).is_err() {
                    return Err(self.err(c, "string is not UTF-8"));
                }
                self.push(c, Value::Str(r))?;
            }
            op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = match opcode {
                    op::SHORT_BINBYTES => u64::from(c.u8("SHORT_BINBYTES's length")?),
                    op::BINBYTES => u64::from(c.u32("BINBYTES's length")?),
                    _ => c.u64("BINBYTES8's or BYTEARRAY8's length")?,
                };
                let r = c.take(n, "the bytes")?;
                self.push(c, Value::Bytes(r))?;
            }
            op::EMPTY_TUPLE => self.push(c, Value::Tuple(Vec::new()))?,
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(opcode - op::TUPLE1 + 1);
                if self.stack.len() < self.fence() + n {
                    return Err(self.err(c, "TUPLE1/2/3 with too few values on the stack"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push_tuple(c, items)?;
            }
            op::TUPLE => {
                let Some(mark) = self.marks.pop() else {
                    return Err(self.err(c, "TUPLE without MARK"));
                };
                let items = self.stack.split_off(mark);
                self.push_tuple(c, items)?;
            }
            op::BINPUT | op::LONG_BINPUT | op::MEMOIZE => {
                let index = match opcode {
                    op::BINPUT => usize::from(c.u8("BINPUT's index")?),
                    op::LONG_BINPUT => c.u32("LONG_BINPUT's index")? as usize,
                    _ => self.memo_len,
                };
                if index >= MAX_MEMO {
                    return Err(self.limit(c, "memo index", MAX_MEMO));
                }
                let Some(top) = self
                    .stack
                    .last()
                    .filter(|_| self.stack.len() > self.fence())
                else {
                    return Err(self.err(c, "memo put with nothing on the stack"));
                };
                let top = top.clone();
                if self.memo.len() <= index {
                    self.memo.resize(index + 1, None);
                }
                if self.memo[index].replace(top).is_none() {
                    self.memo_len += 1;
                }
            }
            op::BINGET | op::LONG_BINGET => {
                let index = if opcode == op::BINGET {
                    usize::from(c.u8("BINGET's index")?)
                } else {
                    c.u32("LONG_BINGET's index")? as usize
                };
                let Some(Some(v)) = self.memo.get(index) else {
                    return Err(self.err(c, "memo get of an empty slot"));
                };
                let v = v.clone();
                self.push(c, v)?;
            }
            op::GLOBAL => {
                let module = c.line()?;
                let name = c.line()?;
                let g = self.global(c, c.text(&module), c.text(&name))?;
                self.push(c, Value::Global(g))?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop(c)?;
                let module = self.pop(c)?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err(self.err(c, "STACK_GLOBAL of values that are not strings"));
                };
                let g = self.global(c, c.text(&module), c.text(&name))?;
                self.push(c, Value::Global(g))?;
            }
            op::REDUCE => {
                let args = self.pop(c)?;
                let callable = self.pop(c)?;
                let v = self.call(c, callable, args)?;
                self.push(c, v)?;
            }
            op::BUILD => {
                let state = self.pop(c)?;
                let target = self.pop(c)?;
                let v = self.build(c, target, state)?;
                self.push(c, v)?;
            }
            _ => {
                return Err(Halt::Bad(LegacyError::UnsupportedOpcode {
                    offset: c.offset,
                    opcode,
                }))
            }
        }
        Ok(None)
    }

    fn limit(&self, c: &Cursor, what: &'static str, limit: usize) -> Halt {
        Halt::Bad(LegacyError::Limit {
            offset: c.offset,
            what,
            limit,
        })
    }

    /// Values below the innermost MARK are out of reach, as in CPython.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, c: &Cursor, v: Value) -> Result<(), Halt> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.limit(c, "stack depth", MAX_STACK));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, c: &Cursor) -> Result<Value, Halt> {
        if self.stack.len() <= self.fence() {
            return Err(self.err(c, "stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err(c, "stack underflow"))
    }

    fn push_tuple(&mut self, c: &Cursor, items: Vec<Value>) -> Result<(), Halt> {
        let t = Value::Tuple(items);
        let (depth, count) = t.weight();
        if depth > MAX_DEPTH {
            return Err(self.limit(c, "tuple nesting", MAX_DEPTH));
        }
        if count > MAX_TUPLE_VALUES {
            return Err(self.limit(c, "values in a tuple", MAX_TUPLE_VALUES));
        }
        self.push(c, t)
    }

    fn global(&self, c: &Cursor, module: &[u8], name: &[u8]) -> Result<Global, Halt> {
        let module = String::from_utf8_lossy(module);
        let name = String::from_utf8_lossy(name);
        Global::lookup(&module, &name).ok_or_else(|| {
            Halt::Bad(LegacyError::ForbiddenGlobal {
                offset: c.offset,
                module: module.chars().take(64).collect(),
                name: name.chars().take(64).collect(),
            })
        })
    }

    /// REDUCE: only the calls numpy's pickles make, with the arguments they make them with.
    fn call(&self, c: &Cursor, callable: Value, args: Value) -> Result<Value, Halt> {
        let Value::Global(g) = callable else {
            return Err(Halt::Bad(LegacyError::ForbiddenCall {
                offset: c.offset,
                callable: callable.kind(),
                what: "not a callable",
            }));
        };
        let refuse = |what| {
            Halt::Bad(LegacyError::ForbiddenCall {
                offset: c.offset,
                callable: g.name(),
                what,
            })
        };
        let Value::Tuple(args) = args else {
            return Err(refuse("arguments are not a tuple"));
        };
        match g {
            Global::Reconstruct => match args.as_slice() {
                [Value::Global(Global::NdArray), Value::Tuple(shape), stub]
                    if shape.as_slice() == [Value::Int(0)] && self.is_b(c, stub) =>
                {
                    Ok(Value::EmptyArray)
                }
                _ => Err(refuse("arguments are not (numpy.ndarray, (0,), b'b')")),
            },
            Global::Dtype => match args.as_slice() {
                [Value::Str(s), Value::Bool(false), Value::Bool(true)] => {
                    let s = c.text(s);
                    if s != b"u1" {
                        return Err(Halt::Bad(LegacyError::UnsupportedDtype {
                            offset: c.offset,
                            dtype: String::from_utf8_lossy(s).chars().take(64).collect(),
                        }));
                    }
                    Ok(Value::Dtype { has_state: false })
                }
                _ => Err(refuse("arguments are not (str, False, True)")),
            },
            Global::CodecsEncode => match args.as_slice() {
                [Value::Str(text), Value::Str(encoding)] if c.text(encoding) == b"latin1" => {
                    let len = latin1_len(c.text(text))
                        .ok_or_else(|| refuse("a character above U+00FF is not latin1"))?;
                    Ok(Value::Latin1 {
                        text: text.clone(),
                        len,
                    })
                }
                _ => Err(refuse("arguments are not (str, 'latin1')")),
            },
            Global::FromBuffer => match args.as_slice() {
                [buffer, Value::Dtype { .. }, Value::Tuple(shape), Value::Str(order)] => {
                    let is_fortran = match c.text(order) {
                        b"C" => false,
                        b"F" => true,
                        _ => return Err(refuse("order is not 'C' or 'F'")),
                    };
                    let data = data_of(buffer).ok_or_else(|| refuse("buffer is not bytes"))?;
                    Ok(Value::Array(image(c, shape, is_fortran, data)?))
                }
                _ => Err(refuse("arguments are not (buffer, dtype, shape, order)")),
            },
            Global::NdArray => Err(refuse("only allowed as _reconstruct's first argument")),
        }
    }

    /// `b'b'`, as bytes (protocol 3+) or as `_codecs.encode('b', 'latin1')` (protocol 2).
    fn is_b(&self, c: &Cursor, v: &Value) -> bool {
        match v {
            Value::Bytes(r) | Value::Latin1 { text: r, .. } => c.text(r) == b"b",
            _ => false,
        }
    }

    /// BUILD: `ndarray.__setstate__` and `dtype.__setstate__` with numpy's own state tuples.
    fn build(&self, c: &Cursor, target: Value, state: Value) -> Result<Value, Halt> {
        let Value::Tuple(state) = state else {
            return Err(self.err(c, "BUILD state is not a tuple"));
        };
        match (target, state.as_slice()) {
            (
                Value::EmptyArray,
                [Value::Int(1), Value::Tuple(shape), Value::Dtype { .. }, Value::Bool(is_fortran), data],
            ) => {
                let data =
                    data_of(data).ok_or_else(|| self.err(c, "array state's data is not bytes"))?;
                Ok(Value::Array(image(c, shape, *is_fortran, data)?))
            }
            (Value::EmptyArray, _) => {
                Err(self.err(c, "array state is not (1, shape, dtype, is_fortran, data)"))
            }
            (
                Value::Dtype { has_state: false },
                [Value::Int(3), Value::Str(order), Value::None, Value::None, Value::None, Value::Int(-1), Value::Int(-1), Value::Int(0)],
            ) if c.text(order) == b"|" => Ok(Value::Dtype { has_state: true }),
            (Value::Dtype { .. }, _) => Err(self.err(
                c,
                "dtype state is not uint8's (3, '|', None, None, None, -1, -1, 0)",
            )),
            _ => Err(self.err(c, "BUILD of something other than an array or a dtype")),
        }
    }
}

fn data_of(v: &Value) -> Option<(Data, usize)> {
    match v {
        Value::Bytes(r) => Some((Data::Raw(r.clone()), r.len())),
        Value::Latin1 { text, len } => Some((Data::Latin1(text.clone()), *len)),
        _ => None,
    }
}

/// Checks a shape against the data: `(height, width, 3)`, non-zero, `height * width * 3` bytes.
fn image(
    c: &Cursor,
    shape: &[Value],
    is_fortran: bool,
    (data, len): (Data, usize),
) -> Result<Image, Halt> {
    let mut dims = Vec::with_capacity(shape.len());
    for v in shape {
        match v {
            Value::Int(d) if *d >= 0 => dims.push(*d as u64),
            _ => {
                return Err(Halt::Bad(LegacyError::Malformed {
                    offset: c.offset,
                    what: "array shape is not a tuple of non-negative ints",
                }))
            }
        }
    }
    let [h, w, 3] = dims[..] else {
        return Err(Halt::Bad(LegacyError::UnsupportedShape {
            offset: c.offset,
            shape: dims,
        }));
    };
    if h == 0 || w == 0 {
        return Err(Halt::Bad(LegacyError::UnsupportedShape {
            offset: c.offset,
            shape: dims,
        }));
    }
    // Each side came from a 32-bit int, so the product fits a u64.
    let expected = h * w * 3;
    if expected != len as u64 {
        return Err(Halt::Bad(LegacyError::ShapeMismatch {
            offset: c.offset,
            shape: dims,
            expected,
            actual: len as u64,
        }));
    }
    Ok(Image {
        height: h as u32,
        width: w as u32,
        is_fortran,
        data,
    })
}
