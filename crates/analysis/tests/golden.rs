//! Golden tests: small committed captures, one per link type and container variant, each with
//! a readable text twin (tshark's one-line summary and capinfos) and the expected analysis.
//!
//! The captures are made by `vidcast_analysis::synth` from one scripted conversation that
//! exercises every analysis rule (see `synth::conversation`). To regenerate after a deliberate
//! change, run `VIDCAST_REGENERATE_FIXTURES=1 cargo test -p vidcast-analysis --test golden`
//! (needs tshark and capinfos for the twins) and review the diff.

// Helpers outside #[test] functions unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use vidcast_analysis::capture::LinkType;
use vidcast_analysis::graph::{self, Graph};
use vidcast_analysis::series::ConnectionSeries;
use vidcast_analysis::summary::ConnectionSummary;
use vidcast_analysis::synth::{self, Frame, NgInterface};
use vidcast_analysis::{scan, CaptureReader};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn v4() -> (SocketAddr, SocketAddr, SocketAddr) {
    (
        "192.0.2.10:40312".parse().unwrap(),
        "192.0.2.1:9999".parse().unwrap(),
        "192.0.2.11:40313".parse().unwrap(),
    )
}

fn v6() -> (SocketAddr, SocketAddr, SocketAddr) {
    (
        "[2001:db8::10]:40312".parse().unwrap(),
        "[2001:db8::1]:9999".parse().unwrap(),
        "[2001:db8::11]:40313".parse().unwrap(),
    )
}

fn frames(
    (a, b, c): (SocketAddr, SocketAddr, SocketAddr),
    isn: u32,
    link: LinkType,
    vlan: Option<u16>,
) -> Vec<Frame> {
    synth::conversation(a, b, c, isn)
        .iter()
        .map(|p| Frame {
            ts: p.ts,
            interface: u32::from(p.src == c || p.dst == c),
            bytes: synth::encapsulate(link, &p.ip_bytes(), vlan),
        })
        .collect()
}

const ISN: u32 = 1_000_000;

/// Every fixture: name and how it is made.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let eth = synth::pcap(
        LinkType::ETHERNET,
        false,
        false,
        65535,
        &frames(v4(), ISN, LinkType::ETHERNET, None),
    );
    let mut truncated = eth.clone();
    truncated.truncate(eth.len() - 300);
    // Damage the 20th record's caplen: records before it are 16 + frame bytes each.
    let mut corrupt = eth.clone();
    let mut at = 24;
    for f in frames(v4(), ISN, LinkType::ETHERNET, None).iter().take(19) {
        at += 16 + f.bytes.len();
    }
    corrupt[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    vec![
        ("ethernet_ipv4", eth),
        (
            "ethernet_vlan_ipv6_ns_be",
            synth::pcap(
                LinkType::ETHERNET,
                true,
                true,
                65535,
                &frames(v6(), ISN, LinkType::ETHERNET, Some(100)),
            ),
        ),
        (
            "linux_sll_snap96",
            synth::pcap(
                LinkType::LINUX_SLL,
                false,
                false,
                96,
                &frames(v4(), ISN, LinkType::LINUX_SLL, None),
            ),
        ),
        (
            "linux_sll2_ipv6_ns",
            synth::pcap(
                LinkType::LINUX_SLL2,
                true,
                false,
                65535,
                &frames(v6(), ISN, LinkType::LINUX_SLL2, None),
            ),
        ),
        (
            "raw_ip_be_snap80",
            synth::pcap(
                LinkType::RAW,
                false,
                true,
                80,
                &frames(v4(), ISN, LinkType::RAW, None),
            ),
        ),
        (
            "null_bsd_loopback",
            synth::pcap(
                LinkType::NULL,
                false,
                false,
                65535,
                &frames(v4(), ISN, LinkType::NULL, None),
            ),
        ),
        (
            "loop_openbsd_ipv6",
            synth::pcap(
                LinkType::LOOP,
                false,
                true,
                65535,
                &frames(v6(), ISN, LinkType::LOOP, None),
            ),
        ),
        (
            "wraparound_raw_ip",
            synth::pcap(
                LinkType::RAW,
                false,
                false,
                65535,
                &frames(v4(), u32::MAX - 5000, LinkType::RAW, None),
            ),
        ),
        ("multi_interface", multi_interface(false)),
        ("multi_interface_be", multi_interface(true)),
        ("truncated", truncated),
        ("corrupt", corrupt),
    ]
}

/// pcapng, two interfaces: Ethernet with ns timestamps (the main connection) and raw IP with
/// binary 2^-20 s timestamps and a snaplen of 64 (the second connection).
fn multi_interface(is_big_endian: bool) -> Vec<u8> {
    let (a, b, c) = v4();
    let frames: Vec<Frame> = synth::conversation(a, b, c, ISN)
        .iter()
        .map(|p| {
            let is_second = p.src == c || p.dst == c;
            let link = if is_second {
                LinkType::RAW
            } else {
                LinkType::ETHERNET
            };
            Frame {
                ts: p.ts,
                interface: u32::from(is_second),
                bytes: synth::encapsulate(link, &p.ip_bytes(), None),
            }
        })
        .collect();
    synth::pcapng(
        &[
            NgInterface {
                link: LinkType::ETHERNET,
                tsresol: 9,
                snaplen: 65535,
            },
            NgInterface {
                link: LinkType::RAW,
                tsresol: 0x80 | 20,
                snaplen: 64,
            },
        ],
        &frames,
        is_big_endian,
    )
}

fn file_name(name: &str, bytes: &[u8]) -> String {
    let is_ng = bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]);
    format!("{name}.{}", if is_ng { "pcapng" } else { "pcap" })
}

/// The analysis of a capture file as the golden JSON records it.
fn analyze(path: &Path) -> Value {
    let mut reader = CaptureReader::open(path).expect("opens");
    let s = scan(&mut reader, |_, _| {}).expect("is a capture");
    let conns: Vec<ConnectionSummary> = s
        .table
        .connections()
        .iter()
        .map(ConnectionSummary::new)
        .collect();
    json!({
        "packets": s.packets,
        "tcp_packets": s.tcp_packets,
        "error": s.error.map(|e| e.to_string()),
        "connections": conns,
    })
}

fn is_regenerating() -> bool {
    std::env::var_os("VIDCAST_REGENERATE_FIXTURES").is_some()
}

/// tshark's and capinfos' view of a capture, the readable twin.
fn twin(path: &Path) -> String {
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd
            .current_dir(dir)
            .env("TZ", "UTC")
            .output()
            .expect("tshark and capinfos are needed to regenerate the twins");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let info = run(Command::new("capinfos")
        .args(["-t", "-E", "-c", "-l", "-u"])
        .arg(name));
    let packets = run(Command::new("tshark")
        .args([
            "-n",
            "-t",
            "e",
            "-o",
            "tcp.relative_sequence_numbers:TRUE",
            "-r",
        ])
        .arg(name));
    format!("# capinfos -t -E -c -l -u\n{info}\n# tshark -n -t e -r\n{packets}")
}

#[test]
fn fixtures_match_their_generator_and_their_expected_analysis() {
    let dir = fixtures();
    for (name, bytes) in cases() {
        let path = dir.join(file_name(name, &bytes));
        assert!(bytes.len() < 100_000, "{name} is too large for a fixture");
        if is_regenerating() {
            std::fs::write(&path, &bytes).unwrap();
            let analysis = serde_json::to_string_pretty(&analyze(&path)).unwrap() + "\n";
            std::fs::write(dir.join(format!("{name}.expected.json")), analysis).unwrap();
            std::fs::write(dir.join(format!("{name}.txt")), twin(&path)).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(
            committed == bytes,
            "{name}: the committed fixture differs from what synth makes; regenerate (see the top of this file)"
        );
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(analyze(&path), expected, "{name}");
    }
}

/// An analysis without what differs between encapsulations: addresses (IPv4 or IPv6; ports
/// stay) and frame bytes (link header sizes).
fn strip_addresses_and_bytes(mut v: Value) -> Value {
    for c in v["connections"].as_array_mut().unwrap() {
        let c = c.as_object_mut().unwrap();
        for k in ["a", "b"] {
            let addr: SocketAddr = c[k].as_str().unwrap().parse().unwrap();
            c.insert(k.into(), json!(addr.port()));
        }
        for d in ["a_to_b", "b_to_a"] {
            c[d].as_object_mut().unwrap().remove("bytes");
        }
    }
    v
}

/// Every link type and container gives the same connections as plain Ethernet pcap: only the
/// byte counts (link header sizes) may differ.
#[test]
fn all_encapsulations_agree_on_the_tcp_analysis() {
    let strip = strip_addresses_and_bytes;
    let dir = fixtures();
    let reference = strip(analyze(&dir.join("ethernet_ipv4.pcap")));
    for (name, bytes) in cases() {
        // The multi-interface files use 2^-20 s timestamps for one connection: times differ by
        // under a microsecond there, so they are left to their own golden files.
        if matches!(
            name,
            "truncated"
                | "corrupt"
                | "wraparound_raw_ip"
                | "multi_interface"
                | "multi_interface_be"
        ) {
            continue;
        }
        let path = std::env::temp_dir().join(format!(
            "vidcast-golden-{}-{}",
            std::process::id(),
            file_name(name, &bytes)
        ));
        std::fs::write(&path, &bytes).unwrap();
        let got = strip(analyze(&path));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got, reference, "{name}");
    }
}

#[test]
fn the_scripted_conversation_is_classified_as_scripted() {
    let v = analyze(&fixtures().join("ethernet_ipv4.pcap"));
    let c = &v["connections"][0];
    assert_eq!(c["a"], "192.0.2.10:40312");
    let ab = &c["a_to_b"];
    // One fast, one timeout, one spurious retransmission; one out-of-order segment.
    assert_eq!(ab["retransmissions"], 3);
    assert_eq!(ab["fast_retransmissions"], 1);
    assert_eq!(ab["spurious_retransmissions"], 1);
    assert_eq!(ab["out_of_order"], 1);
    assert_eq!(ab["retransmitted_bytes"], 3000);
    let ba = &c["b_to_a"];
    assert_eq!(
        (ba["dup_acks"].as_u64(), ba["zero_window"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(c["b_to_a"]["payload_bytes"], 100);
    // 13 data segments of 1000 bytes sent a→b.
    assert_eq!(ab["payload_bytes"], 13_000);
    assert_eq!(v["connections"][1]["a_to_b"]["payload_bytes"], 200);
}

#[test]
fn truncated_and_corrupt_captures_report_the_offset_and_keep_the_results_so_far() {
    let t = analyze(&fixtures().join("truncated.pcap"));
    let err = t["error"].as_str().unwrap();
    // 300 bytes cut: the last four 70-byte records and the end of the 33rd (1070 bytes), whose
    // headers were still read.
    let cut_at: usize = 24
        + frames(v4(), ISN, LinkType::ETHERNET, None)
            .iter()
            .take(32)
            .map(|f| 16 + f.bytes.len())
            .sum::<usize>();
    assert!(
        err.contains(&format!(
            "truncated capture: the record at byte offset {cut_at} needs 1070 bytes"
        )),
        "{err}"
    );
    assert_eq!(t["packets"], 33);
    let c = analyze(&fixtures().join("corrupt.pcap"));
    let err = c["error"].as_str().unwrap();
    let at: usize = 24
        + frames(v4(), ISN, LinkType::ETHERNET, None)
            .iter()
            .take(19)
            .map(|f| 16 + f.bytes.len())
            .sum::<usize>();
    assert!(
        err.contains(&format!("corrupt capture at byte offset {at}:")),
        "{err}"
    );
    assert_eq!(c["packets"], 19);
}

fn series_of(path: &Path, conn: usize, absolute: bool) -> ConnectionSeries {
    let mut r = CaptureReader::open(path).unwrap();
    let first = scan(&mut r, |_, _| {}).unwrap();
    let mut s = ConnectionSeries::new(&first.table.connections()[conn], absolute);
    let mut r = CaptureReader::open(path).unwrap();
    scan(&mut r, |m, v| {
        if v.conn.0 == conn {
            s.handle(m.ts, v)
        }
    })
    .unwrap();
    s.finish();
    s
}

#[test]
fn stevens_svg_shows_every_segment_the_ack_line_and_the_marks() {
    let s = series_of(&fixtures().join("ethernet_ipv4.pcap"), 0, false);
    let d = &s.dirs[0];
    assert_eq!(
        (
            d.segments.points.len(),
            d.retransmissions.points.len(),
            d.out_of_order.points.len()
        ),
        (9, 3, 1)
    );
    assert_eq!(d.sacks.points.len(), 4);
    // b's one zero-window segment (see the_scripted_conversation_is_classified_as_scripted),
    // marked on a's graph at its ACK.
    assert_eq!(d.zero_windows.points.len(), 1);
    let svg = graph::svg(Graph::Stevens, d).unwrap();
    assert!(
        svg.contains("zero window (1)"),
        "the marker has a legend entry"
    );
    assert_eq!(
        svg.matches("<polygon").count(),
        1 + 1,
        "one triangle per zero window, plus one in the legend"
    );
    assert!(
        svg.contains("Time-sequence (Stevens): 192.0.2.10:40312 → 192.0.2.1:9999"),
        "title names the flow"
    );
    assert!(
        svg.contains("relative sequence number (bytes)")
            && svg.contains("time since connection start (s)")
    );
    // Each segment is one vertical line in its colour, plus one in the legend.
    let count = |stroke: &str| svg.matches(&format!("stroke=\"{stroke}\"")).count();
    assert_eq!(count("#003CDC"), 9 + 1, "data segments");
    assert_eq!(count("#DC0000"), 3 + 1, "retransmissions");
    assert_eq!(count("#00AAC8"), 1 + 1, "out-of-order");
    assert_eq!(count("#A000C8"), 4 + 1, "SACK blocks");
    assert_eq!(count("#009600"), 1 + 1, "the ACK line is one path");
    assert_eq!(count("#E6A000"), 1 + 1, "the window line is one path");
    // Drawn in order: every SACK block before (under) every retransmission; the last of each
    // colour is its legend entry.
    let at = |stroke: &str| -> Vec<usize> {
        let all: Vec<usize> = svg
            .match_indices(&format!("stroke=\"{stroke}\""))
            .map(|(i, _)| i)
            .collect();
        all[..all.len() - 1].to_vec()
    };
    assert!(
        at("#A000C8").iter().max() < at("#DC0000").iter().min(),
        "retransmissions are drawn over the SACK shading"
    );

    for g in Graph::ALL {
        let svg = graph::svg(g, d).unwrap();
        assert!(svg.contains("192.0.2.10:40312 → 192.0.2.1:9999"), "{g:?}");
        let png = graph::png(g, d).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{g:?}");
    }
    let rtt = graph::svg(Graph::Rtt, d).unwrap();
    assert!(rtt.contains("RTT (ms)"));
    assert_eq!(rtt.matches("<circle").count(), d.rtt_ms.points.len() + 1);
    let tp = graph::svg(Graph::Throughput, d).unwrap();
    assert!(tp.contains("throughput (Mbit/s, TCP payload)") && tp.contains("moving average"));
}

#[test]
fn absolute_sequence_numbers_unwrap_past_the_32_bit_boundary() {
    let s = series_of(&fixtures().join("wraparound_raw_ip.pcap"), 0, true);
    let d = &s.dirs[0];
    let isn = i64::from(u32::MAX - 5000);
    assert_eq!(d.isn as i64, isn);
    let last = d.segments.points.iter().map(|p| p.end).max().unwrap();
    assert_eq!(last, isn + 10_001, "unwrapped, not folded back below 2^32");
    let rel = series_of(&fixtures().join("wraparound_raw_ip.pcap"), 0, false);
    assert_eq!(
        rel.dirs[0].segments.points.iter().map(|p| p.end).max(),
        Some(10_001)
    );
}

/// A pcapng packet block whose trailing length differs from its leading one: tshark refuses
/// the file as damaged; we report corruption at the block's offset (keeping what came before).
#[test]
fn pcapng_trailing_length_mismatch_is_corrupt_as_tshark_says() {
    let mut bytes = multi_interface(false);
    // Walk the blocks to the third packet block and damage its trailing length.
    let (mut at, mut packets) = (0usize, 0);
    let damaged_at = loop {
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if kind == 6 {
            packets += 1;
            if packets == 3 {
                bytes[at + len - 4..at + len].copy_from_slice(&(len as u32 + 4).to_le_bytes());
                break at;
            }
        }
        at += len;
    };
    let path = std::env::temp_dir().join(format!(
        "vidcast-golden-trailer-{}.pcapng",
        std::process::id()
    ));
    std::fs::write(&path, &bytes).unwrap();
    let v = analyze(&path);
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains(&format!("corrupt capture at byte offset {damaged_at}"))
            && err.contains("at its start but"),
        "{err}"
    );
    assert_eq!(
        v["packets"], 3,
        "the damaged block's packet is handed out before its end"
    );
    let tshark = Command::new("tshark").arg("-r").arg(&path).output();
    if let Ok(out) = tshark {
        let says = String::from_utf8_lossy(&out.stderr);
        assert!(says.contains("damaged or corrupt"), "tshark: {says}");
    }
    std::fs::remove_file(&path).unwrap();
}

/// A capture larger than a few map windows (8 MiB each: populated ahead, released behind) reads
/// the same memory-mapped as streamed, and the bulk writer's transfers are clean.
#[test]
fn a_mapped_capture_over_several_windows_reads_as_the_stream_does() {
    let mut bytes = Vec::new();
    let packets = synth::bulk_pcap(&mut bytes, 30 << 20, 3).unwrap();
    let path =
        std::env::temp_dir().join(format!("vidcast-golden-bulk-{}.pcap", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let mapped = analyze(&path);
    std::fs::remove_file(&path).unwrap();
    let mut streamed = CaptureReader::new(&bytes[..]);
    let s = scan(&mut streamed, |_, _| {}).unwrap();
    assert_eq!(mapped["packets"], packets);
    assert_eq!(s.packets, packets);
    let conns: Vec<Value> = s
        .table
        .connections()
        .iter()
        .map(|c| serde_json::to_value(ConnectionSummary::new(c)).unwrap())
        .collect();
    assert_eq!(mapped["connections"], Value::from(conns));
    for c in mapped["connections"].as_array().unwrap() {
        assert_eq!(c["a_to_b"]["retransmissions"], 0, "{c}");
        assert!(
            c["a_to_b"]["payload_bytes"].as_u64().unwrap() > 9 << 20,
            "{c}"
        );
    }
}

/// The scripted conversation's frames with `link_header` (given whether the packet is IPv6)
/// in front of each IP packet, as a pcap of `link`.
fn wrapped(
    addrs: (SocketAddr, SocketAddr, SocketAddr),
    link: LinkType,
    link_header: impl Fn(bool) -> Vec<u8>,
) -> Vec<u8> {
    tunnelled(addrs, link, |ip| {
        let mut bytes = link_header(ip[0] >> 4 == 6);
        bytes.extend_from_slice(ip);
        bytes
    })
}

/// The scripted conversation's IP packets, each made a frame by `frame`, as a pcap of `link`.
fn tunnelled(
    (a, b, c): (SocketAddr, SocketAddr, SocketAddr),
    link: LinkType,
    frame: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let frames: Vec<Frame> = synth::conversation(a, b, c, ISN)
        .iter()
        .map(|p| Frame {
            ts: p.ts,
            interface: 0,
            bytes: frame(&p.ip_bytes()),
        })
        .collect();
    synth::pcap(link, false, false, 65535, &frames)
}

/// An Ethernet header (addresses as synth writes them) followed by `rest` (EtherTypes, tags).
fn ethernet(rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    h.extend_from_slice(rest);
    h
}

/// An 802.11 data frame header from an access point (from-DS), QoS or not, and LLC/SNAP.
fn wlan(is_qos: bool, is_v6: bool) -> Vec<u8> {
    let mut h = vec![if is_qos { 0x88 } else { 0x08 }, 0x02, 0, 0];
    h.extend_from_slice(&[
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x03,
    ]);
    h.extend_from_slice(&[0x10, 0]); // sequence control
    if is_qos {
        h.extend_from_slice(&[0, 0]);
    }
    h.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0]);
    h.extend_from_slice(if is_v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    h
}

/// PPPoE session header (length unchecked by either reader) and the PPP protocol for IP.
fn pppoe(is_v6: bool) -> Vec<u8> {
    let mut h = vec![0x88, 0x64, 0x11, 0x00, 0x12, 0x34, 0x05, 0xdc];
    h.extend_from_slice(if is_v6 { &[0x00, 0x57] } else { &[0x00, 0x21] });
    h
}

/// (TCP frames, retransmissions, ack_rtt samples) as tshark counts them; `None` without tshark.
fn tshark_counts(path: &Path) -> Option<(u64, u64, u64)> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(path)
        .args(["-Y", "tcp", "-T", "fields", "-E", "occurrence=f"])
        .args([
            "-e",
            "tcp.analysis.retransmission",
            "-e",
            "tcp.analysis.ack_rtt",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = (0, 0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        counts.0 += 1;
        counts.1 += u64::from(!f[0].is_empty());
        counts.2 += u64::from(f.get(1).is_some_and(|r| !r.is_empty()));
    }
    Some(counts)
}

/// MPLS, PPPoE (also under QinQ), PPP, Cisco HDLC and 802.11 (bare, radiotap with QoS, PPI)
/// carry the same conversation: the same
/// analysis as plain Ethernet (but for frame bytes), and tshark finds the same TCP frames,
/// retransmissions and RTT samples in each file.
#[test]
fn mpls_pppoe_ppp_hdlc_and_802_11_frames_are_decoded_as_tshark_decodes_them() {
    let strip = strip_addresses_and_bytes;
    let reference = strip(analyze(&fixtures().join("ethernet_ipv4.pcap")));
    let mpls = |_: bool| ethernet(&[0x88, 0x47, 0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64]);
    let qinq_pppoe = |v6: bool| {
        let mut h = ethernet(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20]);
        h.extend(pppoe(v6));
        h
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("mpls", wrapped(v4(), LinkType::ETHERNET, mpls)),
        ("mpls_v6", wrapped(v6(), LinkType::ETHERNET, mpls)),
        ("qinq_pppoe", wrapped(v4(), LinkType::ETHERNET, qinq_pppoe)),
        (
            "pppoe_v6",
            wrapped(v6(), LinkType::ETHERNET, |v6| ethernet(&pppoe(v6)[..])),
        ),
        (
            "ppp",
            wrapped(v4(), LinkType::PPP, |_| vec![0xff, 0x03, 0x00, 0x21]),
        ),
        (
            "ppp_hdlc_v6",
            wrapped(v6(), LinkType::PPP_HDLC, |_| vec![0xff, 0x03, 0x00, 0x57]),
        ),
        (
            "cisco_hdlc",
            wrapped(v4(), LinkType::C_HDLC, |_| vec![0x0f, 0x00, 0x08, 0x00]),
        ),
        (
            "wlan",
            wrapped(v4(), LinkType::IEEE802_11, |v6| wlan(false, v6)),
        ),
        (
            "radiotap_qos_v6",
            wrapped(v6(), LinkType::IEEE802_11_RADIOTAP, |v6| {
                let mut h = vec![0, 0, 8, 0, 0, 0, 0, 0];
                h.extend(wlan(true, v6));
                h
            }),
        ),
        (
            "ppi",
            wrapped(v4(), LinkType::PPI, |v6| {
                let mut h = vec![0, 0, 8, 0, 105, 0, 0, 0];
                h.extend(wlan(false, v6));
                h
            }),
        ),
    ];
    for (name, bytes) in cases {
        assert_as_reference_and_tshark(name, &bytes, &reference);
    }
}

/// The capture `bytes` analyses as `reference` (stripped of addresses and bytes) and has
/// tshark's counts.
fn assert_as_reference_and_tshark(name: &str, bytes: &[u8], reference: &Value) {
    let path =
        std::env::temp_dir().join(format!("vidcast-golden-{}-{name}.pcap", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let got = analyze(&path);
    assert_counts_as_tshark(&path, &got, name);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&strip_addresses_and_bytes(got), reference, "{name}");
}

/// A time range keeps only what happened in it, with times still since the connection's start,
/// and spends the throughput bins on the range alone.
#[test]
fn a_time_range_keeps_its_points_and_spends_the_bins_on_it() {
    let path = fixtures().join("ethernet_ipv4.pcap");
    let whole = series_of(&path, 0, false);
    let mut r = CaptureReader::open(&path).unwrap();
    let first = scan(&mut r, |_, _| {}).unwrap();
    let conn = &first.table.connections()[0];
    let (from, to) = (0.0095, 0.0125);
    let mut s = ConnectionSeries::with_range(conn, false, from, to);
    let mut r = CaptureReader::open(&path).unwrap();
    scan(&mut r, |m, v| {
        if v.conn.0 == 0 {
            s.handle(m.ts, v)
        }
    })
    .unwrap();
    s.finish();
    let d = &s.dirs[0];
    let times: Vec<f64> = d
        .segments
        .points
        .iter()
        .chain(&d.retransmissions.points)
        .map(|p| p.t_s)
        .chain(d.acks.points.iter().map(|p| p.t_s))
        .collect();
    assert!(!times.is_empty());
    assert!(times.iter().all(|&t| (from..=to).contains(&t)), "{times:?}");
    let all = whole.dirs[0].segments.points.len() + whole.dirs[0].retransmissions.points.len();
    assert!(d.segments.points.len() + d.retransmissions.points.len() < all);
    let tp = &d.throughput;
    assert!(
        (tp[0].t_s - from).abs() < 1e-9,
        "bins start at the range: {}",
        tp[0].t_s
    );
    assert!(tp.last().unwrap().t_s <= to, "bins end within the range");
    assert!(
        d.interval_s < whole.dirs[0].interval_s,
        "finer bins for the shorter range"
    );
}

/// TCP in fragmented IPv4 and IPv6 datagrams, the fragments of every other packet sent last
/// first and the first fragment of every third sent twice (an overlap), analyses as the
/// unfragmented capture does (but for frame bytes); tshark finds the same TCP frames,
/// retransmissions and RTT samples.
#[test]
fn fragmented_tcp_is_reassembled_as_tshark_reassembles_it() {
    let strip = strip_addresses_and_bytes;
    let reference = analyze(&fixtures().join("ethernet_ipv4.pcap"));
    for (name, addrs) in [("v4", v4()), ("v6", v6())] {
        let (a, b, c) = addrs;
        let mut frames = Vec::new();
        let (mut fragmented, mut duplicates) = (0, 0);
        for (i, p) in synth::conversation(a, b, c, ISN).iter().enumerate() {
            let mut parts = synth::fragments(&p.ip_bytes(), 24, 1000 + i as u32);
            if parts.len() > 1 {
                fragmented += 1;
                if i % 2 == 1 {
                    parts.reverse();
                }
                if i % 3 == 0 {
                    parts.insert(1, parts[0].clone());
                    duplicates += 1;
                }
            }
            frames.extend(parts.into_iter().map(|ip| Frame {
                ts: p.ts,
                interface: 0,
                bytes: synth::encapsulate(LinkType::ETHERNET, &ip, None),
            }));
        }
        let bytes = synth::pcap(LinkType::ETHERNET, false, false, 65535, &frames);
        let path = std::env::temp_dir().join(format!(
            "vidcast-golden-{}-fragments-{name}.pcap",
            std::process::id()
        ));
        std::fs::write(&path, &bytes).unwrap();
        let got = analyze(&path);
        let mut r = CaptureReader::open(&path).unwrap();
        let s = scan(&mut r, |_, _| {}).unwrap();
        assert_eq!(
            (
                s.defrag.reassembled,
                s.defrag.incomplete,
                s.defrag.malformed
            ),
            (fragmented, 0, 0),
            "{name}"
        );
        assert_eq!(s.defrag.overlapping, duplicates, "{name}");
        assert_eq!(got["tcp_packets"], reference["tcp_packets"], "{name}");
        assert_counts_as_tshark(&path, &got, name);
        std::fs::remove_file(&path).unwrap();
        let mut got = strip(got);
        got["packets"] = reference["packets"].clone();
        assert_eq!(got, strip(reference.clone()), "{name}");
    }
}

/// The analysis `got` of `path` has tshark's TCP frames, retransmissions and RTT samples
/// (when tshark is installed).
fn assert_counts_as_tshark(path: &Path, got: &Value, name: &str) {
    if let Some(counts) = tshark_counts(path) {
        assert_eq!(
            (
                got["tcp_packets"].as_u64().unwrap(),
                retransmissions(got),
                rtt_samples(got)
            ),
            counts,
            "{name}: (TCP frames, retransmissions, RTT samples) vs tshark"
        );
    }
}

/// Retransmissions in an analysis, both directions of every connection.
fn retransmissions(v: &Value) -> u64 {
    sum_per_direction(v, |d| d["retransmissions"].as_u64().unwrap())
}

/// RTT samples in an analysis, both directions of every connection.
fn rtt_samples(v: &Value) -> u64 {
    sum_per_direction(v, |d| d["rtt_ms"]["samples"].as_u64().unwrap())
}

fn sum_per_direction(v: &Value, f: impl Fn(&Value) -> u64) -> u64 {
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| ["a_to_b", "b_to_a"].map(|d| f(&c[d])))
        .sum()
}

/// An outer IPv4 (or, with `is_v6`, IPv6) packet of `protocol` around `payload`.
fn outer_ip(is_v6: bool, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let number = etherparse::IpNumber(protocol);
    if is_v6 {
        let h = etherparse::Ipv6Header {
            payload_length: payload.len() as u16,
            next_header: number,
            hop_limit: 64,
            source: [
                0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
            destination: [
                0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
            ],
            ..Default::default()
        };
        h.write(&mut out).unwrap();
    } else {
        let mut h = etherparse::Ipv4Header::new(
            payload.len() as u16,
            64,
            number,
            [198, 51, 100, 1],
            [198, 51, 100, 2],
        )
        .unwrap();
        h.header_checksum = h.calc_header_checksum();
        h.write(&mut out).unwrap();
    }
    out.extend_from_slice(payload);
    out
}

/// A GRE packet: `flags` (C 0x80, K 0x20, S 0x10; their option words are filled), protocol,
/// then `body` after `extra` header bytes (ERSPAN's).
fn gre(flags: u8, protocol: u16, extra: &[u8], body: &[u8]) -> Vec<u8> {
    let mut g = vec![flags, 0];
    g.extend_from_slice(&protocol.to_be_bytes());
    for (bit, word) in [
        (0x80, [0u8; 4]),
        (0x20, [0, 0, 0x12, 0x34]),
        (0x10, [0, 0, 0, 7]),
    ] {
        if flags & bit != 0 {
            g.extend_from_slice(&word);
        }
    }
    g.extend_from_slice(extra);
    g.extend_from_slice(body);
    g
}

/// GRE (plain, with checksum/key/sequence, bridging Ethernet, ERSPAN II and III), VXLAN,
/// IPv4/IPv6 in IPv4 and IP in IPv6 carry the scripted conversation: the inner connections are
/// the rows, analysed as plain Ethernet is (but for frame bytes), and tshark finds the same TCP
/// frames, retransmissions and RTT samples in each file.
#[test]
fn tunnelled_conversations_are_their_own_rows_as_tshark_lists_them() {
    let strip = strip_addresses_and_bytes;
    let reference = strip(analyze(&fixtures().join("ethernet_ipv4.pcap")));
    let eth = |ip: &[u8]| synth::encapsulate(LinkType::ETHERNET, ip, None);
    let ether_type = |ip: &[u8]| if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
    type Wrap = Box<dyn Fn(&[u8]) -> Vec<u8>>;
    let cases: Vec<(&str, (SocketAddr, SocketAddr, SocketAddr), Wrap)> = vec![
        (
            "gre",
            v4(),
            Box::new(move |ip| eth(&outer_ip(false, 47, &gre(0, ether_type(ip), &[], ip)))),
        ),
        (
            "gre_csum_key_seq_v6_in_v6",
            v6(),
            Box::new(move |ip| eth(&outer_ip(true, 47, &gre(0xb0, ether_type(ip), &[], ip)))),
        ),
        (
            "gre_ethernet",
            v4(),
            Box::new(move |ip| eth(&outer_ip(false, 47, &gre(0x20, 0x6558, &[], &eth(ip))))),
        ),
        (
            "erspan_ii",
            v4(),
            Box::new(move |ip| {
                let erspan = [0x10, 0, 0, 0x01, 0, 0, 0, 0];
                eth(&outer_ip(false, 47, &gre(0x10, 0x88be, &erspan, &eth(ip))))
            }),
        ),
        (
            "erspan_iii",
            v6(),
            Box::new(move |ip| {
                let erspan = [0x20, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
                eth(&outer_ip(false, 47, &gre(0x10, 0x22eb, &erspan, &eth(ip))))
            }),
        ),
        (
            "vxlan",
            v4(),
            Box::new(move |ip| {
                let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
                vxlan.extend(eth(ip));
                let mut udp = Vec::new();
                etherparse::PacketBuilder::ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64)
                    .udp(50000, 4789)
                    .write(&mut udp, &vxlan)
                    .unwrap();
                eth(&udp)
            }),
        ),
        (
            "ipip",
            v4(),
            Box::new(move |ip| eth(&outer_ip(false, 4, ip))),
        ),
        (
            "6in4",
            v6(),
            Box::new(move |ip| eth(&outer_ip(false, 41, ip))),
        ),
        (
            "4in6",
            v4(),
            Box::new(move |ip| eth(&outer_ip(true, 4, ip))),
        ),
    ];
    for (name, addrs, wrap) in cases {
        let bytes = tunnelled(addrs, LinkType::ETHERNET, wrap);
        assert_as_reference_and_tshark(name, &bytes, &reference);
    }
}

/// An ICMP "fragmentation needed" quoting each data segment: tshark shows the quoted TCP header
/// but neither analyses it nor counts it in `-z conv,tcp`, and neither do we (the connections
/// are the plain capture's, and each has tshark's frame count).
#[test]
fn icmp_errors_quoting_tcp_are_not_analysed_as_tshark_does_not() {
    let reference = analyze(&fixtures().join("ethernet_ipv4.pcap"));
    let (a, b, c) = v4();
    let mut frames = Vec::new();
    for p in synth::conversation(a, b, c, ISN) {
        let ip = p.ip_bytes();
        frames.push(Frame {
            ts: p.ts,
            interface: 0,
            bytes: synth::encapsulate(LinkType::ETHERNET, &ip, None),
        });
        if p.payload_len > 0 {
            let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
            icmp.extend_from_slice(&ip[..48]);
            let mut error = Vec::new();
            etherparse::PacketBuilder::ipv4([192, 0, 2, 254], ip[12..16].try_into().unwrap(), 64)
                .write(&mut error, etherparse::IpNumber::ICMP, &icmp)
                .unwrap();
            frames.push(Frame {
                ts: p.ts,
                interface: 0,
                bytes: synth::encapsulate(LinkType::ETHERNET, &error, None),
            });
        }
    }
    let bytes = synth::pcap(LinkType::ETHERNET, false, false, 65535, &frames);
    let path =
        std::env::temp_dir().join(format!("vidcast-golden-{}-icmp.pcap", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let mut got = analyze(&path);
    let conv = Command::new("tshark")
        .args(["-n", "-q", "-z", "conv,tcp", "-r"])
        .arg(&path)
        .output();
    std::fs::remove_file(&path).unwrap();
    if let Ok(conv) = conv {
        // "A <-> B  frames bytes-each-way ... total-frames total-bytes ...": the total frames.
        let mut totals: Vec<u64> = String::from_utf8_lossy(&conv.stdout)
            .lines()
            .filter(|l| l.contains("<->"))
            .map(|l| l.split_whitespace().nth(9).unwrap().parse().unwrap())
            .collect();
        totals.sort_unstable();
        let mut ours: Vec<u64> = got["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["a_to_b"]["packets"].as_u64().unwrap() + c["b_to_a"]["packets"].as_u64().unwrap()
            })
            .collect();
        ours.sort_unstable();
        assert_eq!(ours, totals, "packets per connection vs tshark -z conv,tcp");
    }
    assert!(got["packets"].as_u64() > reference["packets"].as_u64());
    got["packets"] = reference["packets"].clone();
    assert_eq!(got, reference);
}

/// The scripted conversation in the year 2400 (a nanosecond pcapng; 64 bits of nanoseconds end
/// in 2262): the same analysis but for the start, and tshark's counts (RTT samples included,
/// which collapsed times would lose).
#[test]
fn times_past_2262_keep_their_spacing() {
    let reference = analyze(&fixtures().join("ethernet_ipv4.pcap"));
    // 1 700 000 000 s (the conversation's start) + this = 13 569 465 600 s, 2400-01-01.
    let shift = 11_869_465_600i128 * 1_000_000_000;
    let mut frames = frames(v4(), ISN, LinkType::ETHERNET, None);
    for f in &mut frames {
        f.ts.0 += shift;
        f.interface = 0;
    }
    let interface = NgInterface {
        link: LinkType::ETHERNET,
        tsresol: 9,
        snaplen: 65535,
    };
    let bytes = synth::pcapng(&[interface], &frames, false);
    let path =
        std::env::temp_dir().join(format!("vidcast-golden-{}-2400.pcapng", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let mut got = analyze(&path);
    assert_counts_as_tshark(&path, &got, "2400");
    std::fs::remove_file(&path).unwrap();
    let first = &mut got["connections"][0];
    assert_eq!(first["start"], "2400-01-01T00:00:00.000000Z");
    assert_eq!(first["start_epoch_us"], 13_569_465_600_000_000i64);
    for (c, r) in got["connections"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(reference["connections"].as_array().unwrap())
    {
        c["start"] = r["start"].clone();
        c["start_epoch_us"] = r["start_epoch_us"].clone();
    }
    assert_eq!(got, reference);
}

/// Capture-clock jitter: data stamped a few µs before the segment after it (and a fast
/// retransmission stamped before the third duplicate ACK) are plain retransmissions for tshark,
/// whose time differences are unsigned (see flow.rs); ours agree.
#[test]
fn segments_stamped_before_their_predecessor_are_retransmissions_as_tshark_says() {
    let (a, b, _) = v4();
    let t0 = vidcast_analysis::Timestamp::from_parts(1_700_000_000, 0);
    let packet = |us: i64, from_a: bool, flags: u8, seq: u32, ack: u32, len: u32| {
        let (src, dst, isn_src, isn_dst) = if from_a {
            (a, b, ISN, 3_000_000_000u32)
        } else {
            (b, a, 3_000_000_000, ISN)
        };
        synth::TcpPacket {
            ts: t0.plus_ns(us * 1000),
            src,
            dst,
            seq: isn_src.wrapping_add(seq),
            ack: isn_dst.wrapping_add(ack),
            flags,
            window: 512,
            payload_len: len,
            window_scale: None,
            sack: Vec::new(),
        }
    };
    use vidcast_analysis::segment::TcpFlags as T;
    let (s, k) = (T::SYN, T::ACK);
    let packets = [
        packet(0, true, s, 0, 0, 0),
        packet(10_000, false, s | k, 0, 1, 0),
        packet(20_000, true, k, 1, 1, 0),
        // Sent 1 then 1001, captured with 1001 first and 1 stamped 5 µs earlier.
        packet(30_000, true, k, 1001, 1, 1000),
        packet(29_995, true, k, 1, 1, 1000),
        packet(50_000, false, k, 1, 2001, 0),
        // 2001 lost; three duplicate ACKs; the resend stamped 3 µs before the third.
        packet(60_000, true, k, 3001, 1, 1000),
        packet(61_000, true, k, 4001, 1, 1000),
        packet(62_000, true, k, 5001, 1, 1000),
        // (the ACKs come over a first RTT after the last new data, so it is not out-of-order)
        packet(85_000, false, k, 1, 2001, 0),
        packet(86_000, false, k, 1, 2001, 0),
        packet(87_000, false, k, 1, 2001, 0),
        packet(86_997, true, k, 2001, 1, 1000),
        packet(95_000, false, k, 1, 6001, 0),
    ];
    let frames: Vec<Frame> = packets
        .iter()
        .map(|p| Frame {
            ts: p.ts,
            interface: 0,
            bytes: synth::encapsulate(LinkType::ETHERNET, &p.ip_bytes(), None),
        })
        .collect();
    let bytes = synth::pcap(LinkType::ETHERNET, true, false, 65535, &frames);
    let path =
        std::env::temp_dir().join(format!("vidcast-golden-{}-jitter.pcap", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let got = analyze(&path);
    assert_counts_as_tshark(&path, &got, "jitter");
    std::fs::remove_file(&path).unwrap();
    let a_to_b = &got["connections"][0]["a_to_b"];
    assert_eq!(
        (
            a_to_b["retransmissions"].as_u64(),
            a_to_b["fast_retransmissions"].as_u64(),
            a_to_b["out_of_order"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{a_to_b}"
    );
}

/// A link type we do not decode is counted by number and name, as "not supported".
#[test]
fn an_unsupported_link_type_is_named_in_the_skipped_count() {
    let bytes = wrapped(v4(), LinkType::IPOIB, |_| vec![0x08, 0x00, 0, 0]);
    let path =
        std::env::temp_dir().join(format!("vidcast-golden-{}-ipoib.pcap", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let mut r = CaptureReader::open(&path).unwrap();
    let s = scan(&mut r, |_, _| {}).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        s.skipped
            .get("link type 242 (IP over InfiniBand) not supported"),
        Some(&37),
        "{:?}",
        s.skipped
    );
}
