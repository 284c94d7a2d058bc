//! The native window(s), via minifb: it dlopens X11 or Wayland at run time, so building needs
//! no system packages. Everything drawn comes from `mosaic`; this file only moves pixels to
//! the screen and reads keys. Windows live on the thread that made them (the main thread).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use minifb::{Key, KeyRepeat, Window, WindowOptions as MinifbOptions};
use tracing::{debug, warn};
use vidcast_media::{decode_jpeg, Clock, DecodedImage};
use vidcast_proto::Codec;

use crate::error::ViewError;
use crate::mosaic::{compose, focus_after_key, Canvas, Tile};
use crate::scene::{Scene, StreamView};

/// How often the windows are redrawn and their keys read.
const TARGET_FPS: usize = 30;

/// Settings of [`show`].
#[derive(Debug, Clone)]
pub struct WindowOptions {
    /// Title of the mosaic window.
    pub title: String,
    /// Initial size of the mosaic window (it can be resized).
    pub width: usize,
    /// Initial height.
    pub height: usize,
    /// One window per client (titled with its label) instead of one mosaic.
    pub per_client: bool,
}

impl Default for WindowOptions {
    fn default() -> Self {
        Self {
            title: "vidcast".to_owned(),
            width: 1280,
            height: 720,
            per_client: false,
        }
    }
}

/// Fails with [`ViewError::NoDisplay`] when there is no X11 or Wayland display to open a
/// window on; call it before connecting anywhere, so the error comes first and alone.
pub fn check_display() -> Result<(), ViewError> {
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("DISPLAY") || set("WAYLAND_DISPLAY") {
        Ok(())
    } else {
        Err(ViewError::NoDisplay)
    }
}

/// Each stream's newest picture, decoded once per frame that the window actually draws.
#[derive(Default)]
struct Pictures {
    decoded: HashMap<u64, (u64, Arc<DecodedImage>)>,
    warned: BTreeSet<u64>,
}

impl Pictures {
    fn refresh(&mut self, views: &[StreamView]) {
        self.decoded
            .retain(|id, _| views.iter().any(|v| v.meta.id == *id));
        for view in views {
            let current = self.decoded.get(&view.meta.id).map(|(g, _)| *g);
            if current == Some(view.generation) {
                continue;
            }
            // H.264 was decoded as it arrived (it cannot skip frames); share that picture.
            if let Some(picture) = &view.picture {
                self.decoded
                    .insert(view.meta.id, (view.generation, Arc::clone(picture)));
                continue;
            }
            let Some(jpeg) = &view.jpeg else { continue };
            if view.meta.codec != Some(Codec::Jpeg) {
                continue;
            }
            match decode_jpeg(jpeg) {
                Ok(image) => {
                    self.decoded
                        .insert(view.meta.id, (view.generation, Arc::new(image)));
                }
                Err(e) => {
                    // Logged once per stream: a broken publisher would otherwise flood the log.
                    if self.warned.insert(view.meta.id) {
                        warn!(
                            "stream {} \"{}\": cannot decode a frame: {e} (logged once)",
                            view.meta.id, view.meta.name
                        );
                    }
                }
            }
        }
    }

    fn get(&self, id: u64) -> Option<&DecodedImage> {
        self.decoded.get(&id).map(|(_, image)| image.as_ref())
    }
}

fn tiles<'a>(views: &'a [StreamView], pictures: &'a Pictures) -> Vec<Tile<'a>> {
    views
        .iter()
        .map(|v| Tile {
            id: v.meta.id,
            label: &v.label,
            stats: &v.stats,
            picture: pictures.get(v.meta.id),
        })
        .collect()
}

fn open(title: &str, width: usize, height: usize) -> Result<Window, ViewError> {
    let mut window = Window::new(
        title,
        width.max(1),
        height.max(1),
        MinifbOptions {
            resize: true,
            ..MinifbOptions::default()
        },
    )
    .map_err(|e| ViewError::Window(e.to_string()))?;
    window.set_target_fps(TARGET_FPS);
    Ok(window)
}

fn quit_pressed(window: &Window) -> bool {
    !window.is_open() || window.is_key_down(Key::Escape) || window.is_key_down(Key::Q)
}

fn number_key(key: Key) -> Option<u8> {
    let keys = [
        (Key::Key0, Key::NumPad0),
        (Key::Key1, Key::NumPad1),
        (Key::Key2, Key::NumPad2),
        (Key::Key3, Key::NumPad3),
        (Key::Key4, Key::NumPad4),
        (Key::Key5, Key::NumPad5),
        (Key::Key6, Key::NumPad6),
        (Key::Key7, Key::NumPad7),
        (Key::Key8, Key::NumPad8),
        (Key::Key9, Key::NumPad9),
    ];
    keys.iter()
        .position(|&(a, b)| key == a || key == b)
        .and_then(|n| u8::try_from(n).ok())
}

/// A window and the buffers it is drawn from.
struct Surface {
    window: Window,
    canvas: Canvas,
    pixels: Vec<u32>,
}

impl Surface {
    fn new(window: Window) -> Self {
        Self {
            window,
            canvas: Canvas::new(1, 1),
            pixels: Vec::new(),
        }
    }

    /// Draws `tiles` at the window's current size and shows it.
    fn draw(
        &mut self,
        tiles: &[Tile<'_>],
        focus: Option<u64>,
        idle: &str,
    ) -> Result<(), ViewError> {
        let (w, h) = self.window.get_size();
        let (w32, h32) = (
            u32::try_from(w.max(1)).unwrap_or(1),
            u32::try_from(h.max(1)).unwrap_or(1),
        );
        if (self.canvas.width, self.canvas.height) != (w32, h32) {
            self.canvas = Canvas::new(w32, h32);
        }
        compose(&mut self.canvas, tiles, focus, idle);
        self.canvas.to_0rgb(&mut self.pixels);
        self.window
            .update_with_buffer(&self.pixels, w32 as usize, h32 as usize)
            .map_err(|e| ViewError::Window(e.to_string()))
    }
}

/// Shows `scene` until the user quits (`q`, Escape, closing the window) or `should_stop`
/// says so. Must run on the thread that owns the display connection (the main thread).
pub fn show(
    scene: &Scene,
    options: &WindowOptions,
    clock: &dyn Clock,
    should_stop: impl Fn() -> bool,
) -> Result<(), ViewError> {
    check_display()?;
    if options.per_client {
        show_per_client(scene, clock, should_stop)
    } else {
        show_mosaic(scene, options, clock, should_stop)
    }
}

fn show_mosaic(
    scene: &Scene,
    options: &WindowOptions,
    clock: &dyn Clock,
    should_stop: impl Fn() -> bool,
) -> Result<(), ViewError> {
    let mut surface = Surface::new(open(&options.title, options.width, options.height)?);
    let mut pictures = Pictures::default();
    let mut focus = None;
    let mut title_live = None;
    while !quit_pressed(&surface.window) && !should_stop() {
        let views = scene.live(clock.now_us());
        let ids: Vec<u64> = views.iter().map(|v| v.meta.id).collect();
        for key in surface.window.get_keys_pressed(KeyRepeat::No) {
            if let Some(n) = number_key(key) {
                focus = focus_after_key(focus, n, &ids);
            }
        }
        if focus.is_some_and(|id| !ids.contains(&id)) {
            focus = None; // the enlarged client left: back to the mosaic
        }
        if title_live != Some(ids.len()) {
            title_live = Some(ids.len());
            let title = format!("{} - {} live", options.title, ids.len());
            surface.window.set_title(&title);
        }
        pictures.refresh(&views);
        surface.draw(&tiles(&views, &pictures), focus, &scene.status())?;
    }
    Ok(())
}

fn show_per_client(
    scene: &Scene,
    clock: &dyn Clock,
    should_stop: impl Fn() -> bool,
) -> Result<(), ViewError> {
    let mut surfaces: BTreeMap<u64, Surface> = BTreeMap::new();
    // Windows the user closed stay closed until their client reconnects.
    let mut dismissed: BTreeMap<u64, String> = BTreeMap::new();
    let mut pictures = Pictures::default();
    while !should_stop() {
        let views = scene.live(clock.now_us());
        surfaces.retain(|id, _| views.iter().any(|v| v.meta.id == *id));
        dismissed.retain(|id, peer| {
            views
                .iter()
                .any(|v| v.meta.id == *id && v.meta.peer == *peer)
        });
        for view in &views {
            let id = view.meta.id;
            if surfaces.contains_key(&id) || dismissed.contains_key(&id) {
                continue;
            }
            let (w, h) = (usize::from(view.meta.width), usize::from(view.meta.height));
            let (w, h) = if w == 0 || h == 0 {
                (640, 480)
            } else {
                (w.min(1920), h.min(1080))
            };
            let mut window = open(&view.label, w, h)?;
            // Several windows each waiting for their frame time would divide the rate.
            window.set_target_fps(0);
            // Side by side, three to a row: without a window manager they would all stack.
            let k = isize::try_from(surfaces.len()).unwrap_or(0);
            let (wi, hi) = (
                isize::try_from(w).unwrap_or(640),
                isize::try_from(h).unwrap_or(480),
            );
            window.set_position(10 + (k % 3) * (wi + 20), 10 + (k / 3) * (hi + 40));
            surfaces.insert(id, Surface::new(window));
        }
        pictures.refresh(&views);
        for view in &views {
            let Some(surface) = surfaces.get_mut(&view.meta.id) else {
                continue;
            };
            if !surface.window.is_open() {
                debug!("window of stream {} closed", view.meta.id);
                dismissed.insert(view.meta.id, view.meta.peer.clone());
                continue;
            }
            if surface.window.is_key_down(Key::Escape) || surface.window.is_key_down(Key::Q) {
                return Ok(());
            }
            let tile = Tile {
                id: view.meta.id,
                label: &view.label,
                stats: &view.stats,
                picture: pictures.get(view.meta.id),
            };
            surface.draw(&[tile], None, "")?;
        }
        surfaces.retain(|id, _| !dismissed.contains_key(id));
        std::thread::sleep(Duration::from_millis(1000 / TARGET_FPS as u64));
    }
    Ok(())
}
