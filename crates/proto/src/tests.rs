//! Protocol tests: the case table (whole and split at every offset), property tests, and both
//! ends of a connection joined in memory with simulated time.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::cases::{self, Expected};
use crate::*;

fn decode_all(chunks: &[&[u8]]) -> (Vec<Message>, Option<ProtocolError>) {
    let mut decoder = Decoder::new(MAX_FRAME_BYTES);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn check_case(case: &cases::WireCase, got: (Vec<Message>, Option<ProtocolError>), how: &str) {
    match &case.expected {
        Expected::Messages(want) => {
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
        check_case(&case, decode_all(&[&case.bytes]), "whole");
    }
}

#[test]
fn every_case_decodes_the_same_split_at_every_offset() {
    for case in cases::all() {
        for at in 0..=case.bytes.len() {
            let (a, b) = case.bytes.split_at(at);
            check_case(&case, decode_all(&[a, b]), &format!("split at {at}"));
        }
    }
}

#[test]
fn every_valid_case_encodes_to_its_bytes() {
    for case in cases::all() {
        if let Expected::Messages(messages) = &case.expected {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&MAGIC);
            for m in messages {
                m.encode(&mut buf);
            }
            assert_eq!(&buf[..], &case.bytes[..], "{}", case.name);
        }
    }
}

#[test]
fn oversize_length_is_refused_before_the_bytes_arrive() {
    let mut decoder = Decoder::new(1000);
    let mut buf = BytesMut::from(&MAGIC[..]);
    buf.extend_from_slice(&[0x10, 0, 0, 0x04, 0x00]); // 1024 > 1000 + 17
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(ProtocolError::TooLarge {
            len: 1024,
            max: 1017,
            ..
        })
    ));
}

fn arb_string(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        any::<char>().prop_filter("no controls", |c| !crate::is_unsafe_char(*c)),
        1..max,
    )
    .prop_map(|v| v.into_iter().collect::<String>())
    .prop_filter("fits", move |s| s.len() <= max)
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            arb_string(64),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u8>()
        )
            .prop_map(
                |(name, token, width, height, fps_milli, codec)| Message::Hello(Hello {
                    version: VERSION,
                    role: Role::Publisher,
                    codec: codec_from_number(codec),
                    width,
                    height,
                    fps_milli,
                    name,
                    token: token.iter().map(|b| char::from(b'a' + b % 26)).collect(),
                })
            ),
        (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
            |(stream_id, heartbeat_ms, max_frame_bytes)| {
                Message::Welcome(Welcome {
                    version: VERSION,
                    stream_id,
                    heartbeat_ms,
                    max_frame_bytes,
                    name: if stream_id % 2 == 0 {
                        String::new()
                    } else {
                        format!("pi-{}", stream_id % 100)
                    },
                })
            }
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..2000)
        )
            .prop_map(
                |(seq, capture_us, is_keyframe, data)| Message::Frame(Frame {
                    seq,
                    capture_us,
                    is_keyframe,
                    data: Bytes::from(data),
                })
            ),
        any::<u64>().prop_map(|sent_us| Message::Ping(Ping { sent_us })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c)| Message::Pong(Pong {
            ping_sent_us: a,
            ping_received_us: b,
            sent_us: c
        })),
        (
            any::<u64>(),
            any::<u8>(),
            (any::<u16>(), any::<u16>(), any::<u32>()),
            (any::<bool>(), any::<bool>()),
            arb_string(64),
            arb_string(64)
        )
            .prop_map(
                |(
                    stream_id,
                    codec,
                    (width, height, fps_milli),
                    (is_live, is_legacy),
                    name,
                    peer,
                )| {
                    Message::StreamAnnounce(StreamAnnounce {
                        stream_id,
                        codec: codec_from_number(codec),
                        width,
                        height,
                        fps_milli,
                        is_live,
                        is_legacy,
                        name,
                        peer,
                    })
                }
            ),
        any::<u64>().prop_map(|stream_id| Message::StreamRemoved { stream_id }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..2000)
        )
            .prop_map(|(stream_id, seq, capture_us, is_keyframe, data)| {
                Message::StreamFrame(StreamFrame {
                    stream_id,
                    frame: Frame {
                        seq,
                        capture_us,
                        is_keyframe,
                        data: Bytes::from(data),
                    },
                })
            }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(stream_id, seq)| Message::FrameAck(FrameAck { stream_id, seq })),
        (0u8..6, arb_string(200)).prop_map(|(code, reason)| Message::Goodbye(Goodbye {
            code: match code {
                0 => GoodbyeCode::Normal,
                1 => GoodbyeCode::Shutdown,
                2 => GoodbyeCode::EndOfStream,
                3 => GoodbyeCode::ProtocolError,
                4 => GoodbyeCode::Timeout,
                _ => GoodbyeCode::Limit,
            },
            reason
        })),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip_through_any_chunking(
        messages in proptest::collection::vec(arb_message(), 0..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&MAGIC);
        for m in &messages {
            m.encode(&mut stream);
        }
        let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        offsets.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for o in offsets {
            chunks.push(&stream[last..o]);
            last = o;
        }
        chunks.push(&stream[last..]);
        let (got, err) = decode_all(&chunks);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overallocate(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        fuzzing::decode_stream(&data, 1024);
        fuzzing::hub_session(&data);
        fuzzing::viewer_session(&data);
    }

    #[test]
    fn arbitrary_bytes_after_magic_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&data);
        fuzzing::decode_stream(&with_magic, 1024);
        fuzzing::hub_session(&with_magic);
        fuzzing::viewer_session(&with_magic);
    }
}

/// A hub end and a client end joined by in-memory pipes, with a simulated clock each.
struct Pair {
    hub: HubConnection,
    client: ClientConnection,
    to_hub: BytesMut,
    to_client: BytesMut,
    hub_events: Vec<HubEvent>,
    client_events: Vec<ClientEvent>,
    now: Timestamp,
    /// Client clock minus hub clock.
    client_clock_ahead_us: u64,
}

impl Pair {
    fn new(hello: Hello) -> Self {
        let now = Timestamp::from_micros(1_000_000_000);
        let ahead = 0;
        Self {
            hub: HubConnection::new(HubConfig::default(), now),
            client: ClientConnection::new(hello, Timing::default(), now),
            to_hub: BytesMut::new(),
            to_client: BytesMut::new(),
            hub_events: Vec::new(),
            client_events: Vec::new(),
            now,
            client_clock_ahead_us: ahead,
        }
    }

    fn client_now(&self) -> Timestamp {
        Timestamp::from_micros(self.now.as_micros() + self.client_clock_ahead_us)
    }

    /// Moves bytes both ways until nothing changes; accepts any hello as stream 1.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(chunk) = self.client.poll_transmit() {
                self.to_hub.extend_from_slice(&chunk);
                moved = true;
            }
            while let Some(chunk) = self.hub.poll_transmit() {
                self.to_client.extend_from_slice(&chunk);
                moved = true;
            }
            if !self.to_hub.is_empty() {
                self.hub.handle_data(self.now, &mut self.to_hub);
            }
            if !self.to_client.is_empty() {
                let now = self.client_now();
                self.client.handle_data(now, &mut self.to_client);
            }
            while let Some(e) = self.hub.poll_event() {
                if matches!(e, HubEvent::Hello(_)) {
                    self.hub.accept(1, self.now);
                }
                self.hub_events.push(e);
                moved = true;
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("pair never settled");
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        self.hub.handle_timeout(self.now);
        let now = self.client_now();
        self.client.handle_timeout(now);
        self.pump();
    }

    fn frames_at_hub(&self) -> Vec<u64> {
        self.hub_events
            .iter()
            .filter_map(|e| match e {
                HubEvent::Frame { frame, .. } => Some(frame.seq),
                _ => None,
            })
            .collect()
    }
}

fn frame(seq: u64, capture_us: u64) -> Frame {
    Frame {
        seq,
        capture_us,
        is_keyframe: true,
        data: Bytes::from(vec![seq as u8; 100]),
    }
}

#[test]
fn handshake_then_frames_arrive_in_order() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    assert!(matches!(pair.hub_events[0], HubEvent::Hello(ref h) if h.name == "cam-kitchen"));
    assert!(matches!(pair.client_events[0], ClientEvent::Accepted(ref w) if w.stream_id == 1));
    for seq in 0..5 {
        pair.client.send_frame(frame(seq, 0));
        pair.pump();
    }
    assert_eq!(pair.frames_at_hub(), vec![0, 1, 2, 3, 4]);
    assert_eq!(pair.client.stats().frames_dropped, 0);
}

#[test]
fn frames_waiting_for_the_socket_keep_only_the_newest() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    // The socket "cannot take" anything while five frames are produced: four are dropped.
    for seq in 0..5 {
        pair.client.send_frame(frame(seq, 0));
    }
    pair.pump();
    assert_eq!(pair.frames_at_hub(), vec![4]);
    assert_eq!(pair.client.stats().frames_dropped, 4);
    assert_eq!(pair.client.stats().frames_sent, 1);
}

#[test]
fn a_frame_in_flight_is_finished_before_pings_and_newer_frames() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    pair.client.send_frame(frame(1, 0));
    let head = pair.client.poll_transmit().expect("frame head");
    // Meanwhile a ping comes due and a newer frame arrives.
    pair.now = pair.now.saturating_add(Duration::from_secs(1));
    let now = pair.client_now();
    pair.client.handle_timeout(now);
    pair.client.send_frame(frame(2, 0));
    let body = pair.client.poll_transmit().expect("frame body");
    assert_eq!(head.len() + body.len(), HEADER_LEN + FRAME_META_LEN + 100);
    pair.to_hub.extend_from_slice(&head);
    pair.to_hub.extend_from_slice(&body);
    pair.pump();
    assert_eq!(pair.frames_at_hub(), vec![1, 2]);
}

#[test]
fn hub_learns_the_clock_offset_and_converts_capture_times() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.client_clock_ahead_us = 3_600_000_000; // an hour ahead
    pair.pump();
    pair.advance(Duration::from_millis(1));
    let offset = pair.hub.clock().offset_us().expect("a pong arrived");
    assert_eq!(offset, 3_600_000_000);
    let capture = pair.client_now().as_micros();
    assert_eq!(pair.hub.clock().to_local(capture), Some(pair.now));
}

#[test]
fn silent_client_is_declared_dead_after_the_peer_timeout() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    // The client stops reading and writing: only the hub's timers run.
    for _ in 0..3 {
        pair.now = pair.now.saturating_add(Duration::from_millis(999));
        pair.hub.handle_timeout(pair.now);
    }
    assert!(!pair.hub.is_closed());
    pair.now = pair.now.saturating_add(Duration::from_millis(10));
    pair.hub.handle_timeout(pair.now);
    let closed = std::iter::from_fn(|| pair.hub.poll_event()).find_map(|e| match e {
        HubEvent::Closed(reason) => Some(reason),
        _ => None,
    });
    assert!(
        matches!(closed, Some(CloseReason::PeerTimeout { .. })),
        "{closed:?}"
    );
}

#[test]
fn heartbeats_keep_an_idle_connection_alive() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    for _ in 0..20 {
        pair.advance(Duration::from_millis(500));
    }
    assert!(pair.hub.poll_timeout().is_some());
    assert!(!pair
        .hub_events
        .iter()
        .any(|e| matches!(e, HubEvent::Closed(_))));
}

#[test]
fn stalled_handshake_is_rejected_at_the_deadline() {
    let now = Timestamp::from_micros(0);
    let mut hub = HubConnection::new(HubConfig::default(), now);
    let mut buf = BytesMut::from(&MAGIC[..5]);
    hub.handle_data(now, &mut buf);
    assert_eq!(hub.poll_timeout(), Some(Timestamp::from_micros(5_000_000)));
    hub.handle_timeout(Timestamp::from_micros(5_000_000));
    assert!(matches!(
        hub.poll_event(),
        Some(HubEvent::Closed(CloseReason::HandshakeTimeout { .. }))
    ));
    let mut sent = BytesMut::new();
    while let Some(c) = hub.poll_transmit() {
        sent.extend_from_slice(&c);
    }
    let (msgs, _) = decode_all(&[&sent]);
    assert!(matches!(&msgs[..], [Message::Reject(r)] if r.code == RejectCode::Timeout));
    assert!(hub.is_closed());
}

#[test]
fn wrong_version_gets_a_reject_that_says_why() {
    let mut hello = cases::sample_hello();
    hello.version = 2;
    let mut pair = Pair::new(hello);
    pair.pump();
    match pair.client_events.last() {
        Some(ClientEvent::Closed(CloseReason::Rejected { code, reason })) => {
            assert_eq!(*code, RejectCode::Version);
            assert!(
                reason.contains("unsupported protocol version 2"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(pair.hub.is_closed());
}

#[test]
fn goodbye_is_reported_as_an_orderly_leave() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    pair.client
        .close(GoodbyeCode::EndOfStream, "video finished");
    pair.pump();
    match pair.hub_events.last() {
        Some(HubEvent::Closed(reason)) => {
            assert!(reason.is_orderly());
            assert_eq!(
                reason.to_string(),
                "peer said goodbye (EndOfStream: video finished)"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(pair.client.is_closed() && pair.hub.is_closed());
}

#[test]
fn eof_mid_frame_names_the_offset() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    pair.client.send_frame(frame(1, 0));
    let head = pair.client.poll_transmit().expect("head");
    pair.to_hub.extend_from_slice(&head);
    pair.hub.handle_data(pair.now, &mut pair.to_hub);
    pair.hub.handle_eof(&pair.to_hub);
    let reason = std::iter::from_fn(|| pair.hub.poll_event()).find_map(|e| match e {
        HubEvent::Closed(r) => Some(r),
        _ => None,
    });
    match reason {
        Some(CloseReason::PeerClosed {
            mid_message,
            offset,
        }) => {
            assert!(mid_message);
            assert_eq!(
                offset,
                pair.hub.stats().bytes_received + pair.to_hub.len() as u64
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn frame_before_welcome_is_a_protocol_error() {
    let now = Timestamp::from_micros(0);
    let mut hub = HubConnection::new(HubConfig::default(), now);
    let mut buf = BytesMut::from(&MAGIC[..]);
    Message::Frame(frame(0, 0)).encode(&mut buf);
    hub.handle_data(now, &mut buf);
    assert!(matches!(
        hub.poll_event(),
        Some(HubEvent::Closed(CloseReason::Protocol(
            ProtocolError::Unexpected { offset: 8, .. }
        )))
    ));
}

/// The fuzz seeds in `fuzz/seeds/` are the case table's bytes; regenerate with
/// `VIDCAST_WRITE_SEEDS=1`.
/// Every saved crash input and every seed, through the fuzz targets' entry points.
#[test]
fn fuzz_regressions_and_seeds_replay_cleanly() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (target, run) in [
        (
            "decode_stream",
            (|d: &[u8]| crate::fuzzing::decode_stream(d, 1 << 16)) as fn(&[u8]),
        ),
        ("hub_session", crate::fuzzing::hub_session as fn(&[u8])),
        (
            "viewer_session",
            crate::fuzzing::viewer_session as fn(&[u8]),
        ),
    ] {
        for dir in ["regressions", "seeds"] {
            for entry in std::fs::read_dir(fuzz.join(dir).join(target)).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().is_some_and(|n| n == ".keep") {
                    continue;
                }
                run(&std::fs::read(&path).unwrap());
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= 2 * cases::all().len(),
        "replayed only {replayed} inputs"
    );
}

#[test]
fn fuzz_seeds_match_the_case_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    let write = std::env::var_os("VIDCAST_WRITE_SEEDS").is_some();
    for target in ["decode_stream", "hub_session", "viewer_session"] {
        let dir = root.join(target);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for case in cases::all() {
            let path = dir.join(case.name);
            if write {
                std::fs::write(&path, &case.bytes).unwrap();
            } else {
                let on_disk = std::fs::read(&path).unwrap_or_else(|_| {
                    panic!("missing seed {path:?}: run VIDCAST_WRITE_SEEDS=1 cargo test -p vidcast-proto fuzz_seeds")
                });
                assert_eq!(on_disk, case.bytes, "seed {path:?} is stale");
            }
        }
    }
}

/// A viewer joined to a hub end in memory: the hub feeds streams, the viewer acks or not.
fn viewer_pair() -> Pair {
    let now = Timestamp::from_micros(1_000_000_000);
    let mut pair = Pair::new(cases::sample_hello());
    pair.client = ClientConnection::viewer("wall-1", "", Timing::default(), now);
    pair.pump();
    assert!(pair.hub.is_viewer());
    assert!(matches!(pair.client_events[0], ClientEvent::Accepted(_)));
    pair
}

fn announce(stream_id: u64, is_live: bool) -> StreamAnnounce {
    StreamAnnounce {
        stream_id,
        codec: Ok(Codec::Jpeg),
        width: 64,
        height: 48,
        fps_milli: 30_000,
        is_live,
        is_legacy: false,
        name: format!("cam-{stream_id}"),
        peer: "127.0.0.1:4000".into(),
    }
}

impl Pair {
    /// Frames the viewer got, as (stream, seq), without acking them.
    fn frames_at_viewer(&self) -> Vec<(u64, u64)> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::StreamFrame {
                    stream_id, frame, ..
                } => Some((*stream_id, frame.seq)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn viewer_gets_the_stream_list_frames_and_removals() {
    let mut pair = viewer_pair();
    pair.hub.announce_stream(announce(1, true));
    pair.hub.announce_stream(announce(2, true));
    pair.hub.send_stream_frame(1, frame(10, 5));
    pair.hub.send_stream_frame(2, frame(20, 6));
    pair.pump();
    pair.hub.announce_stream(announce(2, false));
    pair.hub.remove_stream(1);
    pair.pump();
    let streams: Vec<(u64, bool)> = pair
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Stream(a) => Some((a.stream_id, a.is_live)),
            _ => None,
        })
        .collect();
    assert_eq!(streams, vec![(1, true), (2, true), (2, false)]);
    assert_eq!(pair.frames_at_viewer(), vec![(1, 10), (2, 20)]);
    assert!(matches!(
        pair.client_events.last(),
        Some(ClientEvent::StreamRemoved { stream_id: 1 })
    ));
}

#[test]
fn unacked_viewer_gets_a_window_then_only_the_newest_frame_per_stream() {
    let mut pair = viewer_pair();
    for seq in 0..10 {
        pair.hub.send_stream_frame(1, frame(seq, 0));
        pair.pump();
    }
    // Two frames in flight and unacked; of the other eight only the newest waits.
    assert_eq!(pair.frames_at_viewer(), vec![(1, 0), (1, 1)]);
    assert_eq!(pair.hub.stats().frames_dropped, 7);
    pair.client.ack_frame(1, 0);
    pair.pump();
    assert_eq!(pair.frames_at_viewer(), vec![(1, 0), (1, 1), (1, 9)]);
    // Acking the newest acks everything before it: the window is open again (for the newest
    // of what arrives meanwhile).
    pair.client.ack_frame(1, 9);
    pair.hub.send_stream_frame(1, frame(10, 0));
    pair.hub.send_stream_frame(1, frame(11, 0));
    pair.pump();
    assert_eq!(pair.frames_at_viewer().last(), Some(&(1, 11)));
    pair.hub.send_stream_frame(1, frame(12, 0));
    pair.pump();
    assert_eq!(pair.frames_at_viewer().len(), 5, "window of two: 11 and 12");
    assert_eq!(pair.hub.stats().frames_dropped, 8);
}

#[test]
fn a_catch_up_group_goes_whole_and_in_order_ahead_of_the_next_frame() {
    let mut pair = viewer_pair();
    // The viewer's window is full and unacked: only catch-up frames may pass it.
    for seq in 0..2 {
        pair.hub.send_stream_frame(1, frame(seq, 0));
        pair.pump();
    }
    pair.hub
        .send_stream_catch_up(1, (20..25).map(|seq| frame(seq, 0)).collect());
    pair.hub.send_stream_frame(1, frame(25, 0));
    pair.pump();
    let seqs: Vec<u64> = pair.frames_at_viewer().iter().map(|f| f.1).collect();
    assert_eq!(seqs, [0, 1, 20, 21, 22, 23, 24], "25 waits for the window");
    pair.client.ack_frame(1, 24);
    pair.pump();
    assert_eq!(pair.frames_at_viewer().last(), Some(&(1, 25)));
    assert_eq!(pair.hub.stats().frames_dropped, 0);
}

#[test]
fn a_stalled_stream_does_not_hold_up_another_and_streams_take_turns() {
    let mut pair = viewer_pair();
    // Stream 1's window fills and is never acked; stream 2 keeps flowing while acked.
    for seq in 0..6 {
        pair.hub.send_stream_frame(1, frame(seq, 0));
        pair.hub.send_stream_frame(2, frame(100 + seq, 0));
        pair.pump();
        pair.client.ack_frame(2, 100 + seq);
    }
    let got = pair.frames_at_viewer();
    let of = |id| got.iter().filter(|(s, _)| *s == id).count();
    assert_eq!(of(1), 2);
    assert_eq!(of(2), 6);
    // With both waiting at once the socket alternates between them.
    let mut pair = viewer_pair();
    for seq in 0..2 {
        pair.hub.send_stream_frame(1, frame(seq, 0));
        pair.hub.send_stream_frame(2, frame(seq, 0));
    }
    let mut order = Vec::new();
    while let Some(chunk) = pair.hub.poll_transmit() {
        pair.to_client.extend_from_slice(&chunk);
    }
    pair.client.handle_data(pair.now, &mut pair.to_client);
    while let Some(e) = pair.client.poll_event() {
        if let ClientEvent::StreamFrame { stream_id, .. } = e {
            order.push(stream_id);
        }
    }
    assert_eq!(order, vec![1, 2]);
}

#[test]
fn a_viewer_cannot_publish_and_a_publisher_gets_no_streams() {
    let mut pair = viewer_pair();
    let mut buf = BytesMut::new();
    Message::Frame(frame(0, 0)).encode(&mut buf);
    pair.hub.handle_data(pair.now, &mut buf);
    let closed = std::iter::from_fn(|| pair.hub.poll_event()).any(|e| {
        matches!(
            e,
            HubEvent::Closed(CloseReason::Protocol(ProtocolError::Unexpected { .. }))
        )
    });
    assert!(closed, "a viewer's frame is a protocol error");
    // Stream messages are for viewers only: a publisher's hub end ignores the calls.
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    pair.hub.announce_stream(announce(1, true));
    assert!(pair.hub.send_stream_frame(1, frame(0, 0)).is_some());
    pair.pump();
    assert!(!pair
        .client_events
        .iter()
        .any(|e| matches!(e, ClientEvent::Stream(_) | ClientEvent::StreamFrame { .. })));
}

#[test]
fn a_hello_whose_name_hides_bidi_or_zero_width_characters_is_malformed() {
    for name in ["\u{202e}1.0.0.721", "cam\u{200b}-1", "cam\n-1"] {
        let mut buf = BytesMut::from(&MAGIC[..]);
        Message::Hello(Hello {
            name: name.to_owned(),
            ..cases::sample_hello()
        })
        .encode(&mut buf);
        let (messages, error) = decode_all(&[&buf]);
        assert!(messages.is_empty(), "{name:?}");
        assert!(
            matches!(error, Some(ProtocolError::Malformed { .. })),
            "{name:?}: {error:?}"
        );
    }
}

#[test]
fn a_ping_flood_that_never_reads_queues_one_pong() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    // 100 000 pings, within the allowed rate (40 a second), and the client's side never
    // reads: the hub's output is never polled.
    let mut now = pair.now;
    for second in 0..2_500u64 {
        let mut pings = BytesMut::new();
        for i in 0..40 {
            Message::Ping(Ping {
                sent_us: second * 40 + i,
            })
            .encode(&mut pings);
        }
        now = now.saturating_add(Duration::from_secs(1));
        pair.hub.handle_data(now, &mut pings);
        assert!(pings.is_empty());
    }
    assert!(pair.hub.poll_event().is_none(), "not closed");
    let mut out = Vec::new();
    while let Some(chunk) = pair.hub.poll_transmit() {
        out.push(chunk);
    }
    assert_eq!(out.len(), 1, "one pong, the newest");
    let mut buf = BytesMut::from(&MAGIC[..]);
    buf.extend_from_slice(&out[0]);
    let mut decoder = Decoder::new(1000);
    match decoder.decode(&mut buf) {
        Ok(Some(Message::Pong(pong))) => assert_eq!(pong.ping_sent_us, 99_999),
        other => panic!("expected the newest pong, got {other:?}"),
    }
}

#[test]
fn a_ping_flood_is_closed_within_a_second() {
    let mut pair = Pair::new(cases::sample_hello());
    pair.pump();
    let mut pings = BytesMut::new();
    for i in 0..=u64::from(MAX_PINGS_PER_SECOND) {
        Message::Ping(Ping { sent_us: i }).encode(&mut pings);
    }
    pair.hub.handle_data(pair.now, &mut pings);
    let closed = std::iter::from_fn(|| pair.hub.poll_event()).find_map(|e| match e {
        HubEvent::Closed(reason) => Some(reason),
        _ => None,
    });
    assert!(
        matches!(
            closed,
            Some(CloseReason::Protocol(ProtocolError::PingFlood { .. }))
        ),
        "{closed:?}"
    );
}

#[test]
fn a_goodbye_reason_cannot_forge_a_log_line() {
    let reason = CloseReason::PeerGoodbye {
        code: GoodbyeCode::Normal,
        reason: "bye\n2026-12-02T16:00:00Z  INFO client admin connected\u{202e}".to_owned(),
    };
    let shown = reason.to_string();
    assert!(!shown.contains(['\n', '\u{202e}']), "{shown}");
    assert!(shown.contains("bye\\n2026"), "{shown}");
}

#[test]
fn a_viewer_that_never_reads_is_closed_when_its_control_queue_is_full() {
    let mut pair = viewer_pair();
    let mut announced = 0u64;
    let closed = loop {
        pair.hub.announce_stream(announce(announced, true));
        announced += 1;
        if let Some(HubEvent::Closed(reason)) = pair.hub.poll_event() {
            break reason;
        }
        assert!(announced < 1_000_000, "never closed");
    };
    assert!(
        matches!(closed, CloseReason::NotReading { queued_bytes } if queued_bytes <= MAX_CONTROL_QUEUED_BYTES),
        "{closed:?}"
    );
    assert!(
        announced > 1000,
        "a full hub's announcements fit: {announced}"
    );
}

#[test]
fn a_message_arriving_is_reported_with_its_offset_and_whole_length() {
    let mut decoder = Decoder::new(1 << 20);
    let mut buf = BytesMut::from(&MAGIC[..]);
    buf.extend_from_slice(&[Kind::Frame as u8, 0, 0, 0x10]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.receiving(&buf), None, "no whole header yet");
    buf.extend_from_slice(&[0x00, 1, 2, 3]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(
        decoder.receiving(&buf),
        Some((MAGIC.len() as u64, HEADER_LEN + 0x1000))
    );
}
