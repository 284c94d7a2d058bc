//! Addresses as users type them: listen addresses in the short forms other media servers
//! accept (`9999`, `:9999`), and hub addresses that are not URLs.

use std::net::{Ipv4Addr, SocketAddr};

/// Parses a listen address: `HOST:PORT`, `[V6]:PORT`, or a port alone (`9999` or `:9999`),
/// which means every interface, as MediaMTX and go2rtc read it.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let trimmed = text.trim();
    let port_only = trimmed.strip_prefix(':').unwrap_or(trimmed);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        return port_only
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .map_err(|_| format!("{text:?}: a port is 0 to 65535 (e.g. :9999)"));
    }
    trimmed.parse().map_err(|_| {
        format!("{text:?} is not a listen address: try :9999 (every interface), 127.0.0.1:9999 or [::]:9999")
    })
}

/// Checks a hub address (`host` or `host:port`): a URL is refused with what to type instead,
/// since the hub speaks its own protocol, not HTTP.
pub fn parse_hub(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if let Some((scheme, rest)) = trimmed.split_once("://") {
        let host = rest.split('/').next().unwrap_or(rest);
        return Err(format!(
            "{text:?} is a {scheme} URL; HUB is host[:port] (default port 9999), e.g. {}",
            if host.is_empty() {
                "127.0.0.1:9999"
            } else {
                host
            }
        ));
    }
    if trimmed.is_empty() || trimmed.contains('/') {
        return Err(format!(
            "{text:?} is not a hub address; HUB is host[:port] (default port 9999), e.g. 127.0.0.1:9999"
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_means_every_interface() {
        for text in ["9999", ":9999", " :9999 "] {
            assert_eq!(parse_listen(text), Ok("0.0.0.0:9999".parse().unwrap()));
        }
        assert_eq!(
            parse_listen("127.0.0.1:8080"),
            Ok("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(parse_listen("[::]:9999"), Ok("[::]:9999".parse().unwrap()));
        assert!(parse_listen("70000").unwrap_err().contains("65535"));
        assert!(parse_listen("localhost").unwrap_err().contains(":9999"));
        assert!(parse_listen("").is_err());
    }

    #[test]
    fn a_url_is_not_a_hub() {
        let err = parse_hub("http://host:9999").unwrap_err();
        assert!(
            err.contains("HUB is host[:port]") && err.contains("e.g. host:9999"),
            "{err}"
        );
        assert!(parse_hub("tcp://").unwrap_err().contains("127.0.0.1:9999"));
        assert!(parse_hub("host/path").is_err());
        assert_eq!(parse_hub("pi.local"), Ok("pi.local".to_owned()));
        assert_eq!(parse_hub("[::1]:9999"), Ok("[::1]:9999".to_owned()));
    }
}
