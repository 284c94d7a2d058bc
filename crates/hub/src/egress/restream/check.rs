//! Where a restream target may point: its text, its host name and every address it resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::RtmpUrl;

/// Host names of cloud instance-metadata services (they hand out credentials to whoever asks
/// from the machine).
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
];
/// A host name must resolve within this long (when added, and at each connect).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address is never pushed to, or `None` if it may be. Private and loopback
/// addresses are allowed only with `allow_private` (`--restream` on the command line, or
/// API targets with `--restream-allow-private`); link-local, multicast, unspecified,
/// broadcast, reserved and cloud-metadata addresses never are.
pub fn ip_problem(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_problem(v4, allow_private),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_problem(v4, allow_private);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return v4_problem(Ipv4Addr::new(a, b, c, d), allow_private);
            }
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata service")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if !allow_private
                && (v6.is_loopback() || seg[0] & 0xfe00 == 0xfc00 || seg[0] & 0xffc0 == 0xfec0)
            {
                Some("loopback or private (allowed with --restream-allow-private)")
            } else {
                None
            }
        }
    }
}

fn v4_problem(v4: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let [a, b, ..] = v4.octets();
    if v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200) {
        Some("a cloud metadata service")
    } else if a == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if v4.is_broadcast() {
        Some("broadcast")
    } else if v4.is_multicast() {
        Some("multicast")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if a >= 240 {
        Some("reserved")
    } else if !allow_private
        && (v4.is_loopback() || v4.is_private() || (a == 100 && b & 0xc0 == 64))
    {
        Some("loopback or private (allowed with --restream-allow-private)")
    } else {
        None
    }
}

/// Checks a target's text and host before any lookup: no control, format or space
/// characters (they would reach the log and the server), no metadata host names, and IPv4
/// only in its dotted-quad spelling (`2130706433`, `0177.0.0.1`, `0x7f.1` are refused:
/// resolvers read them as addresses, and a check that reads them differently is bypassed).
/// Returns the host's address when it is one.
pub fn check_target_text(url: &RtmpUrl, text: &str) -> Result<Option<IpAddr>, String> {
    if text
        .chars()
        .any(|c| c.is_whitespace() || vidcast_proto::is_unsafe_char(c))
    {
        return Err("the address has spaces, control or invisible characters".into());
    }
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let host = url.host.trim_end_matches('.').to_ascii_lowercase();
    if METADATA_NAMES.contains(&host.as_str()) {
        return Err(format!("{host} is a cloud metadata service"));
    }
    let last = host.rsplit('.').next().unwrap_or_default();
    if last.starts_with(|c: char| c.is_ascii_digit()) || last.starts_with("0x") {
        return Err(format!(
            "{host} is not a host name, nor an IPv4 address in dotted decimal (a.b.c.d)"
        ));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!("{host} is not a host name"));
    }
    Ok(None)
}

/// Where a target's host may be reached: its address, or every address its name resolves
/// to, each checked with [`ip_problem`]. Called when a target is added and again at each
/// connect (a name may be re-pointed after it was checked: DNS rebinding); the connection
/// then goes to a checked address, not to a new lookup's.
pub(super) async fn checked_addrs(
    url: &RtmpUrl,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let refuse = |ip: IpAddr, why: &str| format!("{} resolves to {ip}, which is {why}", url.host);
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return match ip_problem(ip, allow_private) {
            Some(why) => Err(format!("{ip} is {why}")),
            None => Ok(vec![SocketAddr::new(ip, url.port)]),
        };
    }
    let found = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| format!("resolving {} took over {RESOLVE_TIMEOUT:?}", url.host))?
    .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(format!("{} resolves to no address", url.host));
    }
    // One bad address refuses all: a name that mixes them is not to be trusted.
    if let Some((ip, why)) = addrs
        .iter()
        .find_map(|a| ip_problem(a.ip(), allow_private).map(|why| (a.ip(), why)))
    {
        return Err(refuse(ip, why));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_private_ones_only_when_allowed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for never in [
            "169.254.169.254",
            "169.254.1.1",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "fe80::1",
            "ff02::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(ip_problem(ip(never), true).is_some(), "{never}");
        }
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(ip_problem(ip(private), false).is_some(), "{private}");
            assert_eq!(ip_problem(ip(private), true), None, "{private}");
        }
        for public in ["192.0.2.1", "2001:db8::1", "8.8.8.8"] {
            assert_eq!(ip_problem(ip(public), false), None, "{public}");
        }
    }

    #[test]
    fn odd_ipv4_spellings_metadata_names_and_control_characters_are_refused() {
        let check = |text: &str| {
            let url = RtmpUrl::parse(text).unwrap();
            check_target_text(&url, text)
        };
        for bad in [
            "rtmp://2130706433/live/x",
            "rtmp://0177.0.0.1/live/x",
            "rtmp://0x7f.1/live/x",
            "rtmp://127.1/live/x",
            "rtmp://metadata.google.internal/live/x",
            "rtmp://Metadata.Google.Internal./live/x",
            "rtmp://h/live/x\nINFO forged",
            "rtmp://h/live/x\u{202e}",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert_eq!(check("rtmp://media.example/live/x"), Ok(None));
        assert_eq!(
            check("rtmp://127.0.0.1:1935/live/x"),
            Ok(Some(IpAddr::from([127, 0, 0, 1])))
        );
    }
}
