//! The kernel's statistics for one TCP connection (`TCP_INFO` on Linux), read from a socket's
//! file descriptor into a plain, serialisable struct. Elsewhere [`read`] returns `None`.
//! Depends on libc only: the hub and the publisher both use it.

use serde::Serialize;

/// One sample of a connection's TCP state. Times in microseconds, sizes in bytes unless named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpStats {
    /// Smoothed round-trip time.
    pub rtt_us: u32,
    /// Round-trip time variance.
    pub rttvar_us: u32,
    /// Smallest RTT seen.
    pub min_rtt_us: u32,
    /// Receiver-side RTT estimate (for a connection that mostly receives).
    pub rcv_rtt_us: u32,
    /// Congestion window, in segments.
    pub cwnd_segments: u32,
    /// Maximum segment size for sending.
    pub mss: u32,
    /// Segments sent but not yet acknowledged (in flight).
    pub unacked_segments: u32,
    /// Retransmitted segments over the connection's life.
    pub total_retrans: u32,
    /// Segments currently considered lost.
    pub lost_segments: u32,
    /// Bytes written by the application that the kernel has not sent yet.
    pub notsent_bytes: u32,
    /// The receiver's advertised window.
    pub snd_wnd: u32,
    /// Most recent delivery rate estimate, bytes per second.
    pub delivery_rate: u64,
    /// Pacing rate, bytes per second.
    pub pacing_rate: u64,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received from the peer.
    pub bytes_received: u64,
    /// Bytes retransmitted.
    pub bytes_retrans: u64,
}

impl TcpStats {
    /// Bytes in flight: unacknowledged segments times the segment size.
    pub fn in_flight_bytes(&self) -> u64 {
        u64::from(self.unacked_segments) * u64::from(self.mss)
    }

    /// Congestion window in bytes.
    pub fn cwnd_bytes(&self) -> u64 {
        u64::from(self.cwnd_segments) * u64::from(self.mss)
    }
}

/// Reads `TCP_INFO` of the socket `fd`; `None` if the kernel refuses (not a TCP socket, or not
/// Linux).
#[cfg(target_os = "linux")]
pub fn read(fd: std::os::fd::RawFd) -> Option<TcpStats> {
    // SAFETY: tcp_info is plain old data, so all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a live, writable tcp_info and `len` holds its size; the kernel writes at
    // most `len` bytes and tells how many in `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    // Older kernels fill a shorter struct; the rest stays zero, which reads as "unknown".
    Some(TcpStats {
        rtt_us: info.tcpi_rtt,
        rttvar_us: info.tcpi_rttvar,
        min_rtt_us: info.tcpi_min_rtt,
        rcv_rtt_us: info.tcpi_rcv_rtt,
        cwnd_segments: info.tcpi_snd_cwnd,
        mss: info.tcpi_snd_mss,
        unacked_segments: info.tcpi_unacked,
        total_retrans: info.tcpi_total_retrans,
        lost_segments: info.tcpi_lost,
        notsent_bytes: info.tcpi_notsent_bytes,
        snd_wnd: info.tcpi_snd_wnd,
        delivery_rate: info.tcpi_delivery_rate,
        pacing_rate: info.tcpi_pacing_rate,
        bytes_acked: info.tcpi_bytes_acked,
        bytes_received: info.tcpi_bytes_received,
        bytes_retrans: info.tcpi_bytes_retrans,
    })
}

/// Reads `TCP_INFO`: not available on this platform.
#[cfg(not(target_os = "linux"))]
pub fn read(_fd: i32) -> Option<TcpStats> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn counts_bytes_on_a_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7u8; 100_000]).unwrap();
        let mut got = vec![0u8; 100_000];
        server.read_exact(&mut got).unwrap();
        let sender = super::read(client.as_raw_fd()).expect("TCP_INFO on Linux");
        let receiver = super::read(server.as_raw_fd()).expect("TCP_INFO on Linux");
        assert_eq!(receiver.bytes_received, 100_000);
        assert!(sender.bytes_acked >= 100_000, "{sender:?}");
        assert!(sender.mss > 0 && sender.cwnd_segments > 0, "{sender:?}");
        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(super::read(file.as_raw_fd()), None);
    }
}
