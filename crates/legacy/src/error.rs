//! Errors a legacy peer's bytes can cause. Each names the byte offset in the stream (counted
//! from the first byte the peer sent: frame lengths included) so it can be found in a capture.

use thiserror::Error;

use crate::opcode;

/// Why a legacy stream was refused. The connection closes; no other connection notices.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LegacyError {
    /// A frame's length prefix is above the limit; refused before any of it is buffered.
    #[error("legacy frame at byte {offset} declares {len} pickle bytes, limit is {max}")]
    TooLarge {
        /// Stream offset of the 8-byte length prefix.
        offset: u64,
        /// Declared pickle length.
        len: u64,
        /// The decoder's limit.
        max: u32,
    },
    /// The pickle asks for a protocol other than 2 to 5.
    #[error("pickle protocol {version} at byte {offset}: only protocols 2 to 5 are read")]
    UnsupportedProtocol {
        /// Stream offset of the PROTO opcode.
        offset: u64,
        /// The protocol byte.
        version: u8,
    },
    /// An opcode that numpy's array pickles never use (lists, dicts, objects, out-of-band
    /// buffers, persistent ids, ...).
    #[error(
        "pickle opcode 0x{opcode:02x} ({}) at byte {offset} is not used by numpy array pickles",
        opcode::name(*opcode)
    )]
    UnsupportedOpcode {
        /// Stream offset of the opcode.
        offset: u64,
        /// The opcode byte.
        opcode: u8,
    },
    /// A global other than the few numpy array pickles name (`os.system`, `builtins.eval`, ...).
    /// Nothing is imported or called: the name is only compared.
    #[error(
        "pickle global {}.{} at byte {offset} is not allowed",
        vidcast_proto::log_safe(module),
        vidcast_proto::log_safe(name)
    )]
    ForbiddenGlobal {
        /// Stream offset of the GLOBAL or STACK_GLOBAL opcode.
        offset: u64,
        /// Module, cut to 64 characters.
        module: String,
        /// Name, cut to 64 characters.
        name: String,
    },
    /// A REDUCE whose callable or arguments are not what numpy's pickles contain.
    #[error("pickle call of {callable} at byte {offset} refused: {what}")]
    ForbiddenCall {
        /// Stream offset of the REDUCE opcode.
        offset: u64,
        /// What was called (`numpy.ndarray`, `_codecs.encode`, "a str", ...).
        callable: &'static str,
        /// What is wrong with it.
        what: &'static str,
    },
    /// An opcode's operand runs past the end of the frame's declared pickle length (or the
    /// pickle ends without STOP).
    #[error(
        "pickle at byte {offset}: {what} needs {needed} bytes, the frame has {available} left"
    )]
    PastEnd {
        /// Stream offset of the opcode.
        offset: u64,
        /// Which operand.
        what: &'static str,
        /// Bytes the operand claims.
        needed: u64,
        /// Bytes left in the frame after the opcode.
        available: u64,
    },
    /// The reader's bounds on the stack, marks, memo or nesting were exceeded.
    #[error("pickle at byte {offset} exceeds the reader's limit on {what} ({limit})")]
    Limit {
        /// Stream offset of the opcode.
        offset: u64,
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: usize,
    },
    /// Opcodes in an order or with values numpy never produces.
    #[error("malformed pickle at byte {offset}: {what}")]
    Malformed {
        /// Stream offset of the opcode.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// An array whose dtype is not `uint8`.
    #[error("array at byte {offset} has dtype {dtype:?}; only uint8 ('u1') frames are read")]
    UnsupportedDtype {
        /// Stream offset of the REDUCE opcode that builds the dtype.
        offset: u64,
        /// The dtype string, cut to 64 characters.
        dtype: String,
    },
    /// An array that is not `(height, width, 3)` with non-zero sides (a grey 2-D frame, RGBA, ...).
    #[error("array at byte {offset} has shape {shape:?}; only (height, width, 3) frames are read")]
    UnsupportedShape {
        /// Stream offset of the opcode that builds the array.
        offset: u64,
        /// The shape.
        shape: Vec<u64>,
    },
    /// An array whose shape does not match its byte count.
    #[error(
        "array at byte {offset}: shape {shape:?} needs {expected} bytes, its data has {actual}"
    )]
    ShapeMismatch {
        /// Stream offset of the opcode that builds the array.
        offset: u64,
        /// The shape.
        shape: Vec<u64>,
        /// `height * width * 3`.
        expected: u64,
        /// Bytes in the data.
        actual: u64,
    },
    /// Bytes between the pickle's STOP and the end of its declared length.
    #[error("legacy frame: {extra} bytes after the pickle's STOP at byte {offset}")]
    TrailingBytes {
        /// Stream offset of the STOP opcode.
        offset: u64,
        /// Bytes left over.
        extra: u64,
    },
}

/// Why [`crate::encode_frame`] refused its input (a caller bug, not a peer's).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The buffer does not hold `width * height * 3` bytes, a side is zero, or a side does not
    /// fit the pickle's 32-bit integers.
    #[error("{len} bytes is not a {width}x{height} BGR frame")]
    Size {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
        /// Bytes given.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forbidden_global_cannot_forge_a_log_line() {
        let e = LegacyError::ForbiddenGlobal {
            offset: 7,
            module: "os\n2026-12-02 INFO admin".to_owned(),
            name: "sys\0tem\u{202e}".to_owned(),
        };
        let shown = e.to_string();
        assert!(!shown.contains(['\n', '\0', '\u{202e}']), "{shown}");
        assert!(
            shown.contains("os\\n2026") && shown.contains("sys\\0tem"),
            "{shown}"
        );
    }
}
