//! H.264 through a real hub on 127.0.0.1: a late viewer (native, wall, `.jpg`) starts at once
//! from the keyframe group the hub keeps, and a slow viewer, skipped frames by latest-frame-wins, never gets a
//! frame whose reference it missed (every frame it gets decodes); `.mjpg` transcodes.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use vidcast_hub::HubOptions;
use vidcast_media::{read_frame_number, H264Decoder};
use vidcast_proto::{Decoder, FrameAck, Message, Role, MAGIC, MAX_FRAME_BYTES};
use vidcast_testkit::{api_streams, h264_publisher, start_hub, wait_for, RawPeer};

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
                    let rgb = picture.to_rgb().unwrap();
                    let number = read_frame_number(&rgb, picture.width, picture.height);
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

/// Waits until the hub has received `count` frames of its only stream; returns its id.
async fn stream_with_frames(hub: &vidcast_hub::RunningHub, count: u64) -> u64 {
    wait_for("frames at the hub", Duration::from_secs(10), || async {
        let streams = api_streams(hub).await;
        let stream = streams.first()?;
        (stream["frames"].as_u64()? >= count).then(|| stream["id"].as_u64())?
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_viewer_starts_at_once_from_the_kept_keyframe_group() {
    let hub = start_hub(HubOptions::default()).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "cam-h264", 300).await;
    // Join 1.5 s into a 10 s keyframe interval.
    stream_with_frames(&hub, 45).await;
    let mut peer = raw_viewer(hub.ingest_addr).await;
    let got = watch_stream(
        &mut peer,
        Duration::from_millis(1000),
        Duration::from_millis(10),
    )
    .await;
    // The hub sent the group from the stream's first keyframe on, not a fresh keyframe.
    let first = got.frames.first().copied();
    assert!(
        matches!(first, Some((seq, true)) if seq < 5),
        "first frame is the kept keyframe: {first:?}"
    );
    assert!(got.frames.len() >= 60, "group, then the stream: {got:?}");
    assert!(got.pictures + 2 >= got.frames.len(), "{got:?}");
    assert_eq!(got.after_gap_not_keyframe, 0, "{got:?}");
    assert_eq!(got.decode_errors, 0, "{got:?}");
    task.abort();
    capture.stop();
    hub.shutdown().await.unwrap();
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A wall socket subscribed to stream `id` (as JPEG if `jpeg`).
async fn wall_watching(http: std::net::SocketAddr, id: u64, jpeg: bool) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .unwrap();
    let subscribe = json!({"type": "subscribe", "ids": [id], "jpeg": jpeg});
    ws.send(WsMessage::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    ws
}

async fn wall_ack(ws: &mut Ws, id: u64) {
    let ack = json!({"type": "ack", "id": id});
    ws.send(WsMessage::Text(ack.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_tile_starts_from_the_kept_keyframe_group() {
    let hub = start_hub(HubOptions::default()).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "cam-h264", 300).await;
    let id = stream_with_frames(&hub, 45).await;
    let http = hub.http_addr.unwrap();
    let mut ws = wall_watching(http, id, false).await;
    let mut h264 = H264Decoder::new().unwrap();
    let (mut frames, mut pictures, mut last_number) = (Vec::new(), 0, None);
    // Until 60 pictures (the kept group, then live ones): a deadline, not a time to count in,
    // so a loaded machine only makes it slower.
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while pictures < 60 {
        let Ok(Some(msg)) = tokio::time::timeout_at(until, ws.next()).await else {
            break;
        };
        let WsMessage::Binary(data) = msg.unwrap() else {
            continue;
        };
        assert_eq!((data[0], data[1]), (1, 2), "an H.264 frame");
        let seq = u64::from_be_bytes(data[8..16].try_into().unwrap());
        frames.push((seq, data[2] == 1));
        if let Some(picture) = h264.decode(&data[24..]).unwrap() {
            let rgb = picture.to_rgb().unwrap();
            let number = read_frame_number(&rgb, picture.width, picture.height);
            assert!(number.is_some() && number > last_number, "in order");
            last_number = number;
            pictures += 1;
        }
        wall_ack(&mut ws, id).await;
    }
    assert!(
        matches!(frames.first(), Some(&(seq, true)) if seq < 5),
        "the tile starts at the kept keyframe: {frames:?}"
    );
    assert!(
        frames.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "{frames:?}"
    );
    assert!(pictures >= 60, "group, then the stream: {pictures}");
    task.abort();
    capture.stop();
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpg_url_of_an_h264_stream_is_its_current_picture() {
    let hub = start_hub(HubOptions::default()).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "cam-h264", 300).await;
    let id = stream_with_frames(&hub, 45).await;
    let http = hub.http_addr.unwrap();
    let (status, jpeg) =
        vidcast_testkit::http::get(http, &format!("/streams/{id}.jpg"), Duration::from_secs(5))
            .await
            .unwrap();
    assert_eq!(status, 200);
    let picture = vidcast_media::decode_jpeg(&jpeg).unwrap();
    assert_eq!((picture.width, picture.height), (320, 240));
    let number = read_frame_number(&picture.rgb, 320, 240).unwrap();
    assert!(
        number >= 40,
        "the current picture, not the keyframe: {number}"
    );
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
    assert_eq!(api_streams(&hub).await[0]["jpeg_transcoding"], true);
    drop(reader);
    transcoding_stops(&hub).await;
    task.abort();
    capture.stop();
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_without_webcodecs_gets_jpeg_while_it_watches() {
    let hub = start_hub(HubOptions::default()).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "cam-h264", 300).await;
    let id = stream_with_frames(&hub, 10).await;
    assert_eq!(api_streams(&hub).await[0]["jpeg_transcoding"], false);
    let http = hub.http_addr.unwrap();
    let mut ws = wall_watching(http, id, true).await;
    let mut numbers = Vec::new();
    while numbers.len() < 15 {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let WsMessage::Binary(data) = msg else {
            continue;
        };
        assert_eq!((data[0], data[1]), (1, 1), "a JPEG frame");
        let picture = vidcast_media::decode_jpeg(&data[24..]).unwrap();
        assert_eq!((picture.width, picture.height), (320, 240));
        numbers.push(read_frame_number(&picture.rgb, 320, 240).unwrap());
        wall_ack(&mut ws, id).await;
    }
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    assert_eq!(api_streams(&hub).await[0]["jpeg_transcoding"], true);
    drop(ws);
    transcoding_stops(&hub).await;
    task.abort();
    capture.stop();
    hub.shutdown().await.unwrap();
}

async fn transcoding_stops(hub: &vidcast_hub::RunningHub) {
    wait_for("transcoding to stop", Duration::from_secs(5), || async {
        (api_streams(hub).await[0]["jpeg_transcoding"] == false).then_some(())
    })
    .await;
}
