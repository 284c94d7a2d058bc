//! The decoder never allocates from an untrusted length: measured with a counting allocator.
//!
//! Only allocations made by the measuring thread inside `measure` are counted, so the test
//! harness's other threads do not disturb the numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use bytes::BytesMut;
use vidcast_legacy::cases::{self, CASE_MAX_FRAME_BYTES};
use vidcast_legacy::{encode_frame, LegacyDecoder, LegacyError, LegacyFrame};

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(grow: i64, request: usize) {
    if MEASURING.with(Cell::get) {
        let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
        PEAK.fetch_max(live, Ordering::Relaxed);
        LARGEST.fetch_max(request, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64), 0);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64, new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak live bytes and largest single request made by `f` on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (T, i64, usize) {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    (
        out,
        PEAK.load(Ordering::Relaxed),
        LARGEST.load(Ordering::Relaxed),
    )
}

/// The reader's own bookkeeping (stack, memo, marks, error text) stays under this.
const OVERHEAD: i64 = 16 << 10;

/// Feeds `chunks` one by one, measuring only the decoder; returns frames, error, peak, largest.
fn decode_measured(
    chunks: &[&[u8]],
    max: u32,
) -> (Vec<LegacyFrame>, Option<LegacyError>, i64, usize) {
    let mut decoder = LegacyDecoder::new(max);
    let mut buf = BytesMut::with_capacity(chunks.iter().map(|c| c.len()).sum());
    let mut frames = Vec::with_capacity(16);
    let (mut peak, mut largest) = (0, 0);
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let (r, p, l) = measure(|| decoder.decode(&mut buf));
            peak = peak.max(p);
            largest = largest.max(l);
            match r {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e), peak, largest),
            }
        }
    }
    (frames, None, peak, largest)
}

#[test]
fn decoder_allocates_no_more_than_the_bytes_present() {
    // The counter sees allocations at all.
    let (v, peak, largest) = measure(|| vec![1u8; 1 << 20]);
    assert!(peak >= 1 << 20 && largest >= 1 << 20 && v.len() == 1 << 20);

    // Every case in the table, whole: pixels at most, never a claimed length.
    for case in cases::all() {
        let (_, _, peak, largest) = decode_measured(&[&case.bytes], CASE_MAX_FRAME_BYTES);
        let bound = case.bytes.len() as i64 + OVERHEAD;
        assert!(peak <= bound, "{}: peak {peak} > {bound}", case.name);
        assert!(
            largest as i64 <= bound,
            "{}: one allocation of {largest}",
            case.name
        );
    }

    // Claims far past what arrived, under a generous 64 MiB limit.
    let limit = 64 << 20;
    let claim = |pickle: &[u8], declared: u64| {
        let mut b = declared.to_le_bytes().to_vec();
        b.extend_from_slice(pickle);
        b
    };
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("u64 length 2^63", claim(b"", 1 << 63)),
        (
            "BINBYTES8 of 4 GiB",
            claim(b"\x80\x04\x8e\x00\x00\x00\x00\x01\x00\x00\x00", 60 << 20),
        ),
        (
            "BINBYTES8 of 50 MiB, 10 bytes sent",
            claim(b"\x80\x04\x8e\x00\x00\x20\x03\x00\x00\x00\x00", 60 << 20),
        ),
        (
            "BYTEARRAY8 of u64::MAX",
            claim(b"\x80\x05\x96\xff\xff\xff\xff\xff\xff\xff\xff", 60 << 20),
        ),
        (
            "BINUNICODE of 4 GiB - 1",
            claim(b"\x80\x02X\xff\xff\xff\xff", 60 << 20),
        ),
        (
            "FRAME of 2^62",
            claim(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x40", 60 << 20),
        ),
        (
            "LONG_BINPUT 4 billion",
            claim(b"\x80\x02Nr\xff\xff\xff\xff", 60 << 20),
        ),
        (
            "100k MARKs",
            claim(&[&b"\x80\x02"[..], &[b'('; 100_000]].concat(), 100_002),
        ),
        (
            "100k nested tuples",
            claim(&[&b"\x80\x02)"[..], &[0x85; 100_000]].concat(), 100_003),
        ),
    ];
    for (name, bytes) in hostile {
        for chunk in [bytes.len(), 7] {
            let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
            let (frames, _, peak, largest) = decode_measured(&chunks, limit);
            assert!(frames.is_empty(), "{name}");
            assert!(peak <= OVERHEAD, "{name}: peak {peak}");
            assert!(
                largest as i64 <= OVERHEAD,
                "{name}: one allocation of {largest}"
            );
        }
    }

    // A real 640x480 frame: the pixels, once.
    let px = cases::test_pattern(480, 640);
    let bytes = encode_frame(640, 480, &px).expect("valid size");
    let chunks: Vec<&[u8]> = bytes.chunks(4096).collect();
    let (frames, err, peak, largest) = decode_measured(&chunks, limit);
    assert_eq!(err, None);
    assert!(frames.len() == 1 && frames[0].bgr == px);
    assert!(peak <= px.len() as i64 + OVERHEAD, "peak {peak}");
    assert!(largest <= px.len(), "one allocation of {largest}");
}
