//! The native window under Xvfb: `vidcast view` and `vidcast serve --window` against real
//! publishers, checked on a screenshot of the X screen (`xwd`, parsed here): one label box per
//! stream in its exact colour and size, with a non-blank picture under it.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::BufRead;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{api, free_port, run, vidcast, Server};
use vidcast_testkit::require_tool;
use vidcast_viewer::mosaic::{
    draw_label_at, label_color, label_size, label_text, Canvas, LABEL_PAD, LABEL_TEXT,
};

/// An Xvfb server on a display number it picked itself (`-displayfd`); killed by PID on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Option<Self> {
        require_tool("Xvfb", "xvfb")?;
        require_tool("xwd", "x11-apps")?;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fresh descriptors; both are owned below.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the descriptors are new and owned by nobody else.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Xvfb must inherit the write end: clear its close-on-exec flag.
        // SAFETY: fcntl on a descriptor we own.
        assert_eq!(unsafe { libc::fcntl(fds[1], libc::F_SETFD, 0) }, 0);
        let child = Command::new("Xvfb")
            .args(["-displayfd", &fds[1].to_string()])
            .args(["-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn Xvfb");
        drop(write_end);
        // Xvfb writes the display number and a newline once it accepts connections.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // One line, not to EOF: children other tests spawn meanwhile inherit the write
            // end too (it cannot be close-on-exec for Xvfb), and would hold EOF back.
            let mut text = String::new();
            let _ = std::io::BufReader::new(std::fs::File::from(read_end)).read_line(&mut text);
            let _ = tx.send(text);
        });
        let mut xvfb = Self {
            child,
            display: String::new(),
        };
        let number = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("Xvfb reports its display within 20 s");
        let number = number.trim();
        assert!(!number.is_empty(), "Xvfb exited without a display");
        xvfb.display = format!(":{number}");
        Some(xvfb)
    }
}

impl Xvfb {
    /// `vidcast view ARGS` on this display.
    fn view(&self, args: &[&str]) -> Child {
        vidcast()
            .arg("view")
            .args(args)
            .env("DISPLAY", &self.display)
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn view")
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Children killed (by PID) when the test ends, passing or not.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The root window as RGB, from `xwd -root`'s XWD file (X11 `XWDFileHeader`: 25 big-endian
/// u32 fields, the window name, the colour map, then the pixels).
struct Screenshot {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Screenshot {
    fn take(display: &str) -> Self {
        let out = Command::new("xwd")
            .args(["-root", "-silent", "-display", display])
            .output()
            .expect("run xwd");
        assert!(
            out.status.success(),
            "xwd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::parse(&out.stdout)
    }

    fn parse(d: &[u8]) -> Self {
        let field = |i: usize| u32::from_be_bytes(d[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
        let (header_size, width, height) = (field(0), field(4), field(5));
        let (byte_order, bits_per_pixel, bytes_per_line) = (field(7), field(11), field(12));
        let (red_mask, green_mask, blue_mask, ncolors) =
            (field(14), field(15), field(16), field(19));
        assert_eq!(bits_per_pixel, 32, "a 24-bit TrueColor screen");
        let channel = |v: usize, mask: usize| ((v & mask) >> mask.trailing_zeros()) as u8;
        let start = header_size + ncolors * 12;
        let mut rgb = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let at = start + y * bytes_per_line + x * 4;
                let b: [u8; 4] = d[at..at + 4].try_into().unwrap();
                let v = if byte_order == 0 {
                    u32::from_le_bytes(b)
                } else {
                    u32::from_be_bytes(b)
                } as usize;
                rgb.push([
                    channel(v, red_mask),
                    channel(v, green_mask),
                    channel(v, blue_mask),
                ]);
            }
        }
        Self { width, height, rgb }
    }

    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }

    /// The top-left corner of a `w` x `h` label box of `color`: its padding band is solid
    /// colour on all four sides and white text is inside.
    fn find_label(&self, color: [u8; 3], w: usize, h: usize) -> Option<(usize, usize)> {
        let pad = LABEL_PAD as usize;
        for y in 0..self.height.saturating_sub(h) {
            for x in 0..self.width.saturating_sub(w) {
                if self.at(x, y) != color {
                    continue;
                }
                let solid = |x0: usize, y0: usize, bw: usize, bh: usize| {
                    (y0..y0 + bh).all(|yy| (x0..x0 + bw).all(|xx| self.at(xx, yy) == color))
                };
                let framed = solid(x, y, w, pad)
                    && solid(x, y + h - pad, w, pad)
                    && solid(x, y, pad, h)
                    && solid(x + w - pad, y, pad, h);
                let white = (y..y + h)
                    .flat_map(|yy| (x..x + w).map(move |xx| (xx, yy)))
                    .filter(|&(xx, yy)| self.at(xx, yy) == LABEL_TEXT)
                    .count();
                if framed && white > 40 {
                    return Some((x, y));
                }
            }
        }
        None
    }

    /// How many different colours a rectangle holds (a test pattern has many, a blank tile 1).
    fn colours(&self, x: usize, y: usize, w: usize, h: usize) -> usize {
        let mut seen = std::collections::HashSet::new();
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                seen.insert(self.at(xx, yy));
            }
        }
        seen.len()
    }
}

/// Checks that every stream in `streams` (from `/api/streams`) is on screen: its label box in
/// its colour and size, and a picture with detail right below it. Gives each label's corner.
fn check_tiles(
    shot: &Screenshot,
    streams: &[serde_json::Value],
) -> Result<Vec<(usize, usize)>, String> {
    let mut corners = Vec::new();
    for s in streams {
        let id = s["id"].as_u64().unwrap();
        let text = label_text(s["peer"].as_str().unwrap(), s["name"].as_str().unwrap());
        let (w, h) = label_size(&text);
        let (w, h) = (w as usize, h as usize);
        let Some((x, y)) = shot.find_label(label_color(id), w, h) else {
            return Err(format!(
                "no {:?} label box {w}x{h} for {text:?}",
                label_color(id)
            ));
        };
        // Pixel for pixel the box the mosaic draws for this text: the right words, not only
        // a box of the right size.
        let mut expected = Canvas::new(w as u32, h as u32);
        draw_label_at(&mut expected, 0, 0, &text, label_color(id));
        let wrong = (0..h)
            .flat_map(|yy| (0..w).map(move |xx| (xx, yy)))
            .filter(|&(xx, yy)| shot.at(x + xx, y + yy) != expected.pixel(xx as u32, yy as u32))
            .count();
        if wrong > 0 {
            return Err(format!(
                "the label at ({x},{y}) is not {text:?}: {wrong} pixels differ"
            ));
        }
        let colours = shot.colours(x, y + h, w, 40);
        if colours < 10 {
            return Err(format!(
                "the tile under {text:?} at ({x},{y}) is blank ({colours} colours)"
            ));
        }
        corners.push((x, y));
    }
    Ok(corners)
}

/// Polls screenshots until `check_tiles` passes or `limit` passes; each label's corner.
fn wait_for_tiles(
    display: &str,
    streams: &[serde_json::Value],
    limit: Duration,
) -> Vec<(usize, usize)> {
    let deadline = Instant::now() + limit;
    loop {
        let shot = Screenshot::take(display);
        match check_tiles(&shot, streams) {
            Ok(corners) => return corners,
            Err(why) if Instant::now() > deadline => panic!("after {limit:?}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn start_senders(ingest: &str, names: &[&str]) -> Children {
    start_senders_with(ingest, names, &[])
}

/// [`start_senders`] with more `vidcast send` flags.
fn start_senders_with(ingest: &str, names: &[&str], extra: &[&str]) -> Children {
    let mut children = Children::default();
    for name in names {
        let child = vidcast()
            .args([
                "send", "--name", name, "--width", "320", "--height", "240", "--fps", "10",
            ])
            .args(extra)
            .arg(ingest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn send");
        children.0.push(child);
    }
    children
}

/// `/api/streams` once `n` streams are live.
fn live_streams(http: std::net::SocketAddr, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let streams = api(http, "/api/streams");
        let live: Vec<serde_json::Value> = streams
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["live"] == true)
            .cloned()
            .collect();
        if live.len() == n {
            return live;
        }
        assert!(
            Instant::now() < deadline,
            "{n} live streams within 20 s: {streams}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vidcast serve` with one `vidcast send` per name, once all are live: the hub, its ingest
/// address, the streams as `/api/streams` lists them, and the senders.
fn hub_with_senders(names: &[&str]) -> (Server, String, Vec<serde_json::Value>, Children) {
    hub_with_senders_with(names, &[])
}

/// [`hub_with_senders`] with more `vidcast send` flags.
fn hub_with_senders_with(
    names: &[&str],
    extra: &[&str],
) -> (Server, String, Vec<serde_json::Value>, Children) {
    let mut server = Server::start();
    let ingest = server
        .addr_after("hub listening for clients on ")
        .to_string();
    let http = server.addr_after("web wall on http://");
    let children = start_senders_with(&ingest, names, extra);
    let streams = live_streams(http, names.len());
    (server, ingest, streams, children)
}

#[test]
fn view_shows_three_labelled_non_blank_streams_in_one_window() {
    let Some(xvfb) = Xvfb::start() else { return };
    let (mut server, ingest, streams, mut children) =
        hub_with_senders(&["cam-a", "cam-b", "cam-c"]);
    children.0.push(xvfb.view(&["--size", "960x540", &ingest]));
    wait_for_tiles(&xvfb.display, &streams, Duration::from_secs(30));
    server.wait_line("viewer 127.0.0.1:", Duration::from_secs(5));
    // Still running: it quits only on q, Escape or a signal.
    assert!(children.0.last_mut().unwrap().try_wait().unwrap().is_none());
}

#[test]
fn view_plays_h264_streams() {
    let Some(xvfb) = Xvfb::start() else { return };
    let (_server, ingest, streams, mut children) =
        hub_with_senders_with(&["h264-a", "h264-b"], &["--codec", "h264"]);
    assert!(streams.iter().all(|s| s["codec"] == "h264"), "{streams:?}");
    children.0.push(xvfb.view(&["--size", "960x540", &ingest]));
    // The hub asks for a keyframe when the viewer joins, so pictures come at once.
    wait_for_tiles(&xvfb.display, &streams, Duration::from_secs(30));
}

#[test]
fn view_per_client_opens_one_labelled_window_per_client() {
    let Some(xvfb) = Xvfb::start() else { return };
    let (_server, ingest, streams, mut children) = hub_with_senders(&["cam-p", "cam-q"]);
    children.0.push(xvfb.view(&["--per-client", &ingest]));
    let corners = wait_for_tiles(&xvfb.display, &streams, Duration::from_secs(30));
    // Each window is its client's picture size (320x240), side by side: the two label boxes
    // sit at different places, not stacked in one spot.
    assert!(corners[0].0.abs_diff(corners[1].0) >= 320, "{corners:?}");
}

#[test]
fn view_reconnects_when_the_hub_restarts() {
    let Some(xvfb) = Xvfb::start() else { return };
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["serve", "--listen", &listen, "--http", "127.0.0.1:0"];
    let mut server = Server::start_with(&args);
    let http = server.addr_after("web wall on http://");
    let mut children = start_senders(&listen, &["cam-r"]);
    let before = live_streams(http, 1);
    children
        .0
        .push(xvfb.view(&["--size", "640x480", "--max-backoff", "500ms", &listen]));
    wait_for_tiles(&xvfb.display, &before, Duration::from_secs(30));
    let status = server.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert!(status.success());
    // The same port again: the sender and the viewer find it by themselves.
    let mut server = Server::start_with(&args);
    let http = server.addr_after("web wall on http://");
    server.wait_line("viewer 127.0.0.1:", Duration::from_secs(20));
    let after = live_streams(http, 1);
    assert_ne!(
        after[0]["peer"], before[0]["peer"],
        "the sender reconnected"
    );
    // The label now names the sender's new address: drawn from the new hub's data.
    wait_for_tiles(&xvfb.display, &after, Duration::from_secs(30));
}

#[test]
fn serve_window_shows_its_own_streams_without_a_tcp_viewer() {
    let Some(xvfb) = Xvfb::start() else { return };
    let mut server = Server::start_with_env(
        &[
            "serve",
            "--window",
            "--size",
            "800x600",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
        &[("DISPLAY", xvfb.display.as_str())],
    );
    let ingest = server
        .addr_after("hub listening for clients on ")
        .to_string();
    let http = server.addr_after("web wall on http://");
    let _senders = start_senders(&ingest, &["cam-x", "cam-y"]);
    let streams = live_streams(http, 2);
    wait_for_tiles(&xvfb.display, &streams, Duration::from_secs(30));
    let status = server.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert!(
        status.success(),
        "serve --window exits cleanly on SIGTERM: {status}"
    );
}

#[test]
fn without_a_display_view_and_serve_window_say_so_in_one_line() {
    for args in [
        &["view", "127.0.0.1:9"][..],
        &[
            "serve",
            "--window",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "off",
        ][..],
    ] {
        let out = run(
            vidcast()
                .args(args)
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY"),
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("no display"), "{stderr}");
        assert!(!stderr.contains("panic"), "{stderr}");
    }
}

#[test]
fn view_with_a_wrong_token_stops_with_the_hubs_reason() {
    let Some(xvfb) = Xvfb::start() else { return };
    let mut server = Server::start_with(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--token",
        "s3cret",
    ]);
    let ingest = server
        .addr_after("hub listening for clients on ")
        .to_string();
    let out = run(
        vidcast()
            .args(["view", "--token", "wrong", &ingest])
            .env("DISPLAY", &xvfb.display)
            .env_remove("VIDCAST_TOKEN"),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused this viewer (Unauthorized): wrong token"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret") && !stderr.contains("panic"),
        "{stderr}"
    );
    server.wait_line("refused: wrong token", Duration::from_secs(5));
}
