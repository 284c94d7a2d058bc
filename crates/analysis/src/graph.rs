//! Drawing the series: Stevens (time-sequence), throughput, RTT and bytes in flight, as SVG or
//! PNG, with axes, units and a title naming the flow.
//!
//! Text uses DejaVu Sans compiled into the binary (assets/, Bitstream Vera licence), through
//! plotters' ab_glyph backend, so no system font library is needed.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::series::{DirectionSeries, Point, SegmentPoint};
use crate::summary::bytes as human_bytes;

/// Picture size in pixels.
pub const SIZE: (u32, u32) = (1200, 800);

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::error!("the embedded font failed to load; graphs will have no text");
        }
    });
}

/// Drawing failed.
#[derive(Debug, thiserror::Error)]
#[error("drawing the {graph} graph failed: {reason}")]
pub struct GraphError {
    /// Which graph.
    pub graph: &'static str,
    /// Why.
    pub reason: String,
}

/// The four graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph {
    /// Sequence number over time with ACK and window lines.
    Stevens,
    /// Payload per interval and its moving average.
    Throughput,
    /// RTT samples over time.
    Rtt,
    /// Bytes in flight over time.
    InFlight,
}

impl Graph {
    /// All of them.
    pub const ALL: [Graph; 4] = [Self::Stevens, Self::Throughput, Self::Rtt, Self::InFlight];

    /// File-name part.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stevens => "stevens",
            Self::Throughput => "throughput",
            Self::Rtt => "rtt",
            Self::InFlight => "inflight",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Stevens => "Time-sequence (Stevens)",
            Self::Throughput => "Throughput",
            Self::Rtt => "Round-trip time",
            Self::InFlight => "Bytes in flight",
        }
    }
}

/// Renders one graph as SVG text.
pub fn svg(graph: Graph, s: &DirectionSeries) -> Result<String, GraphError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(graph, &root, s).map_err(|reason| GraphError {
            graph: graph.name(),
            reason,
        })?;
        root.present().map_err(|e| GraphError {
            graph: graph.name(),
            reason: e.to_string(),
        })?;
    }
    Ok(out)
}

/// Renders one graph as a PNG file's bytes.
pub fn png(graph: Graph, s: &DirectionSeries) -> Result<Vec<u8>, GraphError> {
    register_font();
    let err = |reason: String| GraphError {
        graph: graph.name(),
        reason,
    };
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(graph, &root, s).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, SIZE.0, SIZE.1);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_depth(::png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| err(e.to_string()))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| err(e.to_string()))?;
    writer.finish().map_err(|e| err(e.to_string()))?;
    Ok(out)
}

fn draw<DB: DrawingBackend>(
    graph: Graph,
    root: &DrawingArea<DB, Shift>,
    s: &DirectionSeries,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let title = format!("{}: {}", graph.title(), s.flow_name());
    match graph {
        Graph::Stevens => stevens(root, s, &title),
        Graph::Throughput => throughput(root, s, &title),
        Graph::Rtt => scatter(
            root,
            &title,
            &s.rtt_ms.points,
            "RTT (ms)",
            "RTT sample",
            &|v| format!("{v:.3}"),
        ),
        Graph::InFlight => scatter(
            root,
            &title,
            &s.in_flight.points,
            "bytes in flight",
            "sent, not yet acknowledged",
            &|v| human_bytes(v.max(0.0) as u64),
        ),
    }
    .map_err(|e| e.to_string())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn time_range(points: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for t in points {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.02).max(1e-4);
    (lo - pad).max(0.0)..hi + pad
}

fn value_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1.0);
    (lo - pad).min(0.0f64.max(lo - pad))..hi + pad
}

fn seq_label(v: f64) -> String {
    match v.abs() {
        a if a >= 1e9 => format!("{:.2} G", v / 1e9),
        a if a >= 1e6 => format!("{:.2} M", v / 1e6),
        a if a >= 1e4 => format!("{:.0} k", v / 1e3),
        _ => format!("{v:.0}"),
    }
}

fn stevens<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &DirectionSeries,
    title: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let segs = || {
        s.segments
            .points
            .iter()
            .chain(&s.retransmissions.points)
            .chain(&s.out_of_order.points)
    };
    let x = time_range(
        segs()
            .map(|p| p.t_s)
            .chain(s.acks.points.iter().map(|p| p.t_s)),
    );
    let data = segs()
        .flat_map(|p| [(p.t_s, p.seq as f64), (p.t_s, p.end as f64)])
        .chain(
            [&s.acks.points, &s.window.points]
                .into_iter()
                .flatten()
                .map(|p| (p.t_s, p.v)),
        )
        .chain(
            s.sacks
                .points
                .iter()
                .flat_map(|p| [(p.t_s, p.left as f64), (p.t_s, p.right as f64)]),
        );
    // The window edge can be far above the data; keep the data readable but show the window.
    let y = value_range(
        segs()
            .flat_map(|p| [p.seq as f64, p.end as f64])
            .chain(s.acks.points.iter().map(|p| p.v))
            .chain(s.window.points.iter().map(|p| p.v)),
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(100)
        .build_cartesian_2d(x.clone(), y.clone())?;
    // Seven entries: about a quarter of the plot's width and height.
    let corner = legend_corner(data, &x, &y, (0.3, 0.25));
    let y_desc = if s.absolute {
        "absolute sequence number (bytes, unwrapped)"
    } else {
        "relative sequence number (bytes)"
    };
    chart
        .configure_mesh()
        .x_desc("time since connection start (s)")
        .y_desc(y_desc)
        .y_label_formatter(&|v| seq_label(*v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;

    let window_color = RGBColor(230, 160, 0);
    chart
        .draw_series(step_line(&s.window.points, window_color))?
        .label("receive window edge")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], window_color));
    let ack_color = RGBColor(0, 150, 0);
    chart
        .draw_series(step_line(&s.acks.points, ack_color))?
        .label("ACK")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ack_color));
    let sack_color = RGBColor(160, 0, 200);
    chart
        .draw_series(s.sacks.points.iter().map(|p| {
            // Translucent, under the segments: under heavy loss the SACK shading is dense and
            // must not hide the retransmissions drawn over it.
            PathElement::new(
                vec![(p.t_s, p.left as f64), (p.t_s, p.right as f64)],
                sack_color.mix(0.45).stroke_width(3),
            )
        }))?
        .label("SACK block")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], sack_color));
    // Retransmissions last and wider: over the data, the SACK shading and each other.
    for (points, color, label, width) in [
        (&s.segments.points, RGBColor(0, 60, 220), "data segment", 2),
        (
            &s.out_of_order.points,
            RGBColor(0, 170, 200),
            "out-of-order",
            2,
        ),
        (
            &s.retransmissions.points,
            RGBColor(220, 0, 0),
            "retransmission",
            3,
        ),
    ] {
        chart
            .draw_series(points.iter().map(move |p: &SegmentPoint| {
                PathElement::new(
                    vec![(p.t_s, p.seq as f64), (p.t_s, p.end as f64)],
                    color.stroke_width(width),
                )
            }))?
            .label(format!("{label} ({})", points.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    // Drawn last, over everything: the receiver stopped the sender here.
    let zero_color = RGBColor(0, 0, 0);
    chart
        .draw_series(
            s.zero_windows
                .points
                .iter()
                .map(|p| TriangleMarker::new((p.t_s, p.v), 7, zero_color.filled())),
        )?
        .label(format!("zero window ({})", s.zero_windows.points.len()))
        .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, zero_color.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(corner)
        .draw()?;
    Ok(())
}

/// The corner of the plot where a legend box of `size` (fractions of the axes' width and
/// height) covers the fewest data points; ties go to the first of upper left, upper right,
/// lower right, lower left.
fn legend_corner(
    points: impl Iterator<Item = (f64, f64)>,
    x: &std::ops::Range<f64>,
    y: &std::ops::Range<f64>,
    size: (f64, f64),
) -> SeriesLabelPosition {
    let (w, h) = ((x.end - x.start) * size.0, (y.end - y.start) * size.1);
    // [upper left, upper right, lower right, lower left]
    let mut covered = [0u64; 4];
    for (px, py) in points {
        let (is_left, is_right) = (px <= x.start + w, px >= x.end - w);
        let (is_top, is_bottom) = (py >= y.end - h, py <= y.start + h);
        covered[0] += u64::from(is_left && is_top);
        covered[1] += u64::from(is_right && is_top);
        covered[2] += u64::from(is_right && is_bottom);
        covered[3] += u64::from(is_left && is_bottom);
    }
    let best = (0..4).min_by_key(|&i| (covered[i], i)).unwrap_or(0);
    [
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::LowerRight,
        SeriesLabelPosition::LowerLeft,
    ][best]
        .clone()
}

/// A step line through points (each value holds until the next).
fn step_line<DB: DrawingBackend>(points: &[Point], color: RGBColor) -> LineSeries<DB, (f64, f64)> {
    let mut path = Vec::with_capacity(points.len() * 2);
    let mut last: Option<f64> = None;
    for p in points {
        if let Some(v) = last {
            path.push((p.t_s, v));
        }
        path.push((p.t_s, p.v));
        last = Some(p.v);
    }
    LineSeries::new(path, color)
}

fn throughput<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &DirectionSeries,
    title: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let x = time_range(
        s.throughput
            .iter()
            .map(|p| p.t_s)
            .chain(s.throughput.last().map(|p| p.t_s + s.interval_s)),
    );
    let top = s
        .throughput
        .iter()
        .map(|p| p.mbit_s.max(p.moving_avg_mbit_s))
        .fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(x.clone(), 0.0..(top * 1.1).max(1e-3))?;
    let corner = legend_corner(
        s.throughput.iter().flat_map(|p| {
            [
                (p.t_s, p.mbit_s),
                (p.t_s + s.interval_s, p.mbit_s),
                (p.t_s, p.moving_avg_mbit_s),
            ]
        }),
        &x,
        &(0.0..(top * 1.1).max(1e-3)),
        (0.35, 0.1),
    );
    chart
        .configure_mesh()
        .x_desc("time since connection start (s)")
        .y_desc("throughput (Mbit/s, TCP payload)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    let bar = RGBColor(90, 140, 230);
    let interval = s.interval_s;
    chart
        .draw_series(s.throughput.iter().map(|p| {
            Rectangle::new(
                [(p.t_s, 0.0), (p.t_s + interval, p.mbit_s)],
                bar.mix(0.6).filled(),
            )
        }))?
        .label(format!("per {:.1} ms interval", interval * 1e3))
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], bar.filled()));
    chart
        .draw_series(LineSeries::new(
            s.throughput
                .iter()
                .map(|p| (p.t_s + interval / 2.0, p.moving_avg_mbit_s)),
            RED.stroke_width(2),
        ))?
        .label(format!(
            "moving average ({} intervals)",
            crate::series::MOVING_AVERAGE_BINS
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(corner)
        .draw()?;
    Ok(())
}

fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[Point],
    y_desc: &str,
    label: &str,
    y_fmt: &dyn Fn(f64) -> String,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let x = time_range(points.iter().map(|p| p.t_s));
    let top = points.iter().map(|p| p.v).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(100)
        .build_cartesian_2d(x.clone(), 0.0..(top * 1.1).max(1e-3))?;
    let corner = legend_corner(
        points.iter().map(|p| (p.t_s, p.v)),
        &x,
        &(0.0..(top * 1.1).max(1e-3)),
        (0.35, 0.06),
    );
    chart
        .configure_mesh()
        .x_desc("time since connection start (s)")
        .y_desc(y_desc)
        .y_label_formatter(&|v| y_fmt(*v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    let color = RGBColor(0, 60, 220);
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.t_s, p.v), 2, color.filled())),
        )?
        .label(format!("{label} ({} points)", points.len()))
        .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(corner)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corner_name(p: SeriesLabelPosition) -> &'static str {
        match p {
            SeriesLabelPosition::UpperLeft => "upper left",
            SeriesLabelPosition::UpperRight => "upper right",
            SeriesLabelPosition::LowerRight => "lower right",
            SeriesLabelPosition::LowerLeft => "lower left",
            _ => "other",
        }
    }

    /// A Stevens-like diagonal leaves the upper left and lower right free; data in the upper
    /// left sends the legend to the lower right; a rising throughput to the upper left.
    #[test]
    fn the_legend_goes_to_the_corner_with_the_least_data() {
        let (x, y) = (0.0..10.0, 0.0..100.0);
        let diagonal = (0..100).map(|i| (i as f64 / 10.0, i as f64));
        assert_eq!(
            corner_name(legend_corner(diagonal, &x, &y, (0.3, 0.25))),
            "upper left"
        );
        let upper_left = (0..100)
            .map(|i| (i as f64 / 10.0, i as f64))
            .chain((0..50).map(|i| (0.1 * (i % 10) as f64, 95.0)));
        assert_eq!(
            corner_name(legend_corner(upper_left, &x, &y, (0.3, 0.25))),
            "lower right"
        );
        let flat_high = (0..100).map(|i| (i as f64 / 10.0, 90.0));
        assert_eq!(
            corner_name(legend_corner(flat_high, &x, &y, (0.3, 0.1))),
            "lower right"
        );
    }
}
