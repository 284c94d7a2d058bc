//! Pulling a real RTSP server (GStreamer's, `scripts/rtsp-test-server`, on 127.0.0.1): frames
//! decoded back to the server's frame numbers, in order and at its rate, over TCP and UDP,
//! passed through or decoded; a camera that dies, hangs or comes back; Basic and Digest auth.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vidcast_media::source::Captured;
use vidcast_media::{read_frame_number, H264Decoder, RawFrame, VideoSource};
use vidcast_rtsp::{PullOptions, RtspSource, RtspTransport};
use vidcast_testkit::{wait_until, RtspTestServer};

fn open(url: String, transport: RtspTransport, passthrough: bool) -> RtspSource {
    RtspSource::open(PullOptions {
        url,
        transport,
        passthrough,
        clock: vidcast_testkit::clock(),
        open_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// The frame number the server drew into a decoded picture.
fn number_of(frame: &RawFrame) -> u32 {
    let rgb = frame.to_rgb().unwrap();
    read_frame_number(&rgb, frame.width, frame.height).expect("frame number strip readable")
}

/// `count` decoded frames: (server's frame number, capture time µs).
fn pull(source: &mut RtspSource, count: usize) -> Vec<(u32, u64)> {
    let mut decoder = None::<H264Decoder>;
    let mut out = Vec::new();
    while out.len() < count {
        let frame = match source
            .next_captured()
            .unwrap()
            .expect("a live camera never ends")
        {
            Captured::Raw(frame) => frame,
            Captured::H264(unit) => {
                let decoder = decoder.get_or_insert_with(|| {
                    assert!(
                        unit.is_keyframe,
                        "passed-through H.264 starts at a keyframe"
                    );
                    H264Decoder::new().unwrap()
                });
                match decoder.decode(&unit.data).unwrap() {
                    Some(mut frame) => {
                        frame.capture_us = unit.capture_us;
                        frame
                    }
                    None => continue,
                }
            }
            Captured::Jpeg(_) => panic!("an H.264 camera gave JPEG"),
        };
        out.push((number_of(&frame), frame.capture_us));
    }
    out
}

/// Frame numbers strictly increase, almost all by one (the server's own leaky queue may
/// drop one when the machine is busy), and capture times follow the camera's 30 fps.
fn check_order_and_rate(frames: &[(u32, u64)]) {
    let steps: Vec<u32> = frames
        .windows(2)
        .map(|w| w[1].0.wrapping_sub(w[0].0))
        .collect();
    assert!(
        steps.iter().all(|&s| (1..=3).contains(&s)),
        "frame numbers {frames:?}"
    );
    let ones = steps.iter().filter(|&&s| s == 1).count();
    assert!(
        ones * 10 >= steps.len() * 9,
        "too many frames skipped: {steps:?}"
    );
    let mut gaps: Vec<u64> = frames
        .windows(2)
        .map(|w| (w[1].1 - w[0].1) / u64::from(w[1].0 - w[0].0))
        .collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    assert!(
        (25_000..=45_000).contains(&median),
        "median capture spacing {median} µs, want about 33 333 (30 fps): {gaps:?}"
    );
}

#[test]
fn pulled_h264_passes_through_in_order_at_the_cameras_rate() {
    let Some(server) = RtspTestServer::start(&[]) else {
        return;
    };
    let mut source = open(server.url(), RtspTransport::Tcp, true);
    assert_eq!((source.size(), source.fps().round()), ((640, 480), 30.0));
    assert!(
        source.describe().contains("without re-encoding"),
        "{}",
        source.describe()
    );
    check_order_and_rate(&pull(&mut source, 60));
}

#[test]
fn pulled_h264_decodes_to_pictures_over_udp() {
    let Some(server) = RtspTestServer::start(&[]) else {
        return;
    };
    let mut source = open(server.url(), RtspTransport::Udp, false);
    assert!(
        source.describe().contains("over UDP"),
        "{}",
        source.describe()
    );
    check_order_and_rate(&pull(&mut source, 45));
}

#[test]
fn basic_auth_from_the_url_is_used_and_a_wrong_password_is_refused() {
    auth_from_the_url_is_used_and_a_wrong_password_is_refused(&[]);
}

#[test]
fn digest_auth_from_the_url_is_used_and_a_wrong_password_is_refused() {
    auth_from_the_url_is_used_and_a_wrong_password_is_refused(&["--digest"]);
}

/// The camera asks for the user `cam`, password `s3cret`, with Basic or (`--digest`) Digest.
fn auth_from_the_url_is_used_and_a_wrong_password_is_refused(scheme: &[&str]) {
    let mut args = vec!["--user", "cam", "--password", "s3cret"];
    args.extend_from_slice(scheme);
    let Some(server) = RtspTestServer::start(&args) else {
        return;
    };
    let mut source = open(server.url_with("cam", "s3cret"), RtspTransport::Tcp, true);
    assert_eq!(pull(&mut source, 5).len(), 5);
    let err = RtspSource::open(PullOptions {
        url: server.url_with("cam", "wrong"),
        transport: RtspTransport::Tcp,
        passthrough: true,
        clock: vidcast_testkit::clock(),
        open_timeout: Duration::from_secs(3),
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("Unauthorized"), "{err}");
    assert!(!err.contains("wrong"), "the password is never shown: {err}");
}

/// Reads frames on a thread of its own: (server's frame number, when it arrived).
fn reader(mut source: RtspSource) -> Arc<Mutex<Vec<(u32, Instant)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut decoder = H264Decoder::new().unwrap();
        while let Ok(Some(Captured::H264(unit))) = source.next_captured() {
            if let Ok(Some(frame)) = decoder.decode(&unit.data) {
                log.lock()
                    .unwrap()
                    .push((number_of(&frame), Instant::now()));
            }
            if Arc::strong_count(&log) == 1 {
                return;
            }
        }
    });
    seen
}

#[test]
fn a_camera_killed_and_restarted_resumes_within_3_s_of_its_return() {
    let Some(mut server) = RtspTestServer::start(&[]) else {
        return;
    };
    let source = open(server.url(), RtspTransport::Tcp, true);
    let stats = source.stats();
    let seen = reader(source);
    wait_until("frames before the kill", Duration::from_secs(10), || {
        (seen.lock().unwrap().len() >= 15).then_some(())
    });
    server.kill();
    wait_until("the puller notices", Duration::from_secs(3), || {
        (stats.reconnects.load(Ordering::Relaxed) >= 1).then_some(())
    });
    // Down long enough for the backoff to reach its cap.
    std::thread::sleep(Duration::from_secs(3));
    server.restart();
    let back = Instant::now();
    let resumed = wait_until(
        "a frame after the camera's return",
        Duration::from_secs(3),
        || {
            seen.lock()
                .unwrap()
                .iter()
                .find(|(_, at)| *at > back)
                .map(|(n, at)| (*n, *at - back))
        },
    );
    // The restarted camera counts from 0 again, and the stream starts at a keyframe: its
    // first frames decode.
    assert!(resumed.0 < 200, "{resumed:?}");
}

#[test]
fn a_hung_camera_is_declared_dead_within_3_s_and_pulled_again_when_it_answers() {
    let Some(server) = RtspTestServer::start(&[]) else {
        return;
    };
    let source = open(server.url(), RtspTransport::Tcp, true);
    let stats = source.stats();
    let seen = reader(source);
    wait_until("frames before the hang", Duration::from_secs(10), || {
        (seen.lock().unwrap().len() >= 15).then_some(())
    });
    server.pause();
    wait_until("the hang is noticed", Duration::from_secs(3), || {
        (stats.reconnects.load(Ordering::Relaxed) >= 1).then_some(())
    });
    server.resume();
    let back = Instant::now();
    wait_until("frames again", Duration::from_secs(15), || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, at)| *at > back)
            .then_some(())
    });
}
