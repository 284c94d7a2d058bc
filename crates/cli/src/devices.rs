//! `vidcast devices`: the cameras `send --source camera:N` can use, and their modes.

use anyhow::Result;
use clap::Args;
use vidcast_media::source::{list_cameras, CameraMode};

/// Options of `vidcast devices` (none yet).
#[derive(Args, Debug, Clone)]
pub struct DevicesArgs {}

pub fn main(_args: DevicesArgs) -> Result<()> {
    let cameras = list_cameras()?;
    if cameras.is_empty() {
        let any = std::fs::read_dir("/dev")?
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("video"));
        if any {
            outln!("no cameras found (the /dev/video* devices here cannot capture video)");
        } else {
            outln!("no cameras found (/dev/video* absent)");
        }
        return Ok(());
    }
    for camera in cameras {
        outln!("{} \"{}\"", camera.path.display(), camera.name);
        if camera.modes.is_empty() {
            outln!("  (no MJPEG, YUYV or NV12 modes: vidcast cannot read it)");
        }
        for line in mode_lines(&camera.modes) {
            outln!("  {line}");
        }
    }
    Ok(())
}

/// One line per format and size, with its rates: `MJPEG 1280x720 @ 30, 15 fps`.
fn mode_lines(modes: &[CameraMode]) -> Vec<String> {
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    for m in modes {
        let kind = format!("{:?}", m.kind).to_uppercase();
        let key = format!("{kind} {}x{}", m.width, m.height);
        let rate = format!("{}", (m.fps * 100.0).round() / 100.0);
        match lines.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rates)) if !rates.contains(&rate) => rates.push(rate),
            Some(_) => {}
            None => lines.push((key, vec![rate])),
        }
    }
    lines
        .into_iter()
        .map(|(key, rates)| format!("{key} @ {} fps", rates.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidcast_media::source::PixelKind;

    #[test]
    fn modes_group_by_format_and_size() {
        let m = |kind, width, height, fps| CameraMode {
            kind,
            width,
            height,
            fps,
        };
        let lines = mode_lines(&[
            m(PixelKind::Mjpeg, 1280, 720, 30.0),
            m(PixelKind::Mjpeg, 1280, 720, 15.0),
            m(PixelKind::Yuyv, 640, 480, 29.97),
            m(PixelKind::Mjpeg, 1280, 720, 30.0),
        ]);
        assert_eq!(
            lines,
            ["MJPEG 1280x720 @ 30, 15 fps", "YUYV 640x480 @ 29.97 fps"]
        );
    }
}
