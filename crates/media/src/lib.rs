//! `vidcast-media`: where pixels come from and how they are shrunk, compressed and labelled.
//!
//! - [`source`]: the [`VideoSource`] trait and the moving [`TestPattern`], which burns in
//!   its label, frame number and capture time (and a machine-readable frame-number strip,
//!   see [`read_frame_number`]); V4L2 cameras (MJPEG passed through), Y4M files and stdin,
//!   H.264 MP4 (OpenH264), other files through an `ffmpeg` child; [`source::open`] picks
//!   one from what the user typed.
//! - [`frame`]: [`RawFrame`] in its source's [`PixelFormat`] (I420 from files, cameras and
//!   H.264 decode, RGB8 from the test pattern and JPEG decode); the encoders take either.
//! - [`encode`] / [`decode`]: JPEG via pure-Rust `jpeg-encoder` and `zune-jpeg`.
//! - [`h264`]: H.264 constrained baseline encode/decode via OpenH264 (bundled source);
//!   [`simd`] says whether it was built with its assembly.
//! - [`scale`]: bilinear resizing via `fast_image_resize`.
//! - [`overlay`]: 8x8 bitmap text and rectangles on RGB8 or I420 frames.
//! - [`clock`]: time as an input ([`SystemClock`], [`ManualClock`] for tests).
//!
//! This crate is synchronous and does no networking: it must not depend on tokio or on any
//! other vidcast crate but `vidcast-h264` (bitstream syntax; dependencies point down: the hub
//! and client use it, not the other way; `crates/testkit/tests/crate_arrows.rs` checks). Blocking calls ([`VideoSource::next_frame`]) are meant for a dedicated thread.
//!
//! Measured on the test pattern (release, one core, AVX2;
//! `taskset -c 0 cargo run --release -p vidcast-media --example media_bench`, medians):
//!
//! | size      | render  | JPEG q80 encode | bytes  | decode  |
//! |-----------|---------|-----------------|--------|---------|
//! | 640x480   | 0.03 ms | 1.6 ms          | 18.8 K | 0.9 ms  |
//! | 1280x720  | 0.07 ms | 4.8 ms          | 46.7 K | 1.3 ms  |
//! | 1920x1080 | 0.16 ms | 10.8 ms         | 87.9 K | 2.9 ms  |
//!
//! H.264 vs JPEG q80 at 640x480@30 (`--example codec_bench`, one core): the clean pattern
//! takes 1/14 of JPEG's bytes at 44.5 dB (JPEG 37.7), encoding in 2.4 ms; with noise ±16,
//! 1/6.6 at 31.4 dB (JPEG 30.7), 4.5 ms.
//!
//! Each frame is a fresh multi-megabyte `Vec`. When glibc serves it with a new `mmap` (its
//! threshold adapts at run time), page faults add up to ~0.4 ms at 640x480 and ~1.3 ms at
//! 1280x720 to whoever first writes it (render, decode); raising `M_MMAP_THRESHOLD` /
//! `M_TRIM_THRESHOLD` in the binary removes that.

pub mod clock;
pub mod decode;
pub mod encode;
mod error;
pub mod frame;
pub mod h264;
mod mozjpeg;
pub mod overlay;
pub mod scale;
pub mod simd;
pub mod source;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decode::{decode_jpeg, decode_jpeg_bgr, DecodedImage};
pub use encode::{pad_jpeg, psnr, Encoder, JpegBackend, JpegEncoder};
pub use error::MediaError;
pub use frame::{chroma_size, Codec, EncodedFrame, PixelFormat, RawFrame};
pub use h264::{H264Config, H264Decoder, H264Encoder};
pub use scale::{fit_width, output_size, ResizeScaler, Scaler};
pub use simd::{h264_simd, H264Simd};
pub use source::yuv::Planes;
pub use source::{
    read_frame_number, Captured, OpenOptions, SourceSpec, TestPattern, TestPatternConfig,
    VideoSource,
};
