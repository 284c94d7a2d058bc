//! pcap and pcapng files, read as a stream of packet records.
//!
//! [`CaptureParser`] is sans-IO: it is shown the bytes buffered so far and answers "need N bytes",
//! "here is a packet; drop `used` bytes and skip `skip` more" or "invalid at byte N because …".
//! [`CaptureReader`] drives it over any [`Read`]; with a file it seeks over packet payloads it does
//! not need, so a full-snaplen capture costs little more to read than its headers.
//!
//! Specs: pcap (draft-ietf-opsawg-pcap), pcapng (draft-ietf-opsawg-pcapng).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;

use crate::time::Timestamp;

/// How many bytes of each packet the analysis needs: link, IP (with extension headers) and TCP
/// headers with options fit easily; the payload itself is never looked at.
pub const DEFAULT_HEAD_BYTES: usize = 512;

/// A pcapng block or pcap record larger than this is taken as corruption, not as data.
const MAX_BLOCK_BYTES: u32 = 256 << 20;
/// A pcap record capturing more than this is a damaged header (libpcap's and Wireshark's
/// WTAP_MAX_PACKET_SIZE_STANDARD).
const MAX_PCAP_RECORD_BYTES: u32 = 262_144;
/// Non-packet pcapng blocks we read whole (SHB, IDB) are small; refuse absurd ones before
/// buffering them.
const MAX_META_BLOCK_BYTES: u32 = 1 << 20;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const NG_SHB: u32 = 0x0a0d_0d0a;
const NG_IDB: u32 = 0x0000_0001;
const NG_SPB: u32 = 0x0000_0003;
const NG_EPB: u32 = 0x0000_0006;
const NG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const NG_OPT_IF_TSRESOL: u16 = 9;
const NG_OPT_IF_TSOFFSET: u16 = 14;

/// A data-link type number (LINKTYPE_* in the tcpdump registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: Self = Self(0);
    /// Ethernet II, possibly with 802.1Q/802.1ad tags.
    pub const ETHERNET: Self = Self(1);
    /// PPP (RFC 1661), with or without the HDLC-like address and control bytes.
    pub const PPP: Self = Self(9);
    /// PPP in HDLC-like framing (RFC 1662).
    pub const PPP_HDLC: Self = Self(50);
    /// Cisco HDLC: address, control, Ethernet type.
    pub const C_HDLC: Self = Self(104);
    /// Raw IP on OpenBSD and some old libpcaps (DLT_RAW = 12 or 14).
    pub const RAW_12: Self = Self(12);
    /// Raw IP on OpenBSD (DLT_RAW = 14).
    pub const RAW_14: Self = Self(14);
    /// Raw IPv4 or IPv6, no link header.
    pub const RAW: Self = Self(101);
    /// OpenBSD loopback: like NULL but the family is big-endian.
    pub const LOOP: Self = Self(108);
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    pub const LINUX_SLL: Self = Self(113);
    /// Raw IPv4.
    pub const IPV4: Self = Self(228);
    /// Raw IPv6.
    pub const IPV6: Self = Self(229);
    /// Linux cooked capture v2 (`tcpdump -i any` with libpcap ≥ 1.10).
    pub const LINUX_SLL2: Self = Self(276);
    /// IEEE 802.11 frames without a radio header.
    pub const IEEE802_11: Self = Self(105);
    /// IEEE 802.11 behind a radiotap header.
    pub const IEEE802_11_RADIOTAP: Self = Self(127);
    /// Per-Packet Information header, then the link type it names (802.11 here).
    pub const PPI: Self = Self(192);
    /// IP over InfiniBand (not decoded: named in the "not supported" count).
    pub const IPOIB: Self = Self(242);
    /// Juniper Ethernet (not decoded: named in the "not supported" count).
    pub const JUNIPER_ETHER: Self = Self(178);
    /// ARCNET with a Linux header (not decoded: named in the "not supported" count).
    pub const ARCNET_LINUX: Self = Self(129);

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::NULL => "BSD loopback",
            Self::ETHERNET => "Ethernet",
            Self::RAW | Self::RAW_12 | Self::RAW_14 => "raw IP",
            Self::LOOP => "OpenBSD loopback",
            Self::LINUX_SLL => "Linux cooked v1",
            Self::IPV4 => "raw IPv4",
            Self::IPV6 => "raw IPv6",
            Self::LINUX_SLL2 => "Linux cooked v2",
            Self::PPP | Self::PPP_HDLC => "PPP",
            Self::C_HDLC => "Cisco HDLC",
            Self::IEEE802_11 => "802.11",
            Self::IEEE802_11_RADIOTAP => "802.11 radiotap",
            Self::PPI => "PPI",
            Self::IPOIB => "IP over InfiniBand",
            Self::JUNIPER_ETHER => "Juniper Ethernet",
            Self::ARCNET_LINUX => "ARCNET",
            _ => "unsupported",
        }
    }
}

/// Which container the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap.
    Pcap {
        /// Timestamps in nanoseconds (magic a1b23c4d) rather than microseconds.
        is_nanosecond: bool,
        /// Written by a big-endian host.
        is_big_endian: bool,
    },
    /// pcapng.
    PcapNg,
}

/// Why a capture cannot be read (further). Every variant that concerns the file's content names
/// the byte offset where the bad record or block starts.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Reading failed.
    #[error("read error")]
    Io(#[from] io::Error),
    /// The file or stream is empty.
    #[error("the input is empty (0 bytes), not a capture")]
    EmptyFile,
    /// The first four bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file: it starts with {found:02x?}, expected a pcap magic (a1b2c3d4, a1b23c4d, either byte order) or a pcapng section header (0a0d0d0a)")]
    NotACapture {
        /// The first bytes.
        found: Vec<u8>,
    },
    /// The file ends inside a header, record or block.
    #[error("truncated capture: the {what} at byte offset {offset} needs {needed} bytes, but the file ends after {available}")]
    Truncated {
        /// Offset of the record or block that is cut short.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes the record needs.
        needed: u64,
        /// Bytes that were there.
        available: u64,
    },
    /// A header, record or block holds an impossible value.
    #[error("corrupt capture at byte offset {offset}: {reason}")]
    Corrupt {
        /// Offset of the bad record or block.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl CaptureError {
    /// The byte offset the error concerns, if it concerns the content.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Truncated { offset, .. } | Self::Corrupt { offset, .. } => Some(*offset),
            Self::EmptyFile | Self::NotACapture { .. } => Some(0),
            Self::Io(_) => None,
        }
    }
}

/// One packet record's metadata; the bytes are in the parser's input at [`Step::Packet::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    /// When it was captured.
    pub ts: Timestamp,
    /// Its link type.
    pub link_type: LinkType,
    /// pcapng interface id (0 for pcap).
    pub interface: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// Length captured (≤ `orig_len` when the snaplen cut it).
    pub cap_len: u32,
    /// Byte offset of the record in the file.
    pub offset: u64,
}

/// What the parser made of the front of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Need at least this many bytes at the front of the input.
    NeedBytes {
        /// Total bytes wanted (not additional ones).
        len: usize,
        /// What is being read, for a truncation message.
        what: &'static str,
        /// How long the whole record is, for a truncation message.
        record_len: u64,
    },
    /// A packet. Drop `used` bytes from the input, then `skip` more bytes of the stream.
    Packet {
        /// Bytes of the input this record took.
        used: usize,
        /// Further bytes of this record the caller must skip.
        skip: u64,
        /// The record.
        meta: PacketMeta,
        /// The first bytes of the packet, as a range of the input.
        data: Range<usize>,
    },
    /// A header or a block without a packet (or for an unsupported interface): drop `used`,
    /// then skip `skip`.
    Skip {
        /// Bytes of the input this took.
        used: usize,
        /// Further bytes to skip.
        skip: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: LinkType,
    /// Timestamp units per second are `base^exp` (if_tsresol).
    tsresol: u8,
    ts_offset_s: i64,
}

#[derive(Debug, Clone)]
enum State {
    Start,
    Pcap {
        is_big_endian: bool,
        is_nanosecond: bool,
        link_type: LinkType,
    },
    PcapNg {
        is_big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// Sans-IO pcap/pcapng parser. Call [`CaptureParser::parse`] with the unread bytes; after a
/// `Packet` or `Skip` step the caller must drop exactly `used` input bytes and skip `skip`
/// stream bytes before the next call, because the parser counts the file offset from them.
#[derive(Debug, Clone)]
pub struct CaptureParser {
    state: State,
    offset: u64,
    head_bytes: usize,
    /// After a pcapng block read without its end: its length and start, to check the trailing
    /// length against (Wireshark refuses a file where they differ).
    trailer: Option<(u32, u64)>,
}

impl Default for CaptureParser {
    fn default() -> Self {
        Self::new(DEFAULT_HEAD_BYTES)
    }
}

fn u16_at(b: &[u8], at: usize, is_big_endian: bool) -> u16 {
    let x = [b[at], b[at + 1]];
    if is_big_endian {
        u16::from_be_bytes(x)
    } else {
        u16::from_le_bytes(x)
    }
}

fn u32_at(b: &[u8], at: usize, is_big_endian: bool) -> u32 {
    let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if is_big_endian {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

impl CaptureParser {
    /// A parser that hands out the first `head_bytes` of each packet (all of it if shorter).
    pub fn new(head_bytes: usize) -> Self {
        Self {
            state: State::Start,
            offset: 0,
            head_bytes,
            trailer: None,
        }
    }

    /// File offset of the next byte the parser will see.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The container, once its header has been read.
    pub fn format(&self) -> Option<Format> {
        match self.state {
            State::Start => None,
            State::Pcap {
                is_big_endian,
                is_nanosecond,
                ..
            } => Some(Format::Pcap {
                is_nanosecond,
                is_big_endian,
            }),
            State::PcapNg { .. } => Some(Format::PcapNg),
        }
    }

    fn corrupt(&self, reason: String) -> CaptureError {
        CaptureError::Corrupt {
            offset: self.offset,
            reason,
        }
    }

    fn advance(&mut self, used: usize, skip: u64) {
        self.offset += used as u64 + skip;
    }

    /// Parses the front of `input` (the bytes from [`CaptureParser::offset`] on).
    pub fn parse(&mut self, input: &[u8]) -> Result<Step, CaptureError> {
        let step = match &self.state {
            State::Start => self.parse_file_header(input)?,
            State::Pcap { .. } => self.parse_pcap_record(input)?,
            State::PcapNg { is_big_endian, .. } => match self.trailer {
                Some((len, start)) => self.parse_ng_trailer(input, len, start, *is_big_endian)?,
                None => self.parse_ng_block(input)?,
            },
        };
        match &step {
            Step::Packet { used, skip, .. } | Step::Skip { used, skip } => {
                self.advance(*used, *skip)
            }
            Step::NeedBytes { .. } => {}
        }
        Ok(step)
    }

    fn parse_file_header(&mut self, input: &[u8]) -> Result<Step, CaptureError> {
        if let Some(step) = need(input, 4, "file header", 24) {
            return Ok(step);
        }
        let magic_le = u32_at(input, 0, false);
        let pcap = match magic_le {
            PCAP_MAGIC_US => Some((false, false)),
            PCAP_MAGIC_NS => Some((false, true)),
            m if m.swap_bytes() == PCAP_MAGIC_US => Some((true, false)),
            m if m.swap_bytes() == PCAP_MAGIC_NS => Some((true, true)),
            _ => None,
        };
        if let Some((is_big_endian, is_nanosecond)) = pcap {
            if let Some(step) = need(input, 24, "pcap file header", 24) {
                return Ok(step);
            }
            let major = u16_at(input, 4, is_big_endian);
            if major != 2 {
                return Err(self.corrupt(format!("pcap version {major}, only 2 exists")));
            }
            // The upper bits of the link-type field carry FCS information (pcap spec §4).
            let link_type = LinkType((u32_at(input, 20, is_big_endian) & 0xffff) as u16);
            self.state = State::Pcap {
                is_big_endian,
                is_nanosecond,
                link_type,
            };
            return Ok(Step::Skip { used: 24, skip: 0 });
        }
        if magic_le == NG_SHB {
            self.state = State::PcapNg {
                is_big_endian: false,
                interfaces: Vec::new(),
            };
            return self.parse_ng_block(input);
        }
        Err(CaptureError::NotACapture {
            found: input[..4].to_vec(),
        })
    }

    fn parse_pcap_record(&mut self, input: &[u8]) -> Result<Step, CaptureError> {
        let State::Pcap {
            is_big_endian,
            is_nanosecond,
            link_type,
        } = self.state
        else {
            unreachable!("called in pcap state only");
        };
        if let Some(step) = need(input, 16, "pcap record header", 16) {
            return Ok(step);
        }
        let secs = u32_at(input, 0, is_big_endian);
        let frac = u32_at(input, 4, is_big_endian);
        let cap_len = u32_at(input, 8, is_big_endian);
        let orig_len = u32_at(input, 12, is_big_endian);
        // libpcap and Wireshark's reader refuse records over 262 144 bytes as damaged headers.
        if cap_len > MAX_PCAP_RECORD_BYTES {
            return Err(self.corrupt(format!(
                "pcap record claims {cap_len} captured bytes (more than {MAX_PCAP_RECORD_BYTES}); the record header is damaged"
            )));
        }
        let take = (cap_len as usize).min(self.head_bytes);
        if let Some(step) = need(input, 16 + take, "pcap record", 16 + u64::from(cap_len)) {
            return Ok(step);
        }
        // A fraction of a second or more (≥ 10^6 µs, ≥ 10^9 ns) is what some writers produce;
        // Wireshark keeps reading and adds it as it is (10 s + 1 500 000 µs = 11.5 s), so do we.
        let ns = if is_nanosecond {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        Ok(Step::Packet {
            used: 16 + take,
            skip: u64::from(cap_len) - take as u64,
            meta: PacketMeta {
                ts: Timestamp::from_parts(i64::from(secs), ns),
                link_type,
                interface: 0,
                orig_len,
                cap_len,
                offset: self.offset,
            },
            data: 16..16 + take,
        })
    }

    fn parse_ng_trailer(
        &mut self,
        input: &[u8],
        len: u32,
        start: u64,
        is_big_endian: bool,
    ) -> Result<Step, CaptureError> {
        if let Some(step) = need(input, 4, "pcapng block's trailing length", 4) {
            return Ok(step);
        }
        let tail = u32_at(input, 0, is_big_endian);
        if tail != len {
            return Err(CaptureError::Corrupt {
                offset: start,
                reason: format!("pcapng block length {len} at its start but {tail} at its end"),
            });
        }
        self.trailer = None;
        Ok(Step::Skip { used: 4, skip: 0 })
    }

    /// A step that takes `used` bytes of a `len`-byte block and skips the rest but its
    /// trailing length, which the next step checks.
    fn then_trailer(&mut self, used: usize, len: u32) -> (usize, u64) {
        self.trailer = Some((len, self.offset));
        (used, u64::from(len) - 4 - used as u64)
    }

    fn parse_ng_block(&mut self, input: &[u8]) -> Result<Step, CaptureError> {
        if let Some(step) = need(input, 12, "pcapng block header", 12) {
            return Ok(step);
        }
        let State::PcapNg { is_big_endian, .. } = self.state else {
            unreachable!("called in pcapng state only");
        };
        let block_type = u32_at(input, 0, is_big_endian);
        if block_type == NG_SHB {
            // A section header sets the byte order for everything up to the next one.
            let bom = u32_at(input, 8, false);
            let is_big_endian = match bom {
                NG_BYTE_ORDER_MAGIC => false,
                m if m.swap_bytes() == NG_BYTE_ORDER_MAGIC => true,
                _ => {
                    return Err(self.corrupt(format!(
                        "pcapng section header has byte-order magic {bom:08x}, expected 1a2b3c4d"
                    )))
                }
            };
            let len = u32_at(input, 4, is_big_endian);
            self.check_block_len(len, 28)?;
            self.state = State::PcapNg {
                is_big_endian,
                interfaces: Vec::new(),
            };
            let (used, skip) = self.then_trailer(8, len);
            return Ok(Step::Skip { used, skip });
        }
        let len = u32_at(input, 4, is_big_endian);
        self.check_block_len(len, 12)?;
        match block_type {
            NG_IDB => {
                self.check_meta_len(len, 20)?;
                let Some(block) = input.get(..len as usize) else {
                    return Ok(Step::NeedBytes {
                        len: len as usize,
                        what: "pcapng interface description block",
                        record_len: u64::from(len),
                    });
                };
                self.check_trailer(block, is_big_endian)?;
                let link_type = LinkType(u16_at(block, 8, is_big_endian));
                let mut interface = Interface {
                    link_type,
                    tsresol: 6,
                    ts_offset_s: 0,
                };
                for (code, value) in options(&block[16..block.len() - 4], is_big_endian) {
                    match (code, value.len()) {
                        (NG_OPT_IF_TSRESOL, 1) => interface.tsresol = value[0],
                        (NG_OPT_IF_TSOFFSET, 8) => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(value);
                            interface.ts_offset_s = if is_big_endian {
                                i64::from_be_bytes(b)
                            } else {
                                i64::from_le_bytes(b)
                            };
                        }
                        _ => {}
                    }
                }
                if let State::PcapNg { interfaces, .. } = &mut self.state {
                    interfaces.push(interface);
                }
                Ok(Step::Skip {
                    used: len as usize,
                    skip: 0,
                })
            }
            NG_EPB => {
                self.check_block_len(len, 32)?;
                if let Some(step) = need(input, 28, "pcapng enhanced packet block", u64::from(len))
                {
                    return Ok(step);
                }
                let if_id = u32_at(input, 8, is_big_endian);
                let ts = (u64::from(u32_at(input, 12, is_big_endian)) << 32)
                    | u64::from(u32_at(input, 16, is_big_endian));
                let cap_len = u32_at(input, 20, is_big_endian);
                let orig_len = u32_at(input, 24, is_big_endian);
                if u64::from(cap_len) + 32 > u64::from(len) {
                    return Err(self.corrupt(format!(
                        "enhanced packet block of {len} bytes claims {cap_len} captured bytes"
                    )));
                }
                let p = BlockPacket {
                    if_id,
                    ts,
                    cap_len,
                    orig_len,
                    data_at: 28,
                };
                self.packet_in_block(input, len, p)
            }
            NG_SPB => {
                self.check_block_len(len, 16)?;
                if let Some(step) = need(input, 12, "pcapng simple packet block", u64::from(len)) {
                    return Ok(step);
                }
                let orig_len = u32_at(input, 8, is_big_endian);
                // The simple packet block has no caplen: the data fills the block (padded).
                let cap_len = orig_len.min(len - 16);
                // and no timestamp: it is given as 0.
                let p = BlockPacket {
                    if_id: 0,
                    ts: 0,
                    cap_len,
                    orig_len,
                    data_at: 12,
                };
                self.packet_in_block(input, len, p)
            }
            _ => {
                let (used, skip) = self.then_trailer(8, len);
                Ok(Step::Skip { used, skip })
            }
        }
    }

    /// The packet of an enhanced or simple packet block of `len` bytes starting `input`.
    fn packet_in_block(
        &mut self,
        input: &[u8],
        len: u32,
        p: BlockPacket,
    ) -> Result<Step, CaptureError> {
        let BlockPacket {
            if_id,
            ts,
            cap_len,
            orig_len,
            data_at,
        } = p;
        let State::PcapNg { interfaces, .. } = &self.state else {
            unreachable!("called in pcapng state only");
        };
        let Some(interface) = interfaces.get(if_id as usize) else {
            return Err(self.corrupt(format!(
                "packet block refers to interface {if_id}, but only {} are described before it",
                interfaces.len()
            )));
        };
        let take = (cap_len as usize).min(self.head_bytes);
        if let Some(step) = need(input, data_at + take, "pcapng packet block", u64::from(len)) {
            return Ok(step);
        }
        let meta = PacketMeta {
            ts: ng_timestamp(ts, interface.tsresol, interface.ts_offset_s),
            link_type: interface.link_type,
            interface: if_id,
            orig_len,
            cap_len,
            offset: self.offset,
        };
        let (used, skip) = self.then_trailer(data_at + take, len);
        Ok(Step::Packet {
            used,
            skip,
            meta,
            data: data_at..data_at + take,
        })
    }

    fn check_block_len(&self, len: u32, min: u32) -> Result<(), CaptureError> {
        if len < min || !len.is_multiple_of(4) || len > MAX_BLOCK_BYTES {
            return Err(self.corrupt(format!(
                "pcapng block length {len} is impossible (must be a multiple of 4, at least {min}, at most {MAX_BLOCK_BYTES})"
            )));
        }
        Ok(())
    }

    fn check_meta_len(&self, len: u32, min: u32) -> Result<(), CaptureError> {
        if len < min || len > MAX_META_BLOCK_BYTES {
            return Err(self.corrupt(format!(
                "pcapng block length {len} is impossible for its type (at least {min} bytes)"
            )));
        }
        Ok(())
    }

    fn check_trailer(&self, block: &[u8], is_big_endian: bool) -> Result<(), CaptureError> {
        let head = u32_at(block, 4, is_big_endian);
        let tail = u32_at(block, block.len() - 4, is_big_endian);
        if head != tail {
            return Err(self.corrupt(format!(
                "pcapng block length {head} at its start but {tail} at its end"
            )));
        }
        Ok(())
    }
}

/// What a pcapng packet block says of its packet.
struct BlockPacket {
    /// Interface id.
    if_id: u32,
    /// Timestamp in the interface's units.
    ts: u64,
    cap_len: u32,
    orig_len: u32,
    /// Where the packet data starts in the block.
    data_at: usize,
}

/// [`Step::NeedBytes`] when `input` is shorter than `len` bytes: reading `what`, a record of
/// `record_len` bytes.
fn need(input: &[u8], len: usize, what: &'static str, record_len: u64) -> Option<Step> {
    (input.len() < len).then_some(Step::NeedBytes {
        len,
        what,
        record_len,
    })
}

/// pcapng options: (code, value) pairs until opt_endofopt or the end; a malformed tail is
/// ignored (options are hints here, never needed to find the next block).
fn options(mut b: &[u8], is_big_endian: bool) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let code = u16_at(b, 0, is_big_endian);
        let len = usize::from(u16_at(b, 2, is_big_endian));
        if code == 0 || b.len() < 4 + len {
            break;
        }
        out.push((code, &b[4..4 + len]));
        let padded = (4 + len + 3) & !3;
        b = &b[padded.min(b.len())..];
    }
    out
}

/// A pcapng timestamp in units of `tsresol` (bit 7 clear: 10^-n s; set: 2^-n s) plus an offset.
fn ng_timestamp(units: u64, tsresol: u8, offset_s: i64) -> Timestamp {
    let exp = u32::from(tsresol & 0x7f);
    let per_second: u128 = if tsresol & 0x80 == 0 {
        10u128.checked_pow(exp).unwrap_or(u128::MAX)
    } else {
        1u128.checked_shl(exp).unwrap_or(u128::MAX)
    };
    let secs = u128::from(units) / per_second;
    let frac = u128::from(units) % per_second;
    let ns = frac * 1_000_000_000 / per_second;
    // 2^64 units of 1 ns or more are at most 2^64 s: no overflow in 128 bits.
    Timestamp(secs as i128 * 1_000_000_000 + ns as i128 + i128::from(offset_s) * 1_000_000_000)
}

/// A byte stream the reader can also jump forward in.
pub trait Source: Read {
    /// Drops the next `n` bytes; returns how many were there (fewer at the end of the stream).
    fn skip(&mut self, n: u64) -> io::Result<u64>;

    /// The whole input as one slice when it is in memory (a mapped file): the reader then
    /// parses it in place, copying nothing, and never calls `read` or `skip`.
    fn as_slice(&self) -> Option<&[u8]> {
        None
    }

    /// Told where the reader is in [`Source::as_slice`]: bytes before `pos` are done with.
    fn reached(&mut self, pos: usize) {
        let _ = pos;
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        (**self).skip(n)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        (**self).as_slice()
    }

    fn reached(&mut self, pos: usize) {
        (**self).reached(pos)
    }
}

/// A mapped capture is handled in windows of this many bytes: the next one is mapped in one
/// call before the reader gets there (one call instead of a page fault per few pages), and the
/// ones behind it are dropped from the process (still in the page cache), so resident memory
/// stays at a few windows however large the file.
const MAP_WINDOW: usize = 8 << 20;

/// A regular file mapped into memory: the reader parses it in place.
#[derive(Debug)]
pub struct Mapped {
    map: memmap2::Mmap,
    pos: usize,
    /// Mapped in ahead up to here.
    populated: usize,
    /// Dropped from the process up to here.
    released: usize,
}

impl Mapped {
    /// Maps an open regular file read-only.
    pub fn new(file: &File) -> io::Result<Self> {
        // SAFETY: the map is only read. If another process truncates the file while it is
        // mapped, reads past the new end fault (SIGBUS); captures are files being analysed, not
        // written, so this is the documented limit of memory-mapped input (tshark's own mmap
        // readers share it). Growing files are fine: the map covers the length at open time.
        let map = unsafe { memmap2::Mmap::map(file)? };
        // Read front to back once: let the kernel read ahead and drop pages behind us.
        let _ = map.advise(memmap2::Advice::Sequential);
        let mut mapped = Self {
            map,
            pos: 0,
            populated: 0,
            released: 0,
        };
        mapped.reached(0);
        Ok(mapped)
    }
}

impl Read for Mapped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.map.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Source for Mapped {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        let n = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.map.len() - self.pos);
        self.pos += n;
        Ok(n as u64)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        Some(&self.map)
    }

    fn reached(&mut self, pos: usize) {
        let len = self.map.len();
        if pos + MAP_WINDOW / 2 >= self.populated && self.populated < len {
            let n = MAP_WINDOW.min(len - self.populated);
            // A hint: kernels before 5.14 refuse it and the pages fault in as they are read.
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, self.populated, n);
            self.populated += n;
        }
        // Whole windows behind the reader's position (page-aligned: the map starts on a page).
        let behind = pos / MAP_WINDOW * MAP_WINDOW;
        if behind > self.released {
            // SAFETY: MADV_DONTNEED on a read-only file mapping only drops the pages from this
            // process; a later read faults them in again from the file, unchanged. No slice of
            // these bytes is alive: the reader hands out only the record at `pos` or later.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released,
                    behind - self.released,
                )
            };
            self.released = behind;
        }
    }
}

/// Any [`Read`], skipped by reading.
#[derive(Debug)]
pub struct Sequential<R>(pub R);

impl<R: Read> Read for Sequential<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Source for Sequential<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        io::copy(&mut (&mut self.0).take(n), &mut io::sink())
    }
}

/// A file, skipped by seeking (its length bounds the skip so truncation is still seen).
#[derive(Debug)]
pub struct SeekableFile {
    file: File,
    pos: u64,
    len: u64,
}

impl SeekableFile {
    /// Wraps an open file at its start.
    pub fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, pos: 0, len })
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for SeekableFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Source for SeekableFile {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        let n = n.min(self.len.saturating_sub(self.pos));
        self.file.seek(SeekFrom::Current(n as i64))?;
        self.pos += n;
        Ok(n)
    }
}

/// One packet as the reader hands it out.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Record metadata.
    pub meta: PacketMeta,
    /// The first bytes of the packet (at most the reader's head size).
    pub data: &'a [u8],
}

/// Reads packets from a [`Source`] with flat memory: a fixed buffer, payloads skipped.
#[derive(Debug)]
pub struct CaptureReader<S> {
    src: S,
    parser: CaptureParser,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    is_eof: bool,
    /// The last record had to be skipped in the stream: records are large, so read little.
    is_sparse: bool,
    pending: (usize, u64),
    packets: u64,
}

/// Bytes read at once while records are small.
const READ_CHUNK: usize = 256 << 10;
/// Bytes read at once after seeking over a large record.
const SPARSE_READ: usize = 4 << 10;

/// Any input [`CaptureReader::open`] picks: a mapped file, a gzip stream, a pipe.
pub type AnySource = Box<dyn Source + Send>;

/// The gzip magic (RFC 1952): `.pcap.gz` / `.pcapng.gz` are recognised by it, not by name.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl CaptureReader<AnySource> {
    /// Opens a capture: `-` is standard input; a regular file is memory-mapped (parsed in
    /// place); a pipe, FIFO or `/dev/stdin` is read as a stream as it arrives; gzip-compressed
    /// input (by its magic) is decompressed as it is read, from a file or a stream.
    pub fn open(path: &std::path::Path) -> Result<Self, CaptureError> {
        if path.as_os_str() == "-" {
            return Ok(Self::from_stream(Box::new(io::stdin()))?);
        }
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(Self::from_stream(Box::new(file))?);
        }
        if meta.len() == 0 {
            return Err(CaptureError::EmptyFile);
        }
        let mut magic = [0u8; 2];
        let is_gzip = meta.len() >= 2 && {
            file.read_exact(&mut magic)?;
            file.seek(SeekFrom::Start(0))?;
            magic == GZIP_MAGIC
        };
        if is_gzip {
            let gz = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
            return Ok(Self::with_source(Box::new(Sequential(gz))));
        }
        let src: AnySource = match Mapped::new(&file) {
            Ok(m) => Box::new(m),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot map the capture; reading it instead");
                Box::new(SeekableFile::new(file)?)
            }
        };
        Ok(Self::with_source(src))
    }

    /// Reads a capture from a stream (pipe, socket, stdin), gzip-compressed or not.
    pub fn from_stream(mut read: Box<dyn Read + Send>) -> io::Result<Self> {
        // Peek at the magic without losing it: a pipe cannot seek back.
        let mut head = Vec::with_capacity(2);
        while head.len() < 2 {
            let mut b = [0u8; 2];
            let n = match read.read(&mut b[..2 - head.len()]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            head.extend_from_slice(&b[..n]);
        }
        let is_gzip = head == GZIP_MAGIC;
        let whole = io::Cursor::new(head).chain(read);
        Ok(if is_gzip {
            Self::with_source(Box::new(Sequential(flate2::read::MultiGzDecoder::new(
                io::BufReader::new(whole),
            ))))
        } else {
            Self::with_source(Box::new(Sequential(whole)))
        })
    }
}

impl<R: Read> CaptureReader<Sequential<R>> {
    /// Reads a capture from any byte stream.
    pub fn new(read: R) -> Self {
        Self::with_source(Sequential(read))
    }
}

impl<S: Source> CaptureReader<S> {
    /// Reads a capture from a [`Source`].
    pub fn with_source(src: S) -> Self {
        // A mapped input is parsed in place and needs no buffer.
        let buf = if src.as_slice().is_some() {
            Vec::new()
        } else {
            vec![0; READ_CHUNK]
        };
        Self {
            src,
            parser: CaptureParser::default(),
            buf,
            start: 0,
            end: 0,
            is_eof: false,
            is_sparse: false,
            pending: (0, 0),
            packets: 0,
        }
    }

    /// The container, once its header has been read.
    pub fn format(&self) -> Option<Format> {
        self.parser.format()
    }

    /// Packets handed out so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// File offset of the next record.
    pub fn offset(&self) -> u64 {
        self.parser.offset()
    }

    /// The next packet, `None` at a clean end of file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        if self.src.as_slice().is_some() {
            return self.next_mapped();
        }
        let (used, skip) = std::mem::take(&mut self.pending);
        self.consume(used, skip)?;
        loop {
            match self.parser.parse(&self.buf[self.start..self.end])? {
                Step::NeedBytes {
                    len,
                    what,
                    record_len,
                } => {
                    if self.is_eof {
                        let rest = &self.buf[self.start..self.end];
                        return at_eof(&self.parser, rest, what, record_len).map(|()| None);
                    }
                    self.fill(len)?;
                }
                Step::Skip { used, skip } => self.consume(used, skip)?,
                Step::Packet {
                    used,
                    skip,
                    meta,
                    data,
                } => {
                    self.pending = (used, skip);
                    self.packets += 1;
                    let base = self.start;
                    return Ok(Some(Packet {
                        meta,
                        data: &self.buf[base + data.start..base + data.end],
                    }));
                }
            }
        }
    }

    /// [`Self::next_packet`] over an input that is one slice: parsed in place, nothing copied.
    fn next_mapped(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        self.src.reached(self.start);
        let Self {
            src,
            parser,
            start,
            pending,
            packets,
            ..
        } = self;
        let all = src.as_slice().unwrap_or_default();
        let (used, skip) = std::mem::take(pending);
        advance_in_place(all.len(), start, parser, used, skip)?;
        loop {
            let rest = &all[*start..];
            match parser.parse(rest)? {
                Step::NeedBytes {
                    what, record_len, ..
                } => return at_eof(parser, rest, what, record_len).map(|()| None),
                Step::Skip { used, skip } => {
                    advance_in_place(all.len(), start, parser, used, skip)?
                }
                Step::Packet {
                    used,
                    skip,
                    meta,
                    data,
                } => {
                    *pending = (used, skip);
                    *packets += 1;
                    let base = *start;
                    // Record headers are a chain (each length leads to the next): guess where
                    // the one a few records on starts, from this one's size, and ask for it now
                    // so it is in the cache when the chain gets there.
                    let record = used + skip as usize;
                    prefetch(
                        all,
                        base.saturating_add(record.saturating_mul(PREFETCH_RECORDS)),
                    );
                    return Ok(Some(Packet {
                        meta,
                        data: &all[base + data.start..base + data.end],
                    }));
                }
            }
        }
    }

    /// Drops `used` buffered bytes and `skip` more from the stream.
    fn consume(&mut self, used: usize, skip: u64) -> Result<(), CaptureError> {
        self.start += used;
        let buffered = (self.end - self.start) as u64;
        if skip <= buffered {
            self.start += skip as usize;
            if used > 0 {
                self.is_sparse = false;
            }
            return Ok(());
        }
        let rest = skip - buffered;
        self.start = 0;
        self.end = 0;
        let skipped = self.src.skip(rest)?;
        self.is_sparse = true;
        if skipped < rest {
            // The parser already counted the whole record; report where it started.
            let record_end = self.parser.offset();
            return Err(CaptureError::Truncated {
                offset: self.last_record_start(record_end, used as u64 + skip),
                what: "record",
                needed: used as u64 + skip,
                available: used as u64 + buffered + skipped,
            });
        }
        Ok(())
    }

    fn last_record_start(&self, record_end: u64, record_len: u64) -> u64 {
        record_end.saturating_sub(record_len)
    }

    /// Reads until at least `need` bytes are buffered or the stream ends.
    fn fill(&mut self, need: usize) -> Result<(), CaptureError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if need > self.buf.len() {
            self.buf.resize(need.next_power_of_two(), 0);
        }
        let chunk = if self.is_sparse {
            SPARSE_READ
        } else {
            READ_CHUNK
        };
        let target = need.max(self.end + chunk).min(self.buf.len());
        while self.end < need {
            let n = match self.src.read(&mut self.buf[self.end..target]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                self.is_eof = true;
                break;
            }
            self.end += n;
        }
        Ok(())
    }
}

/// How many records ahead [`prefetch`] guesses.
const PREFETCH_RECORDS: usize = 4;

/// Hints the CPU to load the cache line at `at` of `all` (nothing if past its end).
#[inline]
fn prefetch(all: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(byte) = all.get(at) {
        // SAFETY: a prefetch is only a hint; it never faults, and the address is in the slice.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (byte as *const u8).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (all, at);
}

/// Moves `start` past a record of `used + skip` bytes in an input of `len` bytes, or reports
/// the record as truncated (the parser has already counted it, so its start is `offset - len`).
fn advance_in_place(
    len: usize,
    start: &mut usize,
    parser: &CaptureParser,
    used: usize,
    skip: u64,
) -> Result<(), CaptureError> {
    let record = used as u64 + skip;
    let available = (len - *start) as u64;
    if record > available {
        *start = len;
        return Err(CaptureError::Truncated {
            offset: parser.offset().saturating_sub(record),
            what: "record",
            needed: record,
            available,
        });
    }
    *start += record as usize;
    Ok(())
}

/// The input ended while the parser wanted more: a clean end between records, or why not.
fn at_eof(
    parser: &CaptureParser,
    rest: &[u8],
    what: &'static str,
    record_len: u64,
) -> Result<(), CaptureError> {
    let available = rest.len() as u64;
    match (parser.format(), available) {
        (Some(_), 0) => Ok(()),
        (None, 0) => Err(CaptureError::EmptyFile),
        (None, 1..=3) => Err(CaptureError::NotACapture {
            found: rest.to_vec(),
        }),
        _ => Err(CaptureError::Truncated {
            offset: parser.offset(),
            what,
            needed: record_len,
            available,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_header(magic: u32, big: bool, link: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        w32(&mut v, magic);
        v.extend_from_slice(&if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, link);
        v
    }

    fn pcap_record(big: bool, secs: u32, frac: u32, data: &[u8], orig: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [secs, frac, data.len() as u32, orig] {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        }
        v.extend_from_slice(data);
        v
    }

    fn read_all(bytes: &[u8]) -> (Vec<(PacketMeta, Vec<u8>)>, Option<CaptureError>) {
        let mut r = CaptureReader::new(bytes);
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => out.push((p.meta, p.data.to_vec())),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn pcap_in_both_byte_orders_and_resolutions() {
        for (magic, big, frac, ns) in [
            (PCAP_MAGIC_US, false, 250_000, 250_000_000),
            (PCAP_MAGIC_US, true, 250_000, 250_000_000),
            (PCAP_MAGIC_NS, false, 123, 123),
            (PCAP_MAGIC_NS, true, 999_999_999, 999_999_999),
        ] {
            let mut f = pcap_header(magic, big, 101);
            f.extend(pcap_record(big, 7, frac, b"abc", 60));
            let (pkts, err) = read_all(&f);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(pkts.len(), 1);
            let m = pkts[0].0;
            assert_eq!(m.ts, Timestamp::from_parts(7, ns));
            assert_eq!((m.cap_len, m.orig_len, m.link_type), (3, 60, LinkType::RAW));
            assert_eq!(pkts[0].1, b"abc");
        }
    }

    #[test]
    fn truncated_record_names_its_offset_and_keeps_earlier_packets() {
        let mut f = pcap_header(PCAP_MAGIC_US, false, 1);
        f.extend(pcap_record(false, 1, 0, &[1; 40], 40));
        let second_at = f.len() as u64;
        f.extend(pcap_record(false, 2, 0, &[2; 40], 40));
        f.truncate(f.len() - 10);
        let (pkts, err) = read_all(&f);
        assert_eq!(pkts.len(), 1);
        match err {
            Some(CaptureError::Truncated {
                offset,
                needed,
                available,
                ..
            }) => {
                assert_eq!(offset, second_at);
                assert_eq!((needed, available), (56, 46));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_a_capture_and_empty_are_errors() {
        assert!(matches!(
            read_all(b"hello world").1,
            Some(CaptureError::NotACapture { .. })
        ));
        assert!(matches!(read_all(b"").1, Some(CaptureError::EmptyFile)));
        assert!(matches!(
            read_all(b"hi").1,
            Some(CaptureError::NotACapture { .. })
        ));
    }

    #[test]
    fn damaged_record_header_is_corrupt_at_its_offset() {
        let mut f = pcap_header(PCAP_MAGIC_US, false, 1);
        let at = f.len() as u64;
        let mut damaged = pcap_record(false, 1, 2, b"x", 1);
        damaged[8..12].copy_from_slice(&300_000u32.to_le_bytes());
        f.extend(damaged);
        match read_all(&f).1 {
            Some(CaptureError::Corrupt { offset, .. }) => assert_eq!(offset, at),
            other => panic!("{other:?}"),
        }
    }

    /// As tshark reads them: 10 s + 1 500 000 µs is 11.5 s; the next record goes on.
    #[test]
    fn a_fraction_of_a_whole_second_or_more_carries_into_the_seconds() {
        for (magic, frac, ns) in [
            (PCAP_MAGIC_US, 1_500_000, 1_500_000_000),
            (PCAP_MAGIC_NS, 2_000_000_001, 2_000_000_001),
        ] {
            let mut f = pcap_header(magic, false, 101);
            f.extend(pcap_record(false, 10, frac, b"abc", 3));
            f.extend(pcap_record(false, 11, 5, b"abc", 3));
            let (pkts, err) = read_all(&f);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(pkts[0].0.ts, Timestamp(10_000_000_000 + ns));
            assert_eq!(pkts.len(), 2);
        }
    }

    #[test]
    fn ng_timestamps_follow_if_tsresol() {
        assert_eq!(
            ng_timestamp(1_500_000, 6, 0),
            Timestamp::from_parts(1, 500_000_000)
        );
        assert_eq!(
            ng_timestamp(1_000_000_007, 9, 10),
            Timestamp::from_parts(11, 7)
        );
        // 2^-10 s units: 1536 units = 1.5 s.
        assert_eq!(
            ng_timestamp(1536, 0x80 | 10, 0),
            Timestamp::from_parts(1, 500_000_000)
        );
    }

    #[test]
    fn parser_split_at_every_offset_gives_the_same_packets() {
        let mut f = pcap_header(PCAP_MAGIC_NS, true, 1);
        for i in 0..3u8 {
            f.extend(pcap_record(true, 1, u32::from(i), &[i; 30], 30));
        }
        let whole = read_all(&f).0;
        for split in 0..f.len() {
            // A reader whose source yields the file in two reads, split at `split`.
            let chained = (&f[..split]).chain(&f[split..]);
            let mut r = CaptureReader::new(chained);
            let mut got = Vec::new();
            while let Some(p) = r.next_packet().expect("valid") {
                got.push((p.meta, p.data.to_vec()));
            }
            assert_eq!(got, whole, "split at {split}");
        }
    }
}
