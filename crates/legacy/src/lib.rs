//! The original Python project's video stream, sans-IO: tell it apart, read it safely, write it.
//!
//! The original `client.py` sends, for every captured frame, `struct.pack("Q", len(p)) + p`
//! where `p = pickle.dumps(frame)` and `frame` is an OpenCV picture: a numpy `uint8` array of
//! shape `(height, width, 3)` in BGR order. There is no header, handshake or timestamp.
//!
//! - [`detect`] classifies a connection's first bytes (at most 10) as vidcast, legacy or
//!   neither, so one port can serve both.
//! - [`LegacyDecoder`] cuts the stream into [`LegacyFrame`]s. Its pickle reader is not a pickle
//!   VM: it understands only what numpy writes for such an array (protocols 2 to 5, numpy 1.x
//!   and 2.x module paths, C and Fortran order, `_reconstruct` + state and protocol 5's
//!   `_frombuffer`), compares global names against five allowed ones and never imports or
//!   calls anything. Everything else is refused with a [`LegacyError`] naming the byte offset.
//!   Lengths are checked against the bytes actually present and the frame limit before
//!   anything is allocated.
//! - [`encode_frame`] writes what the original client writes, for `vidcast send --legacy`.
//!
//! This crate must not depend on tokio, sockets, clocks, or the hub/client crates; it uses
//! `vidcast-proto` only for the magic. The byte layout and exactly what is accepted are in
//! `PROTOCOL.md` ("Legacy (original Python) stream").

mod detect;
mod error;
mod frame;
mod framing;
mod opcode;
mod unpickle;
mod writer;

pub mod cases;
pub mod fuzzing;

pub use detect::{detect, Detection, DETECT_MAX_BYTES};
pub use error::{EncodeError, LegacyError};
pub use frame::{swap_red_blue, LegacyFrame};
pub use framing::{LegacyDecoder, LEN_PREFIX};
pub use writer::encode_frame;

#[cfg(test)]
mod python_tests;
#[cfg(test)]
mod tests;
