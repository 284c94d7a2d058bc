//! Frames going out to viewers: the web port (`webport`, `http`) with the wall, MJPEG, the
//! JSON API and metrics; native viewers on the ingest port (`viewer`); RTSP players (`rtsp`);
//! and the H.264 → JPEG transcoders that run only while someone needs JPEG.

pub(crate) mod http;
pub(crate) mod listing;
pub(crate) mod metrics;
pub(crate) mod mjpeg;
pub(crate) mod rtsp;
pub(crate) mod transcode;
pub(crate) mod viewer;
pub(crate) mod viewers;
pub(crate) mod wall;
pub(crate) mod webport;
