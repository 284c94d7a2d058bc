//! H.264 through a real hub on 127.0.0.1: a late viewer starts at a keyframe the hub asked
//! the publisher for, and a slow viewer, skipped frames by latest-frame-wins, never gets a
//! frame whose reference it missed (every frame it gets decodes); `.mjpg` transcodes.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use vidcast_hub::HubOptions;
use vidcast_media::{read_frame_number, H264Decoder};
use vidcast_proto::{Decoder, FrameAck, Message, Role, MAGIC, MAX_FRAME_BYTES};
use vidcast_testkit::{api_streams, h264_publisher, start_hub, RawPeer};

/// A viewer speaking bytes by hand: magic and hello sent.
async fn raw_viewer(hub: std::net::SocketAddr) -> RawPeer {
    let mut peer = RawPeer::connect(hub).await;
    let mut hello = vidcast_testkit::hello("viewer", 0, 0);
    hello.role = Role::Viewer;
    let mut buf = BytesMut::from(&MAGIC[..]);
    Message::Hello(hello).encode(&mut buf);
    peer.send(&buf).await;
    peer
}

/// What a viewer received, and what decoding it showed.
#[derive(Debug, Default)]
struct Received {
    /// (seq, is_keyframe) in arrival order.
    frames: Vec<(u64, bool)>,
    /// Frames that came after a gap in `seq` without being keyframes.
    after_gap_not_keyframe: usize,
    /// Frames the decoder refused, or whose burnt-in frame number went backwards.
    decode_errors: usize,
    /// Pictures decoded.
    pictures: usize,
}

/// Reads for `run_for`, taking what arrived every `period` and acking it all.
async fn watch_stream(peer: &mut RawPeer, run_for: Duration, period: Duration) -> Received {
    let mut decoder = Decoder::new(MAX_FRAME_BYTES);
    let mut h264 = H264Decoder::new().unwrap();
    let mut inbuf = BytesMut::new();
    let mut got = Received::default();
    let mut last_number = None;
    let until = tokio::time::Instant::now() + run_for;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(period).await;
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(5), peer.stream.read_buf(&mut inbuf)).await
        {
            if n == 0 {
                break;
            }
        }
        let mut acks = BytesMut::new();
        while let Some(m) = decoder.decode(&mut inbuf).unwrap() {
            let Message::StreamFrame(f) = m else {
                continue;
            };
            let (seq, key) = (f.frame.seq, f.frame.is_keyframe);
            let after_gap = got.frames.last().is_none_or(|&(last, _)| seq != last + 1);
            if after_gap && !key {
                got.after_gap_not_keyframe += 1;
            }
            got.frames.push((seq, key));
            match h264.decode(&f.frame.data) {
                Ok(Some(picture)) => {
                    got.pictures += 1;
                    let number = read_frame_number(&picture.rgb, picture.width, picture.height);
                    if number.is_none() || number <= last_number {
                        got.decode_errors += 1;
                    }
                    last_number = number;
                }
                Ok(None) => {}
                Err(_) => got.decode_errors += 1,
            }
            Message::FrameAck(FrameAck {
                stream_id: f.stream_id,
                seq,
            })
            .encode(&mut acks);
        }
        peer.send(&acks).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_viewer_starts_at_a_keyframe_the_hub_asked_for() {
    let hub = start_hub(HubOptions::default()).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "cam-h264", 300).await;
    // Let the first keyframe go by: the viewer joins mid-group.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut peer = raw_viewer(hub.ingest_addr).await;
    let got = watch_stream(
        &mut peer,
        Duration::from_millis(1500),
        Duration::from_millis(10),
    )
    .await;
    let first = got.frames.first().copied();
    assert!(
        matches!(first, Some((seq, true)) if seq > 30),
        "first frame is a fresh keyframe: {first:?}"
    );
    assert!(got.frames.len() >= 20, "then the stream flows: {got:?}");
    assert_eq!(got.after_gap_not_keyframe, 0, "{got:?}");
    assert_eq!(got.decode_errors, 0, "{got:?}");
    let streams = api_streams(&hub).await;
    assert!(streams[0]["keyframe_requests"].as_u64().unwrap() >= 1);
    task.abort();
    capture.stop();
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_viewer_skips_to_keyframes_and_never_decodes_a_broken_chain() {
    let hub = start_hub(HubOptions::default()).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "cam-h264", 300).await;
    let mut peer = raw_viewer(hub.ingest_addr).await;
    // The slow link: four reads a second, so most frames are skipped for this viewer.
    let got = watch_stream(
        &mut peer,
        Duration::from_secs(4),
        Duration::from_millis(250),
    )
    .await;
    let gaps = got
        .frames
        .windows(2)
        .filter(|w| w[1].0 != w[0].0 + 1)
        .count();
    eprintln!(
        "slow viewer: {} frames, {} gaps, {} keyframes, {} pictures",
        got.frames.len(),
        gaps,
        got.frames.iter().filter(|f| f.1).count(),
        got.pictures
    );
    assert!(gaps >= 3, "frames were skipped: {got:?}");
    assert!(got.pictures >= 6, "pictures keep coming: {got:?}");
    assert_eq!(got.after_gap_not_keyframe, 0, "{got:?}");
    assert_eq!(got.decode_errors, 0, "{got:?}");
    task.abort();
    capture.stop();
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_url_transcodes_h264_while_someone_reads() {
    let hub = start_hub(HubOptions::default()).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "cam-h264", 300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = api_streams(&hub).await[0]["id"].as_u64().unwrap();
    let http = hub.http_addr.unwrap();
    let mut reader = vidcast_client::mjpeg::MjpegReader::open(http, &format!("/streams/{id}.mjpg"))
        .await
        .unwrap();
    let mut numbers = vec![];
    for _ in 0..15 {
        let jpeg = tokio::time::timeout(Duration::from_secs(5), reader.next_picture())
            .await
            .unwrap()
            .unwrap();
        let picture = vidcast_media::decode_jpeg(&jpeg).unwrap();
        assert_eq!((picture.width, picture.height), (320, 240));
        numbers.push(read_frame_number(&picture.rgb, 320, 240).unwrap());
    }
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    task.abort();
    capture.stop();
    hub.shutdown().await.unwrap();
}
