//! Drawing the mosaic, pure: tiles (a decoded picture, a label, a stats line) in, pixels out.
//! No window and no clock here, so every rule is unit-tested on plain buffers.

use vidcast_media::overlay::{text_size, Picture, TextStyle};
use vidcast_media::DecodedImage;

/// Background between and around tiles.
pub const BACKGROUND: [u8; 3] = [16, 16, 16];
/// A tile whose stream has no picture yet.
pub const EMPTY_TILE: [u8; 3] = [48, 48, 48];
/// Label text colour.
pub const LABEL_TEXT: [u8; 3] = [255, 255, 255];
/// Box behind the stats line.
pub const STATS_BOX: [u8; 3] = [0, 0, 0];
/// Space around each label's text, in pixels (solid box colour, which tests look for).
pub const LABEL_PAD: u32 = 4;
/// Pixels between tiles.
const GAP: u32 = 4;

/// Label box colours, one per stream id (id modulo the palette): saturated and mid-dark so
/// white text reads on every one.
pub const PALETTE: [[u8; 3]; 6] = [
    [200, 30, 30],
    [20, 130, 40],
    [30, 70, 200],
    [190, 110, 0],
    [140, 30, 160],
    [0, 120, 130],
];

/// The label box colour of stream `id`.
pub fn label_color(id: u64) -> [u8; 3] {
    PALETTE[(id % PALETTE.len() as u64) as usize]
}

/// A stream's label, as the original receiver drew it: `CLIENT: ip:port name`.
pub fn label_text(peer: &str, name: &str) -> String {
    format!("CLIENT: {peer} {name}")
}

/// Size of the label box for `text`, padding included.
pub fn label_size(text: &str) -> (u32, u32) {
    let (w, h) = text_size(text, 1);
    (w + 2 * LABEL_PAD, h + 2 * LABEL_PAD)
}

/// A rectangle on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// One stream as the mosaic draws it.
#[derive(Debug, Clone, Copy)]
pub struct Tile<'a> {
    /// Stream id (picks the label colour).
    pub id: u64,
    /// The label text (see [`label_text`]).
    pub label: &'a str,
    /// The stats line, e.g. `29.9 fps  12 ms`.
    pub stats: &'a str,
    /// The newest decoded picture, if any yet.
    pub picture: Option<&'a DecodedImage>,
}

/// An RGB8 canvas the size of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed RGB8, rows top to bottom.
    pub rgb: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with [`BACKGROUND`].
    pub fn new(width: u32, height: u32) -> Self {
        let mut rgb = vec![0; width as usize * height as usize * 3];
        for px in rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&BACKGROUND);
        }
        Self { width, height, rgb }
    }

    /// The pixel at `(x, y)`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The pixels as minifb wants them: one `0x00RRGGBB` per pixel, written into `out`.
    pub fn to_0rgb(&self, out: &mut Vec<u32>) {
        out.clear();
        out.extend(
            self.rgb
                .chunks_exact(3)
                .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2])),
        );
    }

    fn fill(&mut self, r: Rect, color: [u8; 3]) {
        Picture::rgb(&mut self.rgb, self.width, self.height).fill_rect(r.x, r.y, r.w, r.h, color);
    }

    fn text(&mut self, x: u32, y: u32, text: &str, fg: [u8; 3]) {
        Picture::rgb(&mut self.rgb, self.width, self.height).draw_text(
            x,
            y,
            text,
            &TextStyle::new(1, fg),
        );
    }
}

/// Cells for `n` tiles in a `width` x `height` canvas: the grid (columns x rows) that gives
/// a 4:3 picture the largest area, filled row by row, with a small gap around each cell.
pub fn grid(n: usize, width: u32, height: u32) -> Vec<Rect> {
    if n == 0 || width <= GAP || height <= GAP {
        return Vec::new();
    }
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    let (mut best_cols, mut best_area) = (1, 0u64);
    for cols in 1..=n32 {
        let rows = n32.div_ceil(cols);
        let (cw, ch) = (width / cols, height / rows);
        let pic_w = u64::from(cw.min(ch * 4 / 3));
        let area = pic_w * pic_w * 3 / 4;
        if area > best_area {
            (best_cols, best_area) = (cols, area);
        }
    }
    let rows = n32.div_ceil(best_cols);
    let (cw, ch) = (width / best_cols, height / rows);
    (0..n32)
        .map(|i| Rect {
            x: (i % best_cols) * cw + GAP / 2,
            y: (i / best_cols) * ch + GAP / 2,
            w: cw.saturating_sub(GAP).max(1),
            h: ch.saturating_sub(GAP).max(1),
        })
        .collect()
}

/// Where a `pw` x `ph` picture goes inside `cell`: as large as fits, aspect kept, centred.
pub fn fit(cell: Rect, pw: u32, ph: u32) -> Rect {
    if pw == 0 || ph == 0 {
        return cell;
    }
    let (cw, ch) = (u64::from(cell.w), u64::from(cell.h));
    let (pw, ph) = (u64::from(pw), u64::from(ph));
    let (w, h) = if cw * ph <= ch * pw {
        (cw, (cw * ph / pw).max(1))
    } else {
        ((ch * pw / ph).max(1), ch)
    };
    let (w, h) = (w as u32, h as u32);
    Rect {
        x: cell.x + (cell.w - w) / 2,
        y: cell.y + (cell.h - h) / 2,
        w,
        h,
    }
}

/// Scales `picture` into `dst` on the canvas (nearest neighbour: cheap, and a mosaic tile is
/// mostly a downscale where it looks fine).
fn blit(canvas: &mut Canvas, picture: &DecodedImage, dst: Rect) {
    let (pw, ph) = (picture.width as usize, picture.height as usize);
    if pw == 0 || ph == 0 || picture.rgb.len() < pw * ph * 3 {
        return;
    }
    let cw = canvas.width as usize;
    let x_end = (dst.x + dst.w).min(canvas.width) as usize;
    let y_end = (dst.y + dst.h).min(canvas.height) as usize;
    let xs: Vec<usize> = (dst.x as usize..x_end)
        .map(|x| (x - dst.x as usize) * pw / dst.w as usize * 3)
        .collect();
    for y in dst.y as usize..y_end {
        let sy = (y - dst.y as usize) * ph / dst.h as usize;
        let src_row = &picture.rgb[sy * pw * 3..(sy + 1) * pw * 3];
        let start = (y * cw + dst.x as usize) * 3;
        let row = &mut canvas.rgb[start..start + xs.len() * 3];
        for (px, &sx) in row.chunks_exact_mut(3).zip(&xs) {
            px.copy_from_slice(&src_row[sx..sx + 3]);
        }
    }
}

/// Draws a label box with its top-left corner at `(x, y)` and returns where it went.
pub fn draw_label_at(canvas: &mut Canvas, x: u32, y: u32, text: &str, bg: [u8; 3]) -> Rect {
    let (w, h) = label_size(text);
    let rect = Rect { x, y, w, h };
    canvas.fill(rect, bg);
    canvas.text(x + LABEL_PAD, y + LABEL_PAD, text, LABEL_TEXT);
    rect
}

/// Draws one tile into `cell`: the picture fitted and centred (or an empty box), the label on
/// the picture's top-left corner, the stats line on its bottom-left corner.
pub fn draw_tile(canvas: &mut Canvas, cell: Rect, tile: &Tile<'_>) {
    let area = match tile.picture {
        Some(p) => {
            let area = fit(cell, p.width, p.height);
            blit(canvas, p, area);
            area
        }
        None => {
            canvas.fill(cell, EMPTY_TILE);
            cell
        }
    };
    draw_label_at(canvas, area.x, area.y, tile.label, label_color(tile.id));
    if !tile.stats.is_empty() {
        let (_, h) = label_size(tile.stats);
        let y = (area.y + area.h).saturating_sub(h).max(area.y);
        draw_label_at(canvas, area.x, y, tile.stats, STATS_BOX);
    }
}

/// Draws the whole mosaic: every tile in its grid cell, or only the `focus`ed one (by id) over
/// the whole canvas. With no tiles, `idle` is written in the middle instead.
pub fn compose(canvas: &mut Canvas, tiles: &[Tile<'_>], focus: Option<u64>, idle: &str) {
    canvas.fill(
        Rect {
            x: 0,
            y: 0,
            w: canvas.width,
            h: canvas.height,
        },
        BACKGROUND,
    );
    let shown: Vec<&Tile<'_>> = match focus.and_then(|id| tiles.iter().find(|t| t.id == id)) {
        Some(t) => vec![t],
        None => tiles.iter().collect(),
    };
    if shown.is_empty() {
        let (w, h) = text_size(idle, 1);
        let x = canvas.width.saturating_sub(w) / 2;
        let y = canvas.height.saturating_sub(h) / 2;
        canvas.text(x, y, idle, LABEL_TEXT);
        return;
    }
    for (cell, tile) in grid(shown.len(), canvas.width, canvas.height)
        .into_iter()
        .zip(shown)
    {
        draw_tile(canvas, cell, tile);
    }
}

/// What a number key does to the enlarged stream: key `k` (1 to 9) enlarges the k-th tile of
/// `ids` (in mosaic order); the same key again, or 0, returns to the mosaic.
pub fn focus_after_key(focus: Option<u64>, key: u8, ids: &[u64]) -> Option<u64> {
    if key == 0 {
        return None;
    }
    let picked = ids.get(usize::from(key) - 1).copied();
    match picked {
        Some(id) if focus == Some(id) => None,
        Some(id) => Some(id),
        None => focus,
    }
}

/// The stats line of a tile: frame rate and latency (capture to screen) when known.
pub fn stats_text(fps: f64, latency_ms: Option<f64>) -> String {
    match latency_ms {
        Some(ms) => format!("{fps:.1} fps  {ms:.0} ms"),
        None => format!("{fps:.1} fps  latency ?"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn picture(w: u32, h: u32, color: [u8; 3]) -> DecodedImage {
        let mut rgb = vec![0; (w * h * 3) as usize];
        for px in rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&color);
        }
        DecodedImage {
            width: w,
            height: h,
            rgb,
        }
    }

    fn count(canvas: &Canvas, r: Rect, color: [u8; 3]) -> usize {
        let mut n = 0;
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                n += usize::from(canvas.pixel(x, y) == color);
            }
        }
        n
    }

    #[test]
    fn grid_reflows_as_streams_come_and_go() {
        assert!(grid(0, 1280, 720).is_empty());
        let one = grid(1, 1280, 720);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].w, one[0].h), (1276, 716));
        // Three 4:3 tiles in 16:9 fit best as 2x2 (the last cell empty), four as well.
        let three = grid(3, 1280, 720);
        assert_eq!(three[1].x, 642);
        assert_eq!(three[2].y, 362);
        assert_eq!(grid(4, 1280, 720)[3].x, three[1].x);
        // Cells never overlap and stay on the canvas.
        for n in 1..=20 {
            let cells = grid(n, 1000, 600);
            assert_eq!(cells.len(), n);
            for (i, a) in cells.iter().enumerate() {
                assert!(a.x + a.w <= 1000 && a.y + a.h <= 600, "{n}: {a:?}");
                for b in &cells[i + 1..] {
                    let apart = a.x + a.w <= b.x
                        || b.x + b.w <= a.x
                        || a.y + a.h <= b.y
                        || b.y + b.h <= a.y;
                    assert!(apart, "{n}: {a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn fit_keeps_the_aspect_and_centres() {
        let cell = Rect {
            x: 10,
            y: 20,
            w: 400,
            h: 400,
        };
        assert_eq!(
            fit(cell, 640, 480),
            Rect {
                x: 10,
                y: 70,
                w: 400,
                h: 300
            }
        );
        assert_eq!(fit(cell, 100, 200).w, 200);
    }

    #[test]
    fn a_tile_shows_its_picture_label_box_and_stats() {
        let mut canvas = Canvas::new(320, 240);
        let pic = picture(64, 48, [0, 200, 0]);
        let tile = Tile {
            id: 2,
            label: "CLIENT: 127.0.0.1:5000 cam",
            stats: "30.0 fps  5 ms",
            picture: Some(&pic),
        };
        let cell = Rect {
            x: 0,
            y: 0,
            w: 320,
            h: 240,
        };
        draw_tile(&mut canvas, cell, &tile);
        // The label box: solid colour along its padding, white text inside.
        let (lw, lh) = label_size(tile.label);
        let label = Rect {
            x: 0,
            y: 0,
            w: lw,
            h: lh,
        };
        let color = label_color(2);
        assert_eq!(
            count(
                &canvas,
                Rect {
                    h: LABEL_PAD,
                    ..label
                },
                color
            ),
            (lw * LABEL_PAD) as usize
        );
        assert!(count(&canvas, label, LABEL_TEXT) > 50);
        assert_eq!(
            canvas.pixel(lw, 0),
            [0, 200, 0],
            "picture right of the label"
        );
        // The stats box sits on the bottom-left, the picture fills the rest.
        assert_eq!(canvas.pixel(2, 239), STATS_BOX);
        assert_eq!(canvas.pixel(300, 200), [0, 200, 0]);
    }

    #[test]
    fn compose_draws_each_stream_in_its_cell_or_only_the_enlarged_one() {
        let pics = [
            picture(40, 30, [250, 0, 0]),
            picture(40, 30, [0, 250, 0]),
            picture(40, 30, [0, 0, 250]),
        ];
        let tiles: Vec<Tile<'_>> = pics
            .iter()
            .enumerate()
            .map(|(i, p)| Tile {
                id: i as u64 + 1,
                label: "L",
                stats: "",
                picture: Some(p),
            })
            .collect();
        let mut canvas = Canvas::new(640, 480);
        compose(&mut canvas, &tiles, None, "idle");
        let cells = grid(3, 640, 480);
        for (cell, p) in cells.iter().zip(&pics) {
            let c = (cell.x + cell.w - 5, cell.y + cell.h - 5);
            assert_eq!(canvas.pixel(c.0, c.1), [p.rgb[0], p.rgb[1], p.rgb[2]]);
        }
        compose(&mut canvas, &tiles, Some(3), "idle");
        assert_eq!(
            canvas.pixel(600, 400),
            [0, 0, 250],
            "stream 3 fills the window"
        );
        assert_eq!(
            count(
                &canvas,
                Rect {
                    x: 0,
                    y: 0,
                    w: 640,
                    h: 480
                },
                [250, 0, 0]
            ),
            0
        );
    }

    #[test]
    fn no_streams_shows_the_idle_text_only() {
        let mut canvas = Canvas::new(200, 100);
        compose(&mut canvas, &[], None, "waiting");
        let all = Rect {
            x: 0,
            y: 0,
            w: 200,
            h: 100,
        };
        assert!(count(&canvas, all, LABEL_TEXT) > 20);
        assert_eq!(
            count(&canvas, all, BACKGROUND) + count(&canvas, all, LABEL_TEXT),
            200 * 100
        );
    }

    #[test]
    fn number_keys_enlarge_and_the_same_key_or_zero_returns() {
        let ids = [4, 7, 9];
        assert_eq!(focus_after_key(None, 2, &ids), Some(7));
        assert_eq!(focus_after_key(Some(7), 2, &ids), None);
        assert_eq!(focus_after_key(Some(7), 3, &ids), Some(9));
        assert_eq!(focus_after_key(Some(7), 0, &ids), None);
        assert_eq!(focus_after_key(Some(7), 8, &ids), Some(7), "no 8th stream");
    }

    #[test]
    fn to_0rgb_packs_pixels_for_the_window() {
        let mut canvas = Canvas::new(2, 1);
        canvas.rgb = vec![1, 2, 3, 255, 0, 128];
        let mut out = Vec::new();
        canvas.to_0rgb(&mut out);
        assert_eq!(out, vec![0x010203, 0xff0080]);
    }

    #[test]
    fn stats_line_says_fps_and_latency() {
        assert_eq!(stats_text(29.97, Some(12.4)), "30.0 fps  12 ms");
        assert_eq!(stats_text(0.0, None), "0.0 fps  latency ?");
    }
}
