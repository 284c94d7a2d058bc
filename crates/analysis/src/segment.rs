//! From a captured frame to a TCP segment: link header, IPv4/IPv6, TCP header and options.
//!
//! Frames are often cut by the snaplen, so parsing is lax (etherparse's `LaxSlicedPacket`) and
//! the payload length comes from the IP header, never from the bytes captured.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TcpOptionElement, TransportSlice};

use crate::capture::LinkType;
use crate::defrag::{Fragment, FragmentKey};

/// TCP header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// Whether any of `bits` is set.
    pub fn any(self, bits: u8) -> bool {
        self.0 & bits != 0
    }
}

/// The TCP options the analysis uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Window scale shift (SYN only).
    pub window_scale: Option<u8>,
    /// MSS (SYN only).
    pub mss: Option<u16>,
    /// SACK blocks (left, right), `sack_len` of them.
    pub sack: [(u32, u32); 4],
    /// How many SACK blocks.
    pub sack_len: u8,
}

impl TcpOptions {
    /// The SACK blocks.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..usize::from(self.sack_len)]
    }
}

/// One TCP segment as the flow tracker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with ACK set).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// TCP payload length, from the IP header.
    pub payload_len: u32,
    /// Options.
    pub options: TcpOptions,
    /// The IP length field claimed more bytes than the frame had on the wire: the payload
    /// length was taken from the frame instead (as tshark does, which flags "IPv4 total
    /// length exceeds packet length").
    pub is_ip_len_past_frame: bool,
}

/// Why a frame yields no TCP segment. Counted, not fatal: captures hold ARP, UDP and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skipped {
    /// The link type is not one we decode.
    UnsupportedLink(LinkType),
    /// Not IPv4/IPv6 (ARP, LLDP, …).
    NotIp,
    /// IP but not TCP.
    NotTcp,
    /// A TCP header cut by the snaplen or damaged.
    Undecodable,
    /// A fragment of an IP datagram carrying TCP or a tunnel: [`fragment`] reads it for
    /// reassembly.
    Fragment,
    /// An ICMP or ICMPv6 error. What it quotes is not analysed: tshark shows a quoted TCP
    /// header but neither analyses it nor counts it in its TCP conversations.
    IcmpError,
}

/// Linux `AF_INET6` differs per BSD; all of these mean IPv6 in a NULL/LOOP header.
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Decodes one frame. `orig_len` (the wire length) stands in for an IP length of 0, which
/// TSO/GSO captures show for segments larger than 64 KiB.
pub fn decode(link: LinkType, data: &[u8], orig_len: u32) -> Result<Segment, Skipped> {
    if link == LinkType::ETHERNET {
        if let Some(seg) = ethernet_ipv4_tcp(data, orig_len) {
            return Ok(seg);
        }
    }
    decode_lax(link, data, orig_len)
}

/// The common case without etherparse's general slicing (a third of the time per packet on a
/// bulk capture): untagged Ethernet, unfragmented IPv4, a whole TCP header within the IP
/// length. `None` for anything else, which [`decode_lax`] then reads; both give the same
/// segment (tested on every fixture frame and on damaged variants of them).
fn ethernet_ipv4_tcp(data: &[u8], orig_len: u32) -> Option<Segment> {
    const ETH: usize = 14;
    if data.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = data.get(ETH..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    // Version 4, protocol TCP, no fragment offset or more-fragments bit.
    if ip[0] >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 || ip.get(6)? & 0x3f != 0 || ip[7] != 0 {
        return None;
    }
    let tcp = ip.get(ihl..)?;
    let tcp_len = usize::from(*tcp.get(12)? >> 4) * 4;
    // The TCP header must lie within both the captured bytes and the IP length (a TSO length
    // of 0 or a short one is left to the general path).
    if tcp_len < 20 || tcp.len() < tcp_len || total_len < ihl + tcp_len {
        return None;
    }
    let addr = |at: usize| IpAddr::from([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    let be16 = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([tcp[at], tcp[at + 1], tcp[at + 2], tcp[at + 3]]);
    let on_wire = orig_len.saturating_sub((ETH + ihl) as u32);
    let ip_payload_len = (total_len - ihl) as u32;
    let flag_bits = tcp[13];
    let flags =
        flag_bits & (TcpFlags::FIN | TcpFlags::SYN | TcpFlags::RST | TcpFlags::PSH | TcpFlags::ACK);
    Some(Segment {
        src: SocketAddr::new(addr(12), be16(0)),
        dst: SocketAddr::new(addr(16), be16(2)),
        seq: be32(4),
        ack: be32(8),
        flags: TcpFlags(flags),
        window: be16(14),
        payload_len: ip_payload_len.min(on_wire).saturating_sub(tcp_len as u32),
        options: tcp_options(etherparse::TcpOptionsIterator::from_slice(
            &tcp[20..tcp_len],
        )),
        is_ip_len_past_frame: ip_payload_len > on_wire,
    })
}

/// Where the IP header starts in an Ethernet frame that carries it under MPLS labels or in a
/// PPPoE session (after any 802.1Q/802.1ad tags), which etherparse does not decode; `None` for
/// every other frame.
fn ethernet_ip_behind_mpls_or_pppoe(data: &[u8]) -> Option<usize> {
    let mut at = 12;
    let mut ether_type = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]);
    // VLAN tags (802.1Q, 802.1ad and the older 0x9100 QinQ), each 4 bytes; bounded by the frame.
    while matches!(ether_type, 0x8100 | 0x88a8 | 0x9100) {
        at += 4;
        ether_type = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]);
    }
    at += 2;
    match ether_type {
        // MPLS unicast and multicast: 4-byte labels until the bottom-of-stack bit, then IP
        // (told by its version nibble, as Wireshark guesses it).
        0x8847 | 0x8848 => {
            loop {
                let label = data.get(at..at + 4)?;
                at += 4;
                if label[2] & 0x01 != 0 {
                    break;
                }
            }
            matches!(data.get(at)? >> 4, 4 | 6).then_some(at)
        }
        // PPPoE session: version/type, code, session id, length, then PPP.
        0x8864 => {
            let ppp = data.get(at + 6..)?;
            Some(at + 6 + ppp_ip(ppp)?)
        }
        _ => None,
    }
}

/// The IP header's offset after a PPP protocol field (0x0021 IPv4, 0x0057 IPv6, or their
/// one-byte compressed forms), `None` for other protocols.
fn ppp_ip(ppp: &[u8]) -> Option<usize> {
    let first = *ppp.first()?;
    let (proto, len) = if first & 0x01 != 0 {
        (u16::from(first), 1)
    } else {
        (u16::from_be_bytes([first, *ppp.get(1)?]), 2)
    };
    matches!(proto, 0x0021 | 0x0057).then_some(len)
}

/// The link header of any supported link type, through etherparse's lax slicing.
fn slice_link(link: LinkType, data: &[u8]) -> Result<LaxSlicedPacket<'_>, Skipped> {
    Ok(match link {
        LinkType::ETHERNET => match ethernet_ip_behind_mpls_or_pppoe(data) {
            Some(at) => LaxSlicedPacket::from_ip(&data[at..]).map_err(|_| Skipped::NotIp)?,
            None => LaxSlicedPacket::from_ethernet(data).map_err(|_| Skipped::NotIp)?,
        },
        LinkType::PPP | LinkType::PPP_HDLC => {
            // RFC 1662: address 0xff and control 0x03 unless compressed away, then the protocol
            // (one byte when compressed: an odd first byte).
            let body = data.strip_prefix(&[0xff, 0x03]).unwrap_or(data);
            let at = ppp_ip(body).ok_or(Skipped::NotIp)?;
            LaxSlicedPacket::from_ip(&body[at..]).map_err(|_| Skipped::NotIp)?
        }
        LinkType::C_HDLC => {
            // Cisco HDLC: address, control, then an Ethernet type.
            let proto = data.get(2..4).ok_or(Skipped::Undecodable)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([proto[0], proto[1]])),
                &data[4..],
            )
        }
        LinkType::LINUX_SLL => {
            // 16 bytes: packet type, ARPHRD, address length, 8-byte address, protocol.
            let proto = data.get(14..16).ok_or(Skipped::Undecodable)?;
            let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
            LaxSlicedPacket::from_ether_type(ether_type, &data[16..])
        }
        LinkType::IEEE802_11 | LinkType::IEEE802_11_RADIOTAP | LinkType::PPI => {
            let frame = match link {
                // Radiotap: version, pad, little-endian length of the whole radio header.
                LinkType::IEEE802_11_RADIOTAP => {
                    let len = data.get(2..4).ok_or(Skipped::Undecodable)?;
                    data.get(usize::from(u16::from_le_bytes([len[0], len[1]]))..)
                }
                // PPI: version, flags, little-endian length, then the DLT it carries.
                LinkType::PPI => {
                    let h = data.get(..8).ok_or(Skipped::Undecodable)?;
                    if u32::from_le_bytes([h[4], h[5], h[6], h[7]]) != 105 {
                        return Err(Skipped::UnsupportedLink(link));
                    }
                    data.get(usize::from(u16::from_le_bytes([h[2], h[3]]))..)
                }
                _ => Some(data),
            };
            let (ether_type, body) = frame.and_then(ieee802_11_payload).ok_or(Skipped::NotIp)?;
            LaxSlicedPacket::from_ether_type(ether_type, body)
        }
        LinkType::LINUX_SLL2 => {
            // 20 bytes: protocol first, then interface index, ARPHRD, type, address.
            let proto = data.get(0..2).ok_or(Skipped::Undecodable)?;
            let body = data.get(20..).ok_or(Skipped::Undecodable)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([proto[0], proto[1]])),
                body,
            )
        }
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 | LinkType::IPV4 | LinkType::IPV6 => {
            LaxSlicedPacket::from_ip(data).map_err(|_| Skipped::NotIp)?
        }
        LinkType::NULL | LinkType::LOOP => {
            let af = data.get(0..4).ok_or(Skipped::Undecodable)?;
            let af = [af[0], af[1], af[2], af[3]];
            // NULL is in the capturing host's byte order; families are small, so the zero half
            // tells the order. LOOP is always big-endian.
            let family = if link == LinkType::LOOP || af[0] == 0 {
                u32::from_be_bytes(af)
            } else {
                u32::from_le_bytes(af)
            };
            if family != AF_INET && !AF_INET6.contains(&family) {
                return Err(Skipped::NotIp);
            }
            LaxSlicedPacket::from_ip(&data[4..]).map_err(|_| Skipped::NotIp)?
        }
        other => return Err(Skipped::UnsupportedLink(other)),
    })
}

/// The LLC/SNAP payload of an unprotected 802.11 data frame (with the EtherType it names);
/// `None` for management, control, null-data and protected frames.
fn ieee802_11_payload(frame: &[u8]) -> Option<(EtherType, &[u8])> {
    let (fc0, fc1) = (*frame.first()?, *frame.get(1)?);
    let (kind, subtype) = ((fc0 >> 2) & 0x03, fc0 >> 4);
    // Data frames (type 2) that carry data (subtype bit 2 clear), not protected (WEP/WPA).
    if kind != 2 || subtype & 0x04 != 0 || fc1 & 0x40 != 0 {
        return None;
    }
    let mut at = 24;
    if fc1 & 0x03 == 0x03 {
        at += 6; // a fourth address (to and from the distribution system)
    }
    if subtype & 0x08 != 0 {
        at += 2; // QoS control
        if fc1 & 0x80 != 0 {
            at += 4; // HT control, with the order bit
        }
    }
    let llc = frame.get(at..at + 8)?;
    if llc[..6] != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return None;
    }
    Some((
        EtherType(u16::from_be_bytes([llc[6], llc[7]])),
        &frame[at + 8..],
    ))
}

/// A frame that [`decode`] answered [`Skipped::Fragment`] for, as a fragment to reassemble
/// (`None` for anything else). Its length on the wire comes from the IP header, trimmed to the
/// frame's `orig_len` as [`decode`] trims a segment's.
pub fn fragment(link: LinkType, data: &[u8], orig_len: u32) -> Option<Fragment<'_>> {
    let sliced = slice_link(link, data).ok()?;
    let (key, offset, is_last, payload, ip_len) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) if v4.is_payload_fragmented() => {
            let h = v4.header();
            let header_len = u32::from(h.ihl()) * 4;
            (
                FragmentKey::V4 {
                    src: h.source(),
                    dst: h.destination(),
                    id: h.identification(),
                    protocol: h.protocol().0,
                },
                u32::from(h.fragments_offset().value()) * 8,
                !h.more_fragments(),
                v4.payload().payload,
                u32::from(h.total_len()).saturating_sub(header_len),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) if v6.is_payload_fragmented() => {
            let frag = v6.extensions().clone().into_iter().find_map(|e| match e {
                etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f),
                _ => None,
            })?;
            let h = v6.header();
            let ext_len = v6.extensions().slice().len() as u32;
            (
                FragmentKey::V6 {
                    src: h.source(),
                    dst: h.destination(),
                    id: frag.identification(),
                    next_header: frag.next_header().0,
                },
                u32::from(frag.fragment_offset().value()) * 8,
                !frag.more_fragments(),
                v6.payload().payload,
                u32::from(h.payload_length()).saturating_sub(ext_len),
            )
        }
        _ => return None,
    };
    let on_wire = orig_len.saturating_sub(offset_in(data, payload) as u32);
    Some(Fragment {
        key,
        offset,
        len: ip_len.min(on_wire),
        is_last,
        data: payload,
    })
}

/// Tunnels are followed at most this deep: a crafted chain of IP-in-IP headers must not
/// recurse without end.
const MAX_TUNNEL_DEPTH: u8 = 4;

/// IP protocol numbers of the tunnels followed: IPv4-in-IP, IPv6-in-IP, GRE.
const IP_IN_IP: u8 = 4;
const IPV6_IN_IP: u8 = 41;
const GRE: u8 = 47;

/// VXLAN's UDP port (RFC 7348), which tshark decodes as VXLAN by default.
const VXLAN_PORT: u16 = 4789;

/// Any supported link type, through etherparse's lax slicing.
fn decode_lax(link: LinkType, data: &[u8], orig_len: u32) -> Result<Segment, Skipped> {
    decode_lax_within(link, data, orig_len, 0)
}

/// [`decode_lax`] inside `depth` tunnels.
fn decode_lax_within(
    link: LinkType,
    data: &[u8],
    orig_len: u32,
    depth: u8,
) -> Result<Segment, Skipped> {
    let sliced = slice_link(link, data)?;
    // Not TCP: a tunnel's inner frame (as its own connection, as tshark lists it), or nothing.
    let inner = |ip_number: etherparse::IpNumber, payload: &[u8], is_fragmented: bool| {
        let protocol = ip_number.0;
        if is_fragmented && matches!(protocol, IP_IN_IP | IPV6_IN_IP | GRE) {
            return Err(Skipped::Fragment);
        }
        // ICMP errors (RFC 792: unreachable, source quench, redirect, time exceeded, parameter
        // problem) and ICMPv6 errors (RFC 4443: types 1 to 4).
        match (protocol, payload.first()) {
            (1, Some(3 | 4 | 5 | 11 | 12)) | (58, Some(1..=4)) if !is_fragmented => {
                return Err(Skipped::IcmpError)
            }
            _ => {}
        }
        let (inner_link, inner) =
            tunnel_inner(protocol, payload, sliced.transport.as_ref()).ok_or(Skipped::NotTcp)?;
        if is_fragmented || depth >= MAX_TUNNEL_DEPTH {
            return Err(Skipped::NotTcp);
        }
        let inner_len = orig_len.saturating_sub(offset_in(data, inner) as u32);
        decode_lax_within(inner_link, inner, inner_len, depth + 1)
    };
    // `on_wire`: the bytes after the IP header(s) in the frame as it was on the wire.
    let (src_ip, dst_ip, ip_payload_len, on_wire) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let p = v4.payload();
            if p.ip_number != etherparse::IpNumber::TCP {
                return inner(p.ip_number, p.payload, v4.is_payload_fragmented());
            }
            if v4.is_payload_fragmented() {
                return Err(Skipped::Fragment);
            }
            let start = offset_in(data, p.payload);
            let header_len = u32::from(h.ihl()) * 4;
            let on_wire = orig_len.saturating_sub(start as u32);
            let len = if h.total_len() == 0 {
                on_wire
            } else {
                u32::from(h.total_len()).saturating_sub(header_len)
            };
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                len,
                on_wire,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let p = v6.payload();
            if p.ip_number != etherparse::IpNumber::TCP {
                return inner(p.ip_number, p.payload, v6.is_payload_fragmented());
            }
            if v6.is_payload_fragmented() {
                return Err(Skipped::Fragment);
            }
            let start = offset_in(data, p.payload);
            let ext_len = v6.extensions().slice().len() as u32;
            let on_wire = orig_len.saturating_sub(start as u32);
            let len = if h.payload_length() == 0 {
                on_wire
            } else {
                u32::from(h.payload_length()).saturating_sub(ext_len)
            };
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
                len,
                on_wire,
            )
        }
        _ => return Err(Skipped::NotIp),
    };
    let is_ip_len_past_frame = ip_payload_len > on_wire;
    let ip_payload_len = ip_payload_len.min(on_wire);
    let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
        return Err(Skipped::Undecodable);
    };
    let mut flags = 0;
    for (is_set, bit) in [
        (tcp.fin(), TcpFlags::FIN),
        (tcp.syn(), TcpFlags::SYN),
        (tcp.rst(), TcpFlags::RST),
        (tcp.psh(), TcpFlags::PSH),
        (tcp.ack(), TcpFlags::ACK),
    ] {
        if is_set {
            flags |= bit;
        }
    }
    let options = tcp_options(tcp.options_iterator());
    let header_len = u32::from(tcp.data_offset()) * 4;
    Ok(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: TcpFlags(flags),
        window: tcp.window_size(),
        payload_len: ip_payload_len.saturating_sub(header_len),
        options,
        is_ip_len_past_frame,
    })
}

/// The frame a tunnel carries and its link type: IPv4/IPv6 in IP, GRE (RFC 2784/2890: checksum,
/// key and sequence options) carrying IP, Ethernet (transparent bridging) or ERSPAN types I–III,
/// and VXLAN on UDP port 4789. `None` for anything else.
fn tunnel_inner<'a>(
    protocol: u8,
    payload: &'a [u8],
    transport: Option<&TransportSlice<'a>>,
) -> Option<(LinkType, &'a [u8])> {
    match protocol {
        IP_IN_IP | IPV6_IN_IP => Some((LinkType::RAW, payload)),
        GRE => {
            let flags = *payload.first()?;
            // Version 0 only (1 is PPTP's enhanced GRE); no source routing (RFC 1701's R bit).
            if payload.get(1)? & 0x07 != 0 || flags & 0x40 != 0 {
                return None;
            }
            let proto = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]);
            let has_seq = flags & 0x10 != 0;
            let options = 4
                * (usize::from(flags & 0x80 != 0)   // checksum and reserved
                + usize::from(flags & 0x20 != 0)                 // key
                + usize::from(has_seq)); // sequence number
            let body = payload.get(4 + options..)?;
            match proto {
                0x0800 | 0x86dd => Some((LinkType::RAW, body)),
                0x6558 => Some((LinkType::ETHERNET, body)),
                // ERSPAN type II has a sequence number and an 8-byte header; type I has neither.
                0x88be if has_seq => Some((LinkType::ETHERNET, body.get(8..)?)),
                0x88be => Some((LinkType::ETHERNET, body)),
                // ERSPAN type III: 12 bytes, then an 8-byte platform subheader if its O bit is set.
                0x22eb => {
                    let extra = if body.get(11)? & 0x01 != 0 { 8 } else { 0 };
                    Some((LinkType::ETHERNET, body.get(12 + extra..)?))
                }
                _ => None,
            }
        }
        17 => match transport? {
            TransportSlice::Udp(udp)
                if udp.destination_port() == VXLAN_PORT && udp.payload().len() >= 8 =>
            {
                // Flags with the I bit (a valid VNI), 3 reserved bytes, VNI, reserved.
                (udp.payload()[0] & 0x08 != 0).then(|| (LinkType::ETHERNET, &udp.payload()[8..]))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The options the analysis uses, read as etherparse reads them (stopping at the first
/// malformed or unknown one).
fn tcp_options(iter: etherparse::TcpOptionsIterator<'_>) -> TcpOptions {
    let mut options = TcpOptions::default();
    for option in iter {
        match option {
            Ok(TcpOptionElement::WindowScale(s)) => options.window_scale = Some(s),
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => options.mss = Some(m),
            Ok(TcpOptionElement::SelectiveAcknowledgement(first, rest)) => {
                options.sack[0] = first;
                options.sack_len = 1;
                for block in rest.into_iter().flatten() {
                    options.sack[usize::from(options.sack_len)] = block;
                    options.sack_len += 1;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    options
}

/// Where `inner` starts within `outer` (both slices of one buffer).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    /// Every frame the fast path accepts decodes as etherparse decodes it: the scripted
    /// conversation in both families, each frame also cut at every length and with each header
    /// byte of the first 80 replaced by a few values.
    #[test]
    fn the_ethernet_ipv4_fast_path_agrees_with_the_general_decoder() {
        let a = "192.0.2.10:40312".parse().expect("addr");
        let b = "192.0.2.1:9999".parse().expect("addr");
        let c = "192.0.2.11:40313".parse().expect("addr");
        let mut checked = 0;
        for p in synth::conversation(a, b, c, 1_000_000) {
            let frame = synth::encapsulate(LinkType::ETHERNET, &p.ip_bytes(), None);
            let orig = frame.len() as u32;
            let mut variants = Vec::new();
            for cut in 0..frame.len().min(120) {
                variants.push(frame[..cut].to_vec());
            }
            for at in 0..frame.len().min(80) {
                for v in [0u8, 1, 0x45, 0x4f, 0x80, 0xff] {
                    let mut f = frame.clone();
                    f[at] = v;
                    variants.push(f);
                }
            }
            variants.push(frame);
            for f in variants {
                if let Some(fast) = ethernet_ipv4_tcp(&f, orig) {
                    assert_eq!(
                        Ok(fast),
                        decode_lax(LinkType::ETHERNET, &f, orig),
                        "{f:02x?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "only {checked} frames took the fast path");
    }
}
