//! Headless Chromium driven over the DevTools protocol, for tests of the web wall.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The Chromium binary the browser tests drive (Debian's `chromium`): `None` when it is not
/// installed (the test is skipped), a panic under `CI=true` (the test fails), as
/// [`crate::require_tool`] decides. The one place every browser test finds it.
pub fn chromium() -> Option<PathBuf> {
    crate::require_tool("chromium", "chromium")
}

/// A headless Chromium with one page, killed on drop.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Starts `chromium` (at `binary`) headless and attaches to its first page.
    pub async fn launch(binary: &Path) -> Browser {
        Self::launch_with(binary, &[]).await
    }

    /// [`Browser::launch`] with extra command-line flags (e.g. to accept a test certificate).
    pub async fn launch_with(binary: &Path, extra_flags: &[&str]) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "vidcast-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        // The flags keep Chromium off the network (this machine has none) and out of the way.
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--window-size=1280,800",
                "--remote-debugging-port=0",
            ])
            .args(extra_flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let port_file = profile.join("DevToolsActivePort");
        let port: u16 = crate::wait_for(
            "Chromium's DevTools port",
            Duration::from_secs(30),
            || async {
                std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            },
        )
        .await;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let page_url: String =
            crate::wait_for("a page target", Duration::from_secs(15), || async {
                let list = crate::http::get_json(addr, "/json/list", Duration::from_secs(5))
                    .await
                    .ok()?;
                list.as_array()?
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            })
            .await;
        let (socket, _) = tokio_tungstenite::connect_async(page_url.as_str())
            .await
            .expect("DevTools socket");
        Browser {
            child,
            profile,
            socket,
            next_id: 1,
        }
    }

    /// The browser process's id (its renderer and GPU processes are its descendants).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Calls a DevTools method and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .expect("send to DevTools");
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(msg) = self.socket.next().await {
                let Ok(Message::Text(text)) = msg else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
                if value["id"] == id {
                    return value;
                }
            }
            panic!("DevTools socket closed");
        })
        .await
        .expect("DevTools answers within 20 s");
        if let Some(error) = answer.get("error") {
            panic!("DevTools {method} failed: {error}");
        }
        answer["result"].clone()
    }

    /// Makes the page `width` x `height` CSS pixels (at one device pixel each), as a window
    /// of that size would show it.
    pub async fn set_viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    }

    /// Writes a PNG screenshot of the page to `path` (directories made as needed).
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let data = shot["data"].as_str().expect("screenshot data");
        let png = decode_base64(data).expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Opens `url` in the page.
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Evaluates a JavaScript expression (awaiting promises) and returns its JSON value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("page threw: {details}");
        }
        result["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (DevTools' screenshots); `None` for a character outside the alphabet.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut n) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        bits = (bits << 6) | u32::from(value(c)?);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(super::decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(super::decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(
            super::decode_base64("iVBORw0KGgo=").unwrap(),
            b"\x89PNG\r\n\x1a\n"
        );
        assert_eq!(super::decode_base64("a*b"), None);
    }
}
