//! `vidcast demo`: a hub and N synthetic publishers in one process, with a status table.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tracing::{info, warn};
use vidcast_hub::RunningHub;
use vidcast_media::{Clock, SystemClock};
use vidcast_proto::Codec;

use crate::serve::{bind, HttpAddr, HubArgs};
use crate::video::{hello, parse_bitrate, start_h264_test_pattern, start_test_pattern, VideoArgs};
use crate::{duration, status};

/// Options of `vidcast demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// How many synthetic publishers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// Address publishers connect to; a port alone (`:9999`) means every interface.
    #[arg(long, default_value = "127.0.0.1:9999", value_parser = crate::addr::parse_listen)]
    pub listen: SocketAddr,
    /// Address of the web wall and HTTP API; "off" to disable.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = crate::serve::parse_http_addr)]
    pub http: HttpAddr,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Codec of the synthetic publishers, as `send --codec` (the wall decodes H.264 with
    /// WebCodecs, or gets JPEG from the hub where a browser has none).
    #[arg(long, value_enum, default_value_t = Codec::H264)]
    pub codec: Codec,
    /// H.264 bit rate of each publisher: 1500000, 1.5M, 800k.
    #[arg(long, default_value = "1.5M", value_parser = parse_bitrate)]
    pub bitrate: u32,
    #[command(flatten)]
    pub hub: HubArgs,
    /// Stop by itself after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Open the wall in a web browser.
    #[arg(long)]
    pub open: bool,
    /// Print the status table every this often (below the log, which stays on screen).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub status_every: Duration,
}

pub fn main(args: DemoArgs) -> Result<()> {
    crate::runtime()?.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let ingest = bind(args.listen, "publishers").await?;
        let http = match args.http.0 {
            Some(addr) => Some(bind(addr, "HTTP").await?),
            None => None,
        };
        let mut options = args.hub.options()?;
        // Every synthetic publisher comes from this machine's address.
        options.limits.max_publishers_per_ip = options
            .limits
            .max_publishers_per_ip
            .max(args.clients as usize);
        let hub = RunningHub::start(ingest, http, options, Arc::clone(&clock))
            .context("cannot start the hub")?;
        let banner = match hub.http_addr {
            Some(addr) => {
                let url = format!("http://{addr}/");
                if args.open {
                    open_browser(&url);
                }
                format!(
                    "vidcast demo: open {url} to see the wall (publishers connect to {}; Ctrl-C stops)",
                    hub.ingest_addr
                )
            }
            None => format!("vidcast demo: hub on {} (Ctrl-C stops)", hub.ingest_addr),
        };
        outln!("{banner}");

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut publishers = tokio::task::JoinSet::new();
        for i in 1..=args.clients {
            let name = format!("demo-{i}");
            let video = args.video.clone();
            let token = args.hub.token.clone();
            let clock = Arc::clone(&clock);
            let addr = hub.ingest_addr;
            let mut stop = stop_rx.clone();
            let (codec, bitrate) = (args.codec, args.bitrate);
            publishers.spawn(async move {
                let run = async {
                    let stream = vidcast_client::connect(&[addr], Duration::from_secs(5)).await?;
                    let keyframes = Arc::<vidcast_client::KeyframeFlag>::default();
                    let (capture, mut frames) = match codec {
                        Codec::Jpeg => start_test_pattern(&name, &video, Arc::clone(&clock))?,
                        Codec::H264 => start_h264_test_pattern(
                            &name,
                            &video,
                            bitrate,
                            Arc::clone(&keyframes),
                            Arc::clone(&clock),
                        )?,
                    };
                    let report = vidcast_client::publish(
                        stream,
                        vidcast_proto::Hello {
                            token: token.clone().unwrap_or_default(),
                            codec: Ok(codec),
                            ..hello(&name, &video)
                        },
                        vidcast_client::PublishOptions {
                            keyframes: (codec == Codec::H264).then_some(keyframes),
                            ..vidcast_client::PublishOptions::default()
                        },
                        &mut frames,
                        clock,
                        async move {
                            let _ = stop.wait_for(|&s| s).await;
                        },
                    )
                    .await;
                    drop(capture);
                    anyhow::Ok(report?)
                };
                if let Err(e) = run.await {
                    warn!("publisher {name}: {e:#}");
                }
            });
        }

        // The first table once the publishers have had a second to connect, then every
        // --status-every.
        let first = args.status_every.min(Duration::from_secs(1));
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + first, args.status_every);
        let deadline = async {
            match args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let signal = crate::shutdown::signal();
        tokio::pin!(signal);
        let mut reader_gone = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let table = status::table(&hub.registry.snapshot(clock.now_us()));
                    let mut stdout = std::io::stdout().lock();
                    // The table is appended, never redrawn in place: clearing the screen would
                    // wipe the connect and disconnect lines the hub logs to the same terminal.
                    let written = writeln!(stdout, "{table}").and_then(|()| stdout.flush());
                    if written.is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
                        // `vidcast demo | head`: nobody reads the status any more.
                        info!("stdout closed; stopping the demo");
                        reader_gone = true;
                        break;
                    }
                }
                () = &mut deadline => {
                    info!("demo time is up");
                    break;
                }
                () = &mut signal => break,
            }
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while publishers.join_next().await.is_some() {}
        })
        .await;
        if !reader_gone {
            outln!("{}", status::table(&hub.registry.snapshot(clock.now_us())));
        }
        hub.shutdown().await.context("hub shutdown")?;
        Ok(())
    })
}

/// Best effort: asks the desktop to open `url`; says so if it cannot.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => info!("asked {opener} to open {url}"),
        Err(e) => warn!("cannot open a browser ({opener}: {e}); open {url} yourself"),
    }
}
