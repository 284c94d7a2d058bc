//! `--flow` filters: which connections to report.
//!
//! A filter is one endpoint pattern, or two joined by `-` (both must match, either way round).
//! An endpoint pattern is `IP`, `IP:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::flow::Connection;

/// One endpoint pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPattern {
    /// Address to match, if any.
    pub ip: Option<IpAddr>,
    /// Port to match, if any.
    pub port: Option<u16>,
}

impl EndpointPattern {
    fn matches(&self, addr: SocketAddr) -> bool {
        self.ip.is_none_or(|ip| ip == addr.ip()) && self.port.is_none_or(|p| p == addr.port())
    }
}

impl FromStr for EndpointPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Self {
                ip: Some(sa.ip()),
                port: Some(sa.port()),
            });
        }
        if let Ok(ip) = s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(Self {
                ip: Some(ip),
                port: None,
            });
        }
        if let Ok(port) = s.trim_start_matches(':').parse::<u16>() {
            return Ok(Self {
                ip: None,
                port: Some(port),
            });
        }
        Err(format!(
            "{s:?} is not an endpoint: use IP, IP:PORT, [IPv6]:PORT, :PORT or PORT"
        ))
    }
}

/// A connection filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFilter {
    /// First endpoint.
    pub one: EndpointPattern,
    /// The other endpoint, when both are given.
    pub other: Option<EndpointPattern>,
}

impl FlowFilter {
    /// Whether `conn` matches.
    pub fn matches(&self, conn: &Connection) -> bool {
        match self.other {
            None => self.one.matches(conn.a) || self.one.matches(conn.b),
            Some(other) => {
                (self.one.matches(conn.a) && other.matches(conn.b))
                    || (self.one.matches(conn.b) && other.matches(conn.a))
            }
        }
    }
}

impl FromStr for FlowFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('-') {
            Some((one, other)) => Ok(Self {
                one: one.parse()?,
                other: Some(other.parse()?),
            }),
            None => Ok(Self {
                one: s.parse()?,
                other: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowTable;
    use crate::segment::{Segment, TcpFlags, TcpOptions};
    use crate::time::Timestamp;

    fn conn(a: &str, b: &str) -> Connection {
        let mut t = FlowTable::new();
        t.handle_segment(
            Timestamp(0),
            &Segment {
                src: a.parse().unwrap(),
                dst: b.parse().unwrap(),
                seq: 1,
                ack: 0,
                flags: TcpFlags(TcpFlags::SYN),
                window: 1,
                payload_len: 0,
                options: TcpOptions::default(),
                is_ip_len_past_frame: false,
            },
            60,
        );
        t.into_connections().remove(0)
    }

    #[test]
    fn endpoint_forms() {
        let c = conn("127.0.0.1:40000", "127.0.0.2:9999");
        for yes in [
            "9999",
            ":9999",
            "127.0.0.2",
            "127.0.0.1:40000",
            "127.0.0.2:9999-127.0.0.1",
            "40000-9999",
        ] {
            let f: FlowFilter = yes.parse().unwrap();
            assert!(f.matches(&c), "{yes}");
        }
        for no in ["9998", "127.0.0.3", "9999-9999"] {
            let f: FlowFilter = no.parse().unwrap();
            assert!(!f.matches(&c), "{no}");
        }
        let v6 = conn("[::1]:5000", "[::1]:6000");
        assert!("[::1]:6000".parse::<FlowFilter>().unwrap().matches(&v6));
        assert!("::1".parse::<FlowFilter>().unwrap().matches(&v6));
        assert!("nonsense".parse::<FlowFilter>().is_err());
    }
}
