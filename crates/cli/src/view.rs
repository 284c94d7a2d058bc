//! `vidcast view`: every stream of a hub in one native window (or one per client).

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use vidcast_viewer::{ViewOptions, WindowOptions};

/// Options of `vidcast view`.
#[derive(Args, Debug, Clone)]
pub struct ViewArgs {
    /// The hub: host or host:port (default port 9999).
    #[arg(value_parser = crate::addr::parse_hub)]
    pub hub: String,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Name this viewer shows in the hub's log.
    #[arg(long, default_value = "viewer")]
    pub name: String,
    /// Token the hub requires (also VIDCAST_TOKEN); never printed.
    #[arg(long, env = "VIDCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Give up when the hub is unreachable or goes away, instead of reconnecting forever.
    #[arg(long)]
    pub no_reconnect: bool,
    /// Longest wait between reconnection attempts.
    #[arg(long, default_value = "5s", value_parser = crate::duration::parse)]
    pub max_backoff: Duration,
    #[command(flatten)]
    pub tls: crate::tls_flags::TlsFlags,
}

/// Window settings shared by `view` and `serve --window`.
#[derive(Args, Debug, Clone)]
pub struct WindowArgs {
    /// One window per client (titled `CLIENT: ip:port name`) instead of one mosaic.
    #[arg(long)]
    pub per_client: bool,
    /// Initial size of the mosaic window, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub size: (usize, usize),
}

impl WindowArgs {
    /// The window options these flags describe.
    pub fn options(&self, title: String) -> WindowOptions {
        WindowOptions {
            title,
            width: self.size.0,
            height: self.size.1,
            per_client: self.per_client,
        }
    }
}

/// Parses `WIDTHxHEIGHT`.
fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{text:?} is not a size like 1280x720");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    if !(64..=7680).contains(&w) || !(64..=4320).contains(&h) {
        return Err(format!(
            "{text:?}: width must be 64..=7680 and height 64..=4320"
        ));
    }
    Ok((w, h))
}

pub fn main(args: ViewArgs) -> Result<()> {
    let options = ViewOptions {
        name: args.name.clone(),
        token: args.token.clone().unwrap_or_default(),
        reconnect: !args.no_reconnect,
        max_backoff: args.max_backoff,
        tls: args.tls.client_tls(&args.hub)?,
        ..ViewOptions::default()
    };
    let window = args.window.options(format!("vidcast view {}", args.hub));
    vidcast_viewer::run(&args.hub, options, &window, crate::shutdown::signal())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_absurd_ones_are_refused() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert_eq!(parse_size("640X480"), Ok((640, 480)));
        assert!(parse_size("12x7").is_err());
        assert!(parse_size("wide").is_err());
    }
}
