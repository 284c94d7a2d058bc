//! A real RTMP server for restreaming tests: nginx with Debian's `libnginx-mod-rtmp`, run as
//! a child of the test with its own config, logs and HLS output in a temporary directory,
//! listening on 127.0.0.1 only. Killed (by its PID, the one this helper started) and its
//! directory removed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `libnginx-mod-rtmp` puts the module (`dpkg -L libnginx-mod-rtmp`).
pub const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// An nginx-rtmp server with one application, `live` (live on, HLS on).
pub struct Nginx {
    daemon: crate::tools::Daemon,
    /// The RTMP port on 127.0.0.1.
    pub port: u16,
    /// The temporary directory: `nginx.conf`, `error.log`, `hls/`.
    pub dir: PathBuf,
    nginx: PathBuf,
}

impl Nginx {
    /// Starts nginx on a free 127.0.0.1 port; `None` if nginx or the RTMP module is missing
    /// and this is not CI (under `CI=true` that fails the test instead).
    pub fn start(label: &str) -> Option<Self> {
        let nginx = crate::require_tool("nginx", "nginx")?;
        if !Path::new(RTMP_MODULE).is_file() {
            return crate::tools::missing(&format!(
                "{RTMP_MODULE} is missing (Debian package `libnginx-mod-rtmp`; scripts/test installs it)"
            ));
        }
        let dir = std::env::temp_dir().join(format!(
            "vidcast-nginx-{label}-{}-{}",
            std::process::id(),
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(dir.join("hls")).expect("nginx temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let conf = format!(
            "load_module {RTMP_MODULE};
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            wait_key on;
            hls on;
            hls_path {dir}/hls;
            hls_fragment 1s;
            hls_playlist_length 6s;
        }}
    }}
}}
",
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let mut server = Self {
            daemon: crate::tools::Daemon::default(),
            port,
            dir,
            nginx,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.nginx)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        self.daemon.hold(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.daemon.exited() {
                panic!("nginx exited with {status}: {}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on 127.0.0.1:{} within 10 s: {}",
                self.port,
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `rtmp://127.0.0.1:PORT/live/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    /// The HLS playlist nginx writes for stream `name`.
    pub fn playlist(&self, name: &str) -> PathBuf {
        self.dir.join("hls").join(format!("{name}.m3u8"))
    }

    /// What nginx logged so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Kills the nginx this helper started (SIGKILL to its PID) and reaps it.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Freezes nginx (SIGSTOP to the PID this helper started): it stops reading its sockets,
    /// like a server that hangs.
    pub fn pause(&self) {
        assert!(self.daemon.signal(libc::SIGSTOP), "SIGSTOP to nginx failed");
    }

    /// Thaws nginx after [`Nginx::pause`] (SIGCONT).
    pub fn resume(&self) {
        assert!(self.daemon.signal(libc::SIGCONT), "SIGCONT to nginx failed");
    }

    /// Starts nginx again, same port, same config.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Nginx {
    /// Kills nginx and removes its directory (HLS segments add up over many runs); kept
    /// when the test failed, for its error.log.
    fn drop(&mut self) {
        self.daemon.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
