//! Golden tests against real Python and numpy, through `tests/numpy_pickles.py`.
//!
//! `python3` must have numpy (`scripts/test` installs it). Under `CI=true` a missing one fails
//! the tests; elsewhere they print SKIPPED and pass. numpy 1.x is tested too when
//! `VIDCAST_NUMPY1_PYTHON` names a Python that has it (`scripts/test` makes one in a venv).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::BytesMut;

use crate::cases::{pattern_frame, test_pattern, to_fortran};
use crate::writer::{pickle_array, with_len_prefix, Flavor};
use crate::{encode_frame, LegacyDecoder, LegacyFrame, LEN_PREFIX};

const NUMPY1_VAR: &str = "VIDCAST_NUMPY1_PYTHON";

struct Python {
    exe: String,
    numpy_major: u32,
    version: String,
}

impl Python {
    fn probe(exe: &str) -> Result<Python, String> {
        let out = Command::new(exe)
            .arg(script())
            .arg("version")
            .output()
            .map_err(|e| format!("cannot run {exe}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{exe} has no working numpy: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let numpy_major = version
            .strip_prefix("numpy ")
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("unexpected version line {version:?}"))?;
        Ok(Python {
            exe: exe.to_string(),
            numpy_major,
            version,
        })
    }

    /// `numpy_pickles.py cmd specs...` with `stdin`; its stdout, or a panic with its stderr.
    fn run(&self, cmd: &str, specs: &[String], stdin: &[u8]) -> Vec<u8> {
        let mut child = Command::new(&self.exe)
            .arg(script())
            .arg(cmd)
            .args(specs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let mut input = child.stdin.take().expect("piped stdin");
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || input.write_all(&stdin));
        let out = child.wait_with_output().expect("python runs");
        writer
            .join()
            .expect("writer thread")
            .expect("write to python");
        assert!(
            out.status.success(),
            "{} {cmd} failed ({}): {}",
            self.exe,
            self.version,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn flavor(&self, protocol: u8, is_readonly: bool) -> Flavor {
        Flavor {
            protocol,
            is_numpy2: self.numpy_major >= 2,
            is_readonly,
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/numpy_pickles.py")
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The Pythons to test against; fails under CI when python3 has no numpy.
fn pythons() -> Vec<Python> {
    let mut found = Vec::new();
    match Python::probe("python3") {
        Ok(p) => found.push(p),
        Err(e) if is_ci() => panic!("CI needs python3 with numpy (scripts/test installs it): {e}"),
        Err(e) => eprintln!("SKIPPED: golden tests against python3: {e}"),
    }
    match std::env::var(NUMPY1_VAR) {
        Ok(exe) => {
            let p = Python::probe(&exe).unwrap_or_else(|e| panic!("{NUMPY1_VAR}: {e}"));
            assert_eq!(p.numpy_major, 1, "{NUMPY1_VAR} has {}", p.version);
            found.push(p);
        }
        Err(_) => eprintln!("NOTE: numpy 1.x not tested: {NUMPY1_VAR} is not set"),
    }
    for p in &found {
        eprintln!("testing against {} ({})", p.exe, p.version);
    }
    found
}

fn spec(h: u32, w: u32, order: char, protocol: u8, readonly: bool) -> String {
    format!(
        "{h}x{w}:{order}:{protocol}{}",
        if readonly { ":ro" } else { "" }
    )
}

fn parse_spec(s: &str) -> (u32, u32) {
    let dims = s.split(':').next().expect("shape");
    let (h, w) = dims.split_once('x').expect("HxW");
    (h.parse().expect("h"), w.parse().expect("w"))
}

/// Splits a legacy stream into its frames (length prefixes included).
fn split_frames(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let len = u64::from_le_bytes(stream[..LEN_PREFIX].try_into().expect("8 bytes")) as usize;
        let (frame, rest) = stream.split_at(LEN_PREFIX + len);
        frames.push(frame);
        stream = rest;
    }
    frames
}

fn decode_in_chunks(stream: &[u8], chunk: usize) -> Vec<LegacyFrame> {
    let mut decoder = LegacyDecoder::new(16 << 20);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(f) = decoder.decode(&mut buf).expect("python's frames decode") {
            frames.push(f);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

const SHAPES: [(u32, u32); 5] = [(1, 1), (2, 3), (3, 2), (286, 380), (480, 640)];

#[test]
fn python_pickles_decode_pixel_exact() {
    for py in pythons() {
        let mut specs = Vec::new();
        for (h, w) in SHAPES {
            for order in ['C', 'F'] {
                for protocol in 2..=5 {
                    specs.push(spec(h, w, order, protocol, false));
                }
            }
            specs.push(spec(h, w, 'C', 5, true));
            specs.push(spec(h, w, 'S', 4, false)); // not contiguous: _reconstruct path
            specs.push(spec(h, w, 'S', 5, false));
        }
        let stream = py.run("dump", &specs, &[]);
        // 4096: the original server's recv size; 1: every pickle opcode split.
        for chunk in [stream.len(), 4096, 1000] {
            let frames = decode_in_chunks(&stream, chunk);
            assert_eq!(frames.len(), specs.len());
            for (f, s) in frames.iter().zip(&specs) {
                let (h, w) = parse_spec(s);
                assert!(
                    *f == pattern_frame(h, w),
                    "{s} from {} differs (chunks of {chunk})",
                    py.version
                );
            }
        }
        let small: Vec<&[u8]> = split_frames(&stream)
            .into_iter()
            .filter(|f| f.len() < 1024)
            .collect();
        for f in small {
            assert_eq!(decode_in_chunks(f, 1).len(), 1);
        }
    }
}

#[test]
fn writer_matches_python_byte_for_byte() {
    for py in pythons() {
        let mut shapes = SHAPES.to_vec();
        // Pickle framing edges: data just under, at and over 64 KiB.
        shapes.extend([(1, 21780), (1, 21812), (1, 21830), (1, 21845), (1, 21846)]);
        shapes.push((2, 10923));
        let mut specs = Vec::new();
        for &(h, w) in &shapes {
            for order in ['C', 'F'] {
                for protocol in 2..=5 {
                    specs.push(spec(h, w, order, protocol, false));
                }
            }
            specs.push(spec(h, w, 'C', 5, true));
            specs.push(spec(h, w, 'F', 5, true));
        }
        let stream = py.run("dump", &specs, &[]);
        let frames = split_frames(&stream);
        assert_eq!(frames.len(), specs.len());
        for (theirs, s) in frames.iter().zip(&specs) {
            let (h, w) = parse_spec(s);
            let mut parts = s.split(':').skip(1);
            let order = parts.next().expect("order");
            let protocol: u8 = parts.next().expect("protocol").parse().expect("number");
            let readonly = parts.next() == Some("ro");
            let is_fortran = order == "F" && (h > 1 || w > 1);
            let c = test_pattern(h, w);
            let data = if is_fortran { to_fortran(&c, h, w) } else { c };
            let ours = with_len_prefix(&pickle_array(
                py.flavor(protocol, readonly),
                &[h, w, 3],
                is_fortran,
                &data,
            ));
            if ours != *theirs {
                let at = ours
                    .iter()
                    .zip(theirs.iter())
                    .take_while(|(a, b)| a == b)
                    .count();
                panic!(
                    "{s} under {}: our pickle ({} bytes) differs from Python's ({} bytes) at byte {at}",
                    py.version,
                    ours.len(),
                    theirs.len()
                );
            }
            if py.numpy_major == 1 && protocol == 4 && order == "C" && !readonly {
                assert_eq!(encode_frame(w, h, &test_pattern(h, w)).unwrap(), *theirs);
            }
        }
    }
}

#[test]
fn python_unpickles_what_encode_frame_writes() {
    for py in pythons() {
        let mut stream = Vec::new();
        let mut specs = Vec::new();
        for (h, w) in SHAPES.iter().copied().chain([(1, 21846)]) {
            stream.extend(encode_frame(w, h, &test_pattern(h, w)).unwrap());
            specs.push(spec(h, w, 'C', 4, false));
        }
        let out = py.run("load", &specs, &stream);
        assert_eq!(
            String::from_utf8_lossy(&out).trim(),
            format!("{} frames ok", specs.len())
        );
    }
}
