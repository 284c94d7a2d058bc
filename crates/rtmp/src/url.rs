//! `rtmp://host[:port]/app/stream` addresses, and templates with a `{name}` placeholder that
//! one command-line flag turns into one address per stream.

use std::fmt;

use crate::RtmpError;

/// The port RTMP servers listen on unless told otherwise.
pub const DEFAULT_PORT: u16 = 1935;

/// The placeholder a [`UrlTemplate`] replaces with the stream's name.
pub const NAME_PLACEHOLDER: &str = "{name}";
/// The placeholder a [`UrlTemplate`] replaces with the hub's stream id (stable for as long as
/// the same client keeps its name).
pub const ID_PLACEHOLDER: &str = "{id}";

/// A parsed RTMP publish address. The first path segment is the application (nginx-rtmp's
/// `application`, MediaMTX's path prefix); the rest is the stream name (the "stream key").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Application name, sent in `connect`.
    pub app: String,
    /// Stream name, sent in `publish` (may hold `/` and a `?query`).
    pub stream: String,
}

impl RtmpUrl {
    /// Parses `rtmp://host[:port]/app/stream`.
    pub fn parse(text: &str) -> Result<Self, RtmpError> {
        let bad = |reason: &'static str| RtmpError::BadUrl {
            url: text.to_owned(),
            reason,
        };
        let rest = text
            .strip_prefix("rtmp://")
            .ok_or_else(|| bad("must start with rtmp:// (rtmps is not supported)"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("needs /app/stream after the host"))?;
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let (app, stream) = path
            .split_once('/')
            .ok_or_else(|| bad("needs /app/stream after the host"))?;
        if app.is_empty() || stream.is_empty() {
            return Err(bad("application and stream name must not be empty"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }

    /// `rtmp://host:port/app`, the `tcUrl` of `connect`.
    pub fn tc_url(&self) -> String {
        if self.host.contains(':') {
            format!("rtmp://[{}]:{}/{}", self.host, self.port, self.app)
        } else {
            format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
        }
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tc_url(), self.stream)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
        None => DEFAULT_PORT,
    };
    Some((host, port))
}

/// An RTMP address in which `{name}` stands for the stream's client name, checked when made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(String);

impl UrlTemplate {
    /// Checks `text` by filling in a sample name.
    pub fn parse(text: &str) -> Result<Self, RtmpError> {
        RtmpUrl::parse(
            &text
                .replace(NAME_PLACEHOLDER, "x")
                .replace(ID_PLACEHOLDER, "1"),
        )?;
        if text
            .split('/')
            .take(4)
            .any(|s| s.contains(NAME_PLACEHOLDER) || s.contains(ID_PLACEHOLDER))
        {
            return Err(RtmpError::BadUrl {
                url: text.to_owned(),
                reason:
                    "{name} and {id} may appear in the stream name only, not in the host or app",
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// Whether each stream gets its own address (without `{name}` or `{id}` all streams
    /// collide).
    pub fn is_per_stream(&self) -> bool {
        self.0.contains(NAME_PLACEHOLDER) || self.0.contains(ID_PLACEHOLDER)
    }

    /// The address for stream `id` called `name`. Characters outside `[A-Za-z0-9._-]` become
    /// `_`, so a client name cannot add path segments or a `?query` to the stream name.
    pub fn for_stream(&self, id: u64, name: &str) -> RtmpUrl {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let filled = self
            .0
            .replace(NAME_PLACEHOLDER, &safe)
            .replace(ID_PLACEHOLDER, &id.to_string());
        RtmpUrl::parse(&filled)
            .expect("checked in parse; the replacement has no '/', ':', '?' or '@'")
    }
}

impl fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1:19350/live/cam-1").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.app.as_str()),
            ("127.0.0.1", 19350, "live")
        );
        assert_eq!(url.stream, "cam-1");
        assert_eq!(url.tc_url(), "rtmp://127.0.0.1:19350/live");
        let url = RtmpUrl::parse("rtmp://media.example/app/a/b?key=1").unwrap();
        assert_eq!((url.port, url.stream.as_str()), (1935, "a/b?key=1"));
        let url = RtmpUrl::parse("rtmp://[::1]:1936/live/x").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 1936));
        assert_eq!(url.to_string(), "rtmp://[::1]:1936/live/x");
    }

    #[test]
    fn bad_urls_say_why() {
        for (text, why) in [
            ("http://h/live/x", "rtmp://"),
            ("rtmp://h", "/app/stream"),
            ("rtmp://h/live", "/app/stream"),
            ("rtmp://h/live/", "empty"),
            ("rtmp://h:99999/live/x", "port"),
            ("rtmp://:1935/live/x", "host"),
        ] {
            let err = RtmpUrl::parse(text).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(text), "{text}: {err}");
        }
    }

    #[test]
    fn templates_fill_in_a_safe_name() {
        let t = UrlTemplate::parse("rtmp://127.0.0.1/live/{name}").unwrap();
        assert!(t.is_per_stream());
        assert_eq!(t.for_stream(7, "cam 1/../x?y").stream, "cam_1_.._x_y");
        let by_id = UrlTemplate::parse("rtmp://127.0.0.1/live/cam{id}-{name}").unwrap();
        assert!(by_id.is_per_stream());
        assert_eq!(by_id.for_stream(7, "pi").stream, "cam7-pi");
        assert!(UrlTemplate::parse("rtmp://h/{id}/x").is_err());
        let fixed = UrlTemplate::parse("rtmp://127.0.0.1/live/all").unwrap();
        assert!(!fixed.is_per_stream());
        assert!(UrlTemplate::parse("rtmp://{name}/live/x").is_err());
        assert!(UrlTemplate::parse("rtmp://h/{name}/x").is_err());
        assert!(UrlTemplate::parse("rtsp://h/live/{name}").is_err());
    }
}
