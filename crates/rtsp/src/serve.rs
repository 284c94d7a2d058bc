//! The serving side of RTSP, sans-IO: request parsing ("need more bytes" or "invalid at byte
//! N"), responses, the SDP of an H.264 stream (RFC 6184 §8.2.1, sprop-parameter-sets) and
//! RTP packetization (single NAL unit or FU-A, RFC 6184 §5.6 and §5.8) in interleaved
//! frames (RFC 2326 §10.12), Basic and Digest auth (RFC 7617, RFC 7616 with MD5 as ffmpeg,
//! VLC and GStreamer send it). No sockets, no clock: the hub's `rtsp.rs` drives it.

/// The longest request head (request line and headers) accepted; a reader sending more
/// is cut off (a request from ffmpeg or VLC is under 1 KiB).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// RTP payload bytes per packet: fits a 1500-byte Ethernet MTU after IP, TCP and RTP
/// headers, so the same packets would do for UDP.
pub const MAX_RTP_PAYLOAD: usize = 1400;
/// The RTP clock of video (RFC 6184 §8.2.1).
pub const CLOCK_RATE: u32 = 90_000;
/// The dynamic payload type the SDP names.
pub const PAYLOAD_TYPE: u8 = 96;

/// A request the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER…
    pub method: String,
    /// The request URI as sent.
    pub uri: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The CSeq to echo ("0" when absent: the client gets an answer it can match at least
    /// to its only outstanding request).
    pub fn cseq(&self) -> &str {
        self.header("CSeq").unwrap_or("0")
    }

    /// The stream the URI names: the path's first segment (`rtsp://h:p/NAME/trackID=0` →
    /// `NAME`), percent-decoding left out (names are plain).
    pub fn stream_key(&self) -> &str {
        let path = match self.uri.find("://") {
            Some(i) => {
                let rest = &self.uri[i + 3..];
                rest.find('/').map_or("", |j| &rest[j..])
            }
            None => self.uri.as_str(),
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        path.trim_start_matches('/').split('/').next().unwrap_or("")
    }

    /// The password of `Authorization: Basic …` (the user name is ignored: vidcast's
    /// tokens are the password).
    pub fn basic_password(&self) -> Option<String> {
        let value = self.header("Authorization")?;
        let (scheme, b64) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64_decode(b64.trim())?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':').map(|(_, p)| p.to_owned())
    }
}

impl Request {
    /// The fields of `Authorization: Digest …`, if that is what the client sent.
    pub fn digest(&self) -> Option<DigestResponse> {
        let value = self.header("Authorization")?.trim();
        let (scheme, params) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut digest = DigestResponse::default();
        for (name, value) in auth_params(params) {
            let field = match name.to_ascii_lowercase().as_str() {
                "username" => &mut digest.username,
                "realm" => &mut digest.realm,
                "nonce" => &mut digest.nonce,
                "uri" => &mut digest.uri,
                "response" => &mut digest.response,
                "qop" => &mut digest.qop,
                "nc" => &mut digest.nc,
                "cnonce" => &mut digest.cnonce,
                "algorithm" => &mut digest.algorithm,
                _ => continue,
            };
            *field = value;
        }
        (!digest.response.is_empty()).then_some(digest)
    }
}

/// `name=value` and `name="quoted, value"` pairs of an auth header, comma-separated
/// (RFC 7235 §2.1); a backslash in a quoted value escapes the next character.
fn auth_params(mut text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        text = text.trim_start_matches([' ', ',', '\t']);
        let Some(eq) = text.find('=') else {
            return out;
        };
        let name = text[..eq].trim().to_owned();
        let rest = text[eq + 1..].trim_start();
        let (value, after) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            (rest[..end].trim().to_owned(), &rest[end..])
        };
        out.push((name, value));
        text = after;
    }
}

/// What a client sent in `Authorization: Digest …` (RFC 7616 §3.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestResponse {
    /// The user name (vidcast ignores it beyond the hash: the password is the token).
    pub username: String,
    /// The realm it answers.
    pub realm: String,
    /// The server's nonce it answers.
    pub nonce: String,
    /// The request URI it hashed.
    pub uri: String,
    /// 32 hex digits.
    pub response: String,
    /// `auth`, or empty (RFC 2069 compatibility, what ffmpeg sends when none is offered).
    pub qop: String,
    /// Nonce count, with `qop`.
    pub nc: String,
    /// Client nonce, with `qop`.
    pub cnonce: String,
    /// `MD5` or empty (MD5); anything else is not supported.
    pub algorithm: String,
}

impl DigestResponse {
    /// Whether this answers `nonce` in `realm` for `method`, made with `password`.
    pub fn is_made_with(&self, method: &str, realm: &str, nonce: &str, password: &str) -> bool {
        if self.realm != realm
            || !constant_time_eq(self.nonce.as_bytes(), nonce.as_bytes())
            || !(self.algorithm.is_empty() || self.algorithm.eq_ignore_ascii_case("md5"))
        {
            return false;
        }
        let ha1 = md5_hex(&format!("{}:{realm}:{password}", self.username));
        let ha2 = md5_hex(&format!("{method}:{}", self.uri));
        let expected = match self.qop.as_str() {
            "" => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
            "auth" => md5_hex(&format!(
                "{ha1}:{nonce}:{}:{}:auth:{ha2}",
                self.nc, self.cnonce
            )),
            _ => return false,
        };
        constant_time_eq(
            expected.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// The `WWW-Authenticate` value offering Digest (MD5, no qop: what RTSP servers such as
/// live555 offer and every player answers).
pub fn digest_challenge(realm: &str, nonce: &str) -> String {
    format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5")
}

/// MD5 of `text` in lower-case hex.
pub fn md5_hex(text: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One unit read from an RTSP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A request (its body, if any, skipped).
    Request(Request),
    /// An interleaved binary frame from the client (RTCP receiver reports): skipped.
    Interleaved {
        /// Its channel.
        channel: u8,
    },
}

/// Why a connection's bytes are not RTSP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request head is longer than [`MAX_REQUEST_BYTES`].
    #[error("request head longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Malformed at this byte offset.
    #[error("invalid at byte {offset}: {reason}")]
    Invalid {
        /// Where.
        offset: usize,
        /// Why.
        reason: &'static str,
    },
}

/// Parses the next unit of `buf`: `Ok(None)` for "need more bytes", else the unit and the
/// bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Incoming, usize)>, RequestError> {
    if buf.first() == Some(&b'$') {
        let Some(head) = buf.get(..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if buf.len() < 4 + len {
            return Ok(None);
        }
        return Ok(Some((Incoming::Interleaved { channel: head[1] }, 4 + len)));
    }
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLong {
                max: MAX_REQUEST_BYTES,
            });
        }
        return Ok(None);
    };
    if end + 4 > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLong {
            max: MAX_REQUEST_BYTES,
        });
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|e| RequestError::Invalid {
        offset: e.valid_up_to(),
        reason: "not UTF-8",
    })?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Invalid {
            offset: 0,
            reason: "request line is not METHOD URI RTSP/1.0",
        });
    };
    if !version.starts_with("RTSP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    {
        return Err(RequestError::Invalid {
            offset: 0,
            reason: "request line is not METHOD URI RTSP/1.0",
        });
    }
    let mut headers = Vec::new();
    let mut offset = line.len() + 2;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(RequestError::Invalid {
                offset,
                reason: "header line without a colon",
            });
        };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
        offset += line.len() + 2;
    }
    let request = Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        headers,
    };
    let body_len = match request.header("Content-Length") {
        Some(v) => v.parse::<usize>().map_err(|_| RequestError::Invalid {
            offset: end,
            reason: "Content-Length is not a number",
        })?,
        None => 0,
    };
    if body_len > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLong {
            max: MAX_REQUEST_BYTES,
        });
    }
    let total = end + 4 + body_len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((Incoming::Request(request), total)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A response: status line, CSeq, `headers`, and `body` with its length.
pub fn response(
    status: u16,
    reason: &str,
    cseq: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("RTSP/1.0 {status} {reason}\r\nCSeq: {cseq}\r\nServer: vidcast\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The SDP of one H.264 stream (RFC 6184 §8.2.1): packetization-mode 1 (FU-A), the
/// profile and level from the SPS, and the parameter sets so a player starts at once.
pub fn sdp(session_name: &str, sps: &[u8], pps: &[u8]) -> String {
    let profile_level = sps.get(1..4).map_or_else(
        || "42e01f".to_owned(),
        |b| format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]),
    );
    let name: String = session_name.chars().filter(|c| !c.is_control()).collect();
    format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns={name}\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
         a=control:*\r\na=range:npt=now-\r\nm=video 0 RTP/AVP {PAYLOAD_TYPE}\r\n\
         a=rtpmap:{PAYLOAD_TYPE} H264/{CLOCK_RATE}\r\n\
         a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={profile_level};sprop-parameter-sets={},{}\r\n\
         a=control:trackID=0\r\n",
        base64_encode(sps),
        base64_encode(pps)
    )
}

/// RTP packets of one stream, each in an interleaved frame (`$`, channel, length).
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: u32,
    seq: u16,
    channel: u8,
}

impl Packetizer {
    /// A packetizer on interleaved `channel` with these random starting values (RFC 3550
    /// §5.1: SSRC and first sequence number random).
    pub fn new(ssrc: u32, first_seq: u16, channel: u8) -> Self {
        Self {
            ssrc,
            seq: first_seq,
            channel,
        }
    }

    /// Appends the RTP packets of one Annex B access unit at RTP time `timestamp` to
    /// `out`, the marker bit on the last; SPS/PPS/IDR/slices alike, each NAL unit whole
    /// when it fits [`MAX_RTP_PAYLOAD`], else in FU-A fragments.
    pub fn packetize(&mut self, access_unit: &[u8], timestamp: u32, out: &mut Vec<u8>) {
        let nals = vidcast_h264::nal_units(access_unit);
        let count = nals.len();
        for (i, nal) in nals.into_iter().enumerate() {
            let last_nal = i + 1 == count;
            if nal.is_empty() {
                continue;
            }
            if nal.len() <= MAX_RTP_PAYLOAD {
                self.packet(&[], nal, last_nal, timestamp, out);
                continue;
            }
            let header = nal[0];
            let indicator = (header & 0xE0) | 28; // FU-A, F and NRI of the NAL unit
            let kind = header & 0x1F;
            let mut rest = &nal[1..];
            let mut first = true;
            while !rest.is_empty() {
                let take = rest.len().min(MAX_RTP_PAYLOAD - 2);
                let (chunk, after) = rest.split_at(take);
                let end = after.is_empty();
                let fu_header = kind | if first { 0x80 } else { 0 } | if end { 0x40 } else { 0 };
                self.packet(
                    &[indicator, fu_header],
                    chunk,
                    last_nal && end,
                    timestamp,
                    out,
                );
                rest = after;
                first = false;
            }
        }
    }

    fn packet(
        &mut self,
        prefix: &[u8],
        payload: &[u8],
        marker: bool,
        timestamp: u32,
        out: &mut Vec<u8>,
    ) {
        let len = 12 + prefix.len() + payload.len();
        out.push(b'$');
        out.push(self.channel);
        out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        out.push(0x80); // version 2, no padding, no extension, no CSRC
        out.push(if marker { 0x80 } else { 0 } | PAYLOAD_TYPE);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(prefix);
        out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIBE: &[u8] = b"DESCRIBE rtsp://127.0.0.1:8554/door RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\nAuthorization: Basic dmlld2VyOnQwaw==\r\n\r\n";

    #[test]
    fn a_request_parses_whole_and_split_at_every_offset_needs_more() {
        let (unit, used) = parse(DESCRIBE).expect("valid").expect("whole");
        assert_eq!(used, DESCRIBE.len());
        let Incoming::Request(req) = unit else {
            panic!("a request")
        };
        assert_eq!(
            (req.method.as_str(), req.cseq(), req.stream_key()),
            ("DESCRIBE", "2", "door")
        );
        assert_eq!(req.basic_password().as_deref(), Some("t0k"));
        for cut in 0..DESCRIBE.len() {
            assert_eq!(parse(&DESCRIBE[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bad_and_endless_requests_are_errors_with_a_place() {
        assert!(matches!(
            parse(b"HELLO\r\n\r\n"),
            Err(RequestError::Invalid { offset: 0, .. })
        ));
        let err = parse(b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n").expect_err("no colon");
        assert_eq!(
            err,
            RequestError::Invalid {
                offset: 20,
                reason: "header line without a colon"
            }
        );
        let endless = vec![b'A'; MAX_REQUEST_BYTES + 1];
        assert!(matches!(parse(&endless), Err(RequestError::TooLong { .. })));
    }

    #[test]
    fn interleaved_frames_and_uris_with_tracks() {
        assert_eq!(
            parse(b"$\x01\x00\x02ab"),
            Ok(Some((Incoming::Interleaved { channel: 1 }, 6)))
        );
        assert_eq!(parse(b"$\x01\x00\x02a"), Ok(None));
        let req = Request {
            method: "SETUP".into(),
            uri: "rtsp://127.0.0.1:8554/7/trackID=0".into(),
            headers: vec![],
        };
        assert_eq!(req.stream_key(), "7");
    }

    #[test]
    fn digest_answers_check_out_as_rfc_2617_and_2069_compute_them() {
        // RFC 2617 §3.5's example, in RTSP clothes: qop=auth.
        let req = Request {
            method: "GET".into(),
            uri: "/dir/index.html".into(),
            headers: vec![(
                "Authorization".into(),
                "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
                 qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
                 response=\"6629fae49393a05397450978507c4ef1\", \
                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
                    .into(),
            )],
        };
        let digest = req.digest().expect("a digest");
        let (realm, nonce) = ("testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert!(digest.is_made_with("GET", realm, nonce, "Circle Of Life"));
        assert!(!digest.is_made_with("GET", realm, nonce, "circle of life"));
        assert!(!digest.is_made_with("GET", realm, "another nonce", "Circle Of Life"));
        assert!(!digest.is_made_with("PLAY", realm, nonce, "Circle Of Life"));
        assert!(req.basic_password().is_none());
        // Without qop (RFC 2069), as ffmpeg answers a challenge that offers none.
        let ha1 = md5_hex("viewer:vidcast:t0k");
        let ha2 = md5_hex("DESCRIBE:rtsp://127.0.0.1:8554/door");
        let response = md5_hex(&format!("{ha1}:n0nce:{ha2}"));
        let header = format!(
            "Digest username=\"viewer\", realm=\"vidcast\", nonce=\"n0nce\", uri=\"rtsp://127.0.0.1:8554/door\", response=\"{response}\""
        );
        let req = Request {
            method: "DESCRIBE".into(),
            uri: "rtsp://127.0.0.1:8554/door".into(),
            headers: vec![("Authorization".into(), header)],
        };
        let digest = req.digest().expect("a digest");
        assert!(digest.is_made_with("DESCRIBE", "vidcast", "n0nce", "t0k"));
        assert!(!digest.is_made_with("DESCRIBE", "other", "n0nce", "t0k"));
        assert_eq!(
            digest_challenge("vidcast", "n0nce"),
            "Digest realm=\"vidcast\", nonce=\"n0nce\", algorithm=MD5"
        );
    }

    #[test]
    fn auth_params_take_quotes_escapes_and_bare_values() {
        assert_eq!(
            auth_params(r#"a="x, y", b=7,c="q\"uote""#),
            vec![
                ("a".to_owned(), "x, y".to_owned()),
                ("b".to_owned(), "7".to_owned()),
                ("c".to_owned(), "q\"uote".to_owned())
            ]
        );
        assert!(auth_params("").is_empty());
        assert_eq!(auth_params(r#"a="unterminated"#)[0].1, "unterminated");
    }

    #[test]
    fn base64_round_trips() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xFF, 0, 0x80],
        ] {
            assert_eq!(base64_decode(&base64_encode(data)).as_deref(), Some(data));
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("!!").is_none());
    }

    /// Reassembles the access unit from interleaved RTP packets (a player's view).
    fn depacketize(mut bytes: &[u8]) -> (Vec<u8>, usize, bool) {
        let (mut au, mut packets, mut marker) = (Vec::new(), 0, false);
        while !bytes.is_empty() {
            let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            let rtp = &bytes[4..4 + len];
            marker = rtp[1] & 0x80 != 0;
            let payload = &rtp[12..];
            if payload[0] & 0x1F == 28 {
                if payload[1] & 0x80 != 0 {
                    au.extend_from_slice(&[0, 0, 0, 1, (payload[0] & 0xE0) | (payload[1] & 0x1F)]);
                }
                au.extend_from_slice(&payload[2..]);
            } else {
                au.extend_from_slice(&[0, 0, 0, 1]);
                au.extend_from_slice(payload);
            }
            packets += 1;
            bytes = &bytes[4 + len..];
        }
        (au, packets, marker)
    }

    #[test]
    fn big_nal_units_go_in_fu_a_fragments_and_come_back_whole() {
        let mut idr = vec![0x65];
        idr.extend((0..5000u32).map(|i| (i % 251) as u8 | 1));
        let mut au = vec![
            0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1,
        ];
        au.extend_from_slice(&idr);
        let mut out = Vec::new();
        Packetizer::new(7, 65535, 0).packetize(&au, 1234, &mut out);
        let (back, packets, marker) = depacketize(&out);
        assert_eq!(back, au);
        assert_eq!(packets, 2 + 5001usize.div_ceil(MAX_RTP_PAYLOAD - 2));
        assert!(marker, "the last packet carries the marker");
    }

    #[test]
    fn the_sdp_names_the_profile_and_parameter_sets() {
        let sdp = sdp("door", &[0x67, 0x42, 0xC0, 0x1E], &[0x68, 0xCE]);
        assert!(sdp.contains("profile-level-id=42c01e"), "{sdp}");
        assert!(sdp.contains("sprop-parameter-sets=Z0LAHg==,aM4="), "{sdp}");
        assert!(sdp.contains("a=control:trackID=0"), "{sdp}");
    }
}
