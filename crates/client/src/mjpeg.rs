//! Reading a hub's `/streams/{id}.mjpg` (multipart JPEG over HTTP/1.1, chunked or not).
//! Benchmarks and tests use it as a viewer; it keeps an HTTP client library out of the build.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An open MJPEG response, read one picture at a time.
pub struct MjpegReader {
    stream: TcpStream,
    /// The response head (status line and headers).
    pub head: String,
    chunked: bool,
    raw: BytesMut,
    body: BytesMut,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl MjpegReader {
    /// Sends `GET path` to `addr` and reads the response head.
    pub async fn open(addr: SocketAddr, path: &str) -> io::Result<Self> {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = BytesMut::with_capacity(64 * 1024);
        let head_end = loop {
            if let Some(end) = find(&raw, b"\r\n\r\n") {
                break end;
            }
            if stream.read_buf(&mut raw).await? == 0 {
                return Err(invalid("connection closed before the response head"));
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        raw.advance(head_end + 4);
        let status_ok = head.split_whitespace().nth(1) == Some("200");
        if !status_ok {
            return Err(invalid(format!(
                "GET {path}: {}",
                head.lines().next().unwrap_or("")
            )));
        }
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Ok(Self {
            stream,
            head,
            chunked,
            raw,
            body: BytesMut::new(),
        })
    }

    /// Reads the next picture.
    pub async fn next_picture(&mut self) -> io::Result<Bytes> {
        loop {
            self.unchunk()?;
            if let Some(picture) = self.take_part()? {
                return Ok(picture);
            }
            if self.stream.read_buf(&mut self.raw).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended"));
            }
        }
    }

    fn unchunk(&mut self) -> io::Result<()> {
        if !self.chunked {
            let all = self.raw.split();
            self.body.unsplit(all);
            return Ok(());
        }
        while let Some(eol) = find(&self.raw, b"\r\n") {
            let size_text =
                std::str::from_utf8(&self.raw[..eol]).map_err(|_| invalid("chunk size"))?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid("chunk size"))?;
            if self.raw.len() < eol + 2 + size + 2 {
                break;
            }
            self.raw.advance(eol + 2);
            let data = self.raw.split_to(size);
            self.body.unsplit(data);
            self.raw.advance(2);
        }
        Ok(())
    }

    fn take_part(&mut self) -> io::Result<Option<Bytes>> {
        const LENGTH: &[u8] = b"Content-Length: ";
        let Some(start) = find(&self.body, LENGTH) else {
            return Ok(None);
        };
        let after = start + LENGTH.len();
        let Some(eol) = find(&self.body[after..], b"\r\n\r\n") else {
            return Ok(None);
        };
        let len: usize = std::str::from_utf8(&self.body[after..after + eol])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| invalid("part length"))?;
        let picture_at = after + eol + 4;
        if self.body.len() < picture_at + len {
            return Ok(None);
        }
        self.body.advance(picture_at);
        Ok(Some(self.body.split_to(len).freeze()))
    }
}
