//! A client session against a scripted server in memory: the handshake, the command
//! exchange, protocol control, refusals and video, with input split at every offset.

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};
use crate::chunk::{ChunkReader, ChunkWriter, RtmpMessage};
use crate::{ClientEvent, ClientSession, RtmpError, RtmpUrl, HANDSHAKE_SIZE, OUT_CHUNK_SIZE};

fn url() -> RtmpUrl {
    RtmpUrl::parse("rtmp://127.0.0.1:1935/live/cam-1").unwrap()
}

fn drain(client: &mut ClientSession) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = client.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

/// The server's end: reads the client's chunks and answers like nginx-rtmp does.
struct Server {
    reader: ChunkReader,
    writer: ChunkWriter,
    out: BytesMut,
}

impl Server {
    fn new() -> Self {
        Self {
            reader: ChunkReader::new((1 + 2 * HANDSHAKE_SIZE) as u64),
            writer: ChunkWriter::default(),
            out: BytesMut::new(),
        }
    }

    /// S0+S1+S2 for the client's C0+C1.
    fn handshake(c0c1: &[u8]) -> Vec<u8> {
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(c0c1[0], 3);
        let mut s = vec![3];
        s.extend((0..HANDSHAKE_SIZE).map(|i| (i * 7) as u8)); // S1
        s.extend_from_slice(&c0c1[1..]); // S2 echoes C1
        s
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        let m = RtmpMessage {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        };
        self.writer.write(&m, &mut self.out);
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        self.send(3, 20, stream_id, &body);
    }

    fn status(code: &str, level: &str) -> Amf0Value {
        Amf0Value::Object(vec![
            ("level".into(), Amf0Value::String(level.into())),
            ("code".into(), Amf0Value::String(code.into())),
            ("description".into(), Amf0Value::String("ok".into())),
        ])
    }

    /// Reads the client's messages; answers commands; returns every message read.
    fn handle(&mut self, bytes: &[u8], publish_level: &str) -> Vec<RtmpMessage> {
        self.reader.push(bytes);
        let mut got = Vec::new();
        while let Some(m) = self.reader.next_message().unwrap() {
            if m.type_id == 1 {
                let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                self.reader.set_chunk_size(size);
            }
            if m.type_id == 20 {
                let values = amf0::decode_all(&m.payload).unwrap();
                let tx = values[1].clone();
                match values[0].as_str().unwrap() {
                    "connect" => {
                        self.send(2, 5, 0, &5_000_000u32.to_be_bytes());
                        self.send(2, 6, 0, &[0, 0x4C, 0x4B, 0x40, 2]);
                        self.send(2, 1, 0, &4096u32.to_be_bytes());
                        self.writer.set_chunk_size(4096);
                        self.command(
                            0,
                            &[
                                Amf0Value::String("_result".into()),
                                tx,
                                Amf0Value::Null,
                                Self::status("NetConnection.Connect.Success", "status"),
                            ],
                        );
                    }
                    "createStream" => self.command(
                        0,
                        &[
                            Amf0Value::String("_result".into()),
                            tx,
                            Amf0Value::Null,
                            Amf0Value::Number(1.0),
                        ],
                    ),
                    "publish" => {
                        let code = if publish_level == "error" {
                            "NetStream.Publish.BadName"
                        } else {
                            "NetStream.Publish.Start"
                        };
                        self.command(
                            1,
                            &[
                                Amf0Value::String("onStatus".into()),
                                Amf0Value::Number(0.0),
                                Amf0Value::Null,
                                Self::status(code, publish_level),
                            ],
                        );
                    }
                    other => panic!("unexpected command {other}"),
                }
            }
            got.push(m);
        }
        got
    }
}

/// Runs the whole exchange, feeding the client the server's bytes split at `split` (each
/// reply cut in two there), and returns the client and everything the server read.
fn publish(
    split: usize,
    publish_level: &str,
) -> (ClientSession, Result<Vec<RtmpMessage>, RtmpError>) {
    let mut client = ClientSession::new(url(), 42);
    let mut server = Server::new();
    let c0c1 = drain(&mut client);
    let mut to_client = Server::handshake(&c0c1);
    let mut read = Vec::new();
    let mut first = true;
    for _round in 0..10 {
        let cut = split.min(to_client.len());
        for part in [&to_client[..cut], &to_client[cut..]] {
            if let Err(e) = client.handle_bytes(part) {
                return (client, Err(e));
            }
        }
        let mut from_client = drain(&mut client);
        if first && !from_client.is_empty() {
            // C2 first: it echoes S1.
            assert_eq!(
                &from_client[..HANDSHAKE_SIZE],
                &to_client[1..=HANDSHAKE_SIZE]
            );
            from_client.drain(..HANDSHAKE_SIZE);
            first = false;
        }
        read.extend(server.handle(&from_client, publish_level));
        to_client = server.out.split().to_vec();
        if to_client.is_empty() {
            break;
        }
    }
    (client, Ok(read))
}

#[test]
fn handshake_then_connect_create_stream_publish_at_any_split() {
    for split in (0..3200).step_by(97).chain([1, 1536, 1537, 3072, 3073]) {
        let (mut client, read) = publish(split, "status");
        let read = read.unwrap();
        assert!(client.is_publishing(), "split {split}");
        assert_eq!(client.poll_event(), Some(ClientEvent::Publishing));
        let commands: Vec<String> = read
            .iter()
            .filter(|m| m.type_id == 20)
            .map(|m| {
                amf0::decode_all(&m.payload).unwrap()[0]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(commands, ["connect", "createStream", "publish"]);
        let command = |name: &str| {
            read.iter()
                .find(|m| {
                    m.type_id == 20
                        && amf0::decode_all(&m.payload).unwrap()[0].as_str() == Some(name)
                })
                .unwrap()
        };
        let connect = amf0::decode_all(&command("connect").payload).unwrap();
        assert_eq!(
            connect[2].get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
        assert_eq!(
            connect[2].get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://127.0.0.1:1935/live")
        );
        let publish = amf0::decode_all(&command("publish").payload).unwrap();
        assert_eq!(publish[3].as_str(), Some("cam-1"));
        assert_eq!(
            command("publish").stream_id,
            1,
            "publish goes on the created stream"
        );
        assert_eq!(read[0].type_id, 1, "chunk size announced first");
        assert_eq!(read[0].payload[..], OUT_CHUNK_SIZE.to_be_bytes());
        assert!(read.iter().any(|m| m.type_id == 5), "window size answered");
    }
}

#[test]
fn the_handshake_waits_for_all_of_s0_s1_s2() {
    let mut client = ClientSession::new(url(), 7);
    let c0c1 = drain(&mut client);
    let s = Server::handshake(&c0c1);
    for (i, b) in s.iter().enumerate() {
        client.handle_bytes(&[*b]).unwrap();
        let out = drain(&mut client);
        if i + 1 < s.len() {
            assert!(out.is_empty(), "nothing before S2 is complete (byte {i})");
        } else {
            assert_eq!(
                &out[..HANDSHAKE_SIZE],
                &s[1..=HANDSHAKE_SIZE],
                "C2 echoes S1"
            );
            assert!(out.len() > HANDSHAKE_SIZE, "connect follows C2");
        }
    }
    let mut client = ClientSession::new(url(), 7);
    assert_eq!(
        client.handle_bytes(&[6; 3073]),
        Err(RtmpError::Handshake { version: 6 })
    );
}

#[test]
fn a_refused_publish_is_an_error_with_the_code() {
    let (client, result) = publish(usize::MAX, "error");
    assert!(!client.is_publishing());
    match result {
        Err(RtmpError::Refused { stage, code, .. }) => {
            assert_eq!(
                (stage, code.as_str()),
                ("publish", "NetStream.Publish.BadName")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn video_goes_out_on_the_stream_only_once_publishing() {
    let mut client = ClientSession::new(url(), 1);
    assert_eq!(
        client.send_video(0, Bytes::from_static(&[0x17, 0])),
        Err(RtmpError::NotPublishing)
    );
    let (mut client, _) = publish(usize::MAX, "status");
    client.send_metadata(320, 240, 30.0).unwrap();
    let picture = Bytes::from(vec![0x27; 10_000]);
    client.send_video(33, picture.clone()).unwrap();
    let mut reader = ChunkReader::new(0);
    reader.set_chunk_size(OUT_CHUNK_SIZE);
    reader.push(&drain(&mut client));
    let meta = reader.next_message().unwrap().unwrap();
    assert_eq!(meta.type_id, 18);
    let values = amf0::decode_all(&meta.payload).unwrap();
    assert_eq!(values[2].get("width"), Some(&Amf0Value::Number(320.0)));
    let video = reader.next_message().unwrap().unwrap();
    assert_eq!(
        (video.type_id, video.timestamp, video.stream_id),
        (9, 33, 1)
    );
    assert_eq!(video.payload, picture);
    // A body no chunk header can announce is refused, and nothing is queued.
    let huge = Bytes::from(vec![0x27; 0x100_0000]);
    assert!(matches!(
        client.send_video(66, huge),
        Err(RtmpError::BadVideo(_))
    ));
    assert!(drain(&mut client).is_empty());
}

#[test]
fn pings_are_answered_and_bytes_acknowledged_per_window() {
    let (mut client, _) = publish(usize::MAX, "status");
    let mut server = Server::new();
    server.writer.set_chunk_size(4096);
    // Window 100 bytes, then a ping request.
    server.send(2, 5, 0, &100u32.to_be_bytes());
    server.send(2, 4, 0, &[0, 6, 0, 0, 0x12, 0x34]);
    let bytes = server.out.split();
    client.handle_bytes(&bytes).unwrap();
    let mut reader = ChunkReader::new(0);
    reader.set_chunk_size(OUT_CHUNK_SIZE);
    reader.push(&drain(&mut client));
    let mut kinds = Vec::new();
    while let Some(m) = reader.next_message().unwrap() {
        kinds.push((m.type_id, m.payload.to_vec()));
    }
    assert!(
        kinds.contains(&(4, vec![0, 7, 0, 0, 0x12, 0x34])),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|(t, _)| *t == 3),
        "acknowledged: {kinds:?}"
    );
}

/// The committed fuzz seeds and every input that once broke a fuzz target, replayed through
/// the fuzzers' own entry points.
#[test]
fn fuzz_regressions_and_seeds_replay_cleanly() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (target, run) in [
        ("rtmp_chunks", crate::fuzzing::chunk_reader as fn(&[u8])),
        ("rtmp_client", crate::fuzzing::client_session as fn(&[u8])),
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
    assert!(replayed >= 8, "replayed only {replayed} inputs");
}

/// The main seed is a whole accepted publish, so the fuzzer starts from deep states.
#[test]
fn the_publish_seed_gets_a_session_publishing() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let seed = std::fs::read(fuzz.join("seeds/rtmp_client/publish_accepted")).unwrap();
    let mut client = ClientSession::new(url(), 7);
    let c0c1 = drain(&mut client);
    client.handle_bytes(&Server::handshake(&c0c1)).unwrap();
    client.handle_bytes(&seed).unwrap();
    assert!(client.is_publishing());
}
