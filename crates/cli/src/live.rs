//! `vidcast analyze --live IFACE`: packets from an AF_PACKET socket (no libpcap), handed to the
//! capture reader as a pcap stream, so the analysis, `--follow` and the graphs' spool work as
//! they do for `tcpdump -w - | vidcast analyze -`.
//!
//! The socket is `SOCK_DGRAM` (the kernel strips the link header, whatever the interface), so
//! the stream is raw IP (link type 101) with nanosecond times from the kernel's receive stamp
//! (SIOCGSTAMPNS). On a loopback interface every packet passes twice (out, then in); the
//! outgoing copy is skipped, as libpcap does. SIGINT and SIGTERM end the stream: the reader
//! sees its end, so the summary and graphs cover everything read.

use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use vidcast_analysis::capture::LinkType;
use vidcast_analysis::segment::{self, Segment};

/// Set by SIGINT/SIGTERM: the live stream ends at its next check (every 200 ms at most).
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// `SIOCGSTAMPNS` (linux/sockios.h): the last packet's receive time as a timespec; the same
/// number and layout on every 64-bit Linux.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
/// `PACKET_OUTGOING` (linux/if_packet.h).
const PACKET_OUTGOING: u8 = 4;
/// Largest packet read (a GRO'd TCP segment on loopback can be 64 KiB and more).
const SNAPLEN: usize = 262_144;

/// The `--filter` language: terms joined by `and`; each is `tcp`, `port N` or `host ADDR`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveFilter {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Tcp,
    Port(u16),
    Host(IpAddr),
}

impl FromStr for LiveFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let mut terms = Vec::new();
        loop {
            let term = match words.next() {
                Some("tcp") => Term::Tcp,
                Some("port") => Term::Port(
                    words
                        .next()
                        .and_then(|p| p.parse().ok())
                        .ok_or("'port' takes a number")?,
                ),
                Some("host") => Term::Host(
                    words
                        .next()
                        .and_then(|a| a.parse().ok())
                        .ok_or("'host' takes an IPv4 or IPv6 address")?,
                ),
                Some(other) => {
                    return Err(format!(
                        "unknown filter word '{other}' (tcp, port N, host ADDR, and)"
                    ))
                }
                None => return Err("the filter is empty or ends with 'and'".to_owned()),
            };
            terms.push(term);
            match words.next() {
                None => return Ok(Self { terms }),
                Some("and") => {}
                Some(other) => return Err(format!("expected 'and', found '{other}'")),
            }
        }
    }
}

impl LiveFilter {
    /// Whether a TCP segment passes every term.
    pub fn matches(&self, seg: &Segment) -> bool {
        self.terms.iter().all(|t| match *t {
            Term::Tcp => true,
            Term::Port(p) => seg.src.port() == p || seg.dst.port() == p,
            Term::Host(a) => seg.src.ip() == a || seg.dst.ip() == a,
        })
    }
}

/// A pcap stream of the IP packets an interface sends and receives that pass the filter
/// (with a filter, TCP segments only).
pub struct LiveCapture {
    fd: OwnedFd,
    iface: String,
    is_loopback: bool,
    filter: Option<LiveFilter>,
    packet: Vec<u8>,
    /// Bytes of the stream not yet handed out, from `at`.
    out: Vec<u8>,
    at: usize,
}

impl LiveCapture {
    /// Opens interface `iface`; SIGINT and SIGTERM end the stream from now on.
    pub fn open(iface: &str, filter: Option<LiveFilter>) -> Result<Self> {
        let name = std::ffi::CString::new(iface).context("an interface name has no NUL")?;
        // SAFETY: a NUL-terminated string that lives across the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            bail!("no interface named {iface}");
        }
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the descriptor is owned right after.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(protocol)) };
        if raw < 0 {
            return Err(io::Error::last_os_error()).with_context(|| {
                format!("cannot capture on {iface} (AF_PACKET needs root or CAP_NET_RAW)")
            });
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_ll is valid; the fields set are its family, protocol, index.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol;
        sll.sll_ifindex = index as i32;
        // SAFETY: the address and its size describe `sll`.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if bound < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("cannot bind to {iface}"));
        }
        // A receive timeout, so a stop signal is noticed while the interface is quiet.
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: the option value and its size describe `timeout`.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        // Room for bursts while the analysis catches up (SO_RCVBUFFORCE passes rmem_max for
        // root; otherwise SO_RCVBUF up to it). Drops are counted at the end either way.
        let rcvbuf: libc::c_int = 16 << 20;
        for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: the option value and its size describe `rcvbuf`.
            let set = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&rcvbuf as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            if set == 0 {
                break;
            }
        }
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
        let is_loopback = std::fs::read_to_string(format!("/sys/class/net/{iface}/type"))
            .is_ok_and(|t| t.trim() == "772");
        // The pcap header: nanosecond magic, version 2.4, snaplen, raw IP.
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(SNAPLEN as u32).to_le_bytes());
        out.extend_from_slice(&u32::from(LinkType::RAW.0).to_le_bytes());
        Ok(Self {
            fd,
            iface: iface.to_owned(),
            is_loopback,
            filter,
            packet: vec![0; SNAPLEN],
            out,
            at: 0,
        })
    }

    /// Waits for the next packet that passes; `false` when a stop signal came.
    fn next_record(&mut self) -> io::Result<bool> {
        loop {
            if STOP.load(Ordering::SeqCst) {
                self.report_drops();
                return Ok(false);
            }
            // SAFETY: zeroed sockaddr_ll is valid, filled by recvfrom.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: the buffer and address describe memory we own, sized as passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.packet.as_mut_ptr().cast(),
                    self.packet.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            let wire_len = n as usize;
            let cap_len = wire_len.min(self.packet.len());
            let ether_type = u16::from_be(from.sll_protocol);
            if !matches!(ether_type, 0x0800 | 0x86dd)
                || (self.is_loopback && from.sll_pkttype == PACKET_OUTGOING)
            {
                continue;
            }
            let data = &self.packet[..cap_len];
            if let Some(f) = &self.filter {
                match segment::decode(LinkType::RAW, data, wire_len as u32) {
                    Ok(seg) if f.matches(&seg) => {}
                    _ => continue,
                }
            }
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: SIOCGSTAMPNS writes one timespec into `ts`.
            let got = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCGSTAMPNS as _, &mut ts) };
            if got < 0 {
                // SAFETY: clock_gettime writes one timespec into `ts`.
                unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
            }
            self.out.clear();
            self.at = 0;
            for word in [
                ts.tv_sec as u32,
                ts.tv_nsec as u32,
                cap_len as u32,
                wire_len as u32,
            ] {
                self.out.extend_from_slice(&word.to_le_bytes());
            }
            self.out.extend_from_slice(data);
            return Ok(true);
        }
    }
}

impl LiveCapture {
    /// Says on stderr how many packets the kernel dropped because the reader fell behind.
    fn report_drops(&self) {
        // SAFETY: zeroed tpacket_stats is valid; getsockopt fills it and its size.
        let mut stats: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as u32;
        // SAFETY: the value and its size describe `stats`.
        let got = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if got == 0 && stats.tp_drops > 0 {
            eprintln!(
                "{}: the kernel dropped {} packets (the reader fell behind); the analysis misses them",
                self.iface, stats.tp_drops
            );
        }
    }
}

impl Read for LiveCapture {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.out.len() && !self.next_record()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_language_parses_terms_joined_by_and() {
        let f: LiveFilter = "tcp and port 9999 and host 10.0.0.1".parse().unwrap();
        assert_eq!(
            f.terms,
            [
                Term::Tcp,
                Term::Port(9999),
                Term::Host("10.0.0.1".parse().unwrap())
            ]
        );
        for bad in [
            "",
            "port",
            "port x",
            "tcp and",
            "tcp or udp",
            "host nowhere",
            "udp",
        ] {
            assert!(bad.parse::<LiveFilter>().is_err(), "{bad:?}");
        }
    }
}
