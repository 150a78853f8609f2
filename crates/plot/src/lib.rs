//! The figures of the addmul book and the `addmul` command, drawn as
//! self-contained SVG text: no system fonts, no scripts, no network.
//!
//! - [`LineChart`]: loss curves and other series against a step or epoch.
//! - [`NetworkDiagram`]: a small network with its weights on the arrows.
//! - [`BarChart`]: values by category, one bar per group (probabilities at
//!   several temperatures, two models' predictions).
//! - [`Heatmap`]: a matrix of values (attention weights, positional
//!   encodings) as coloured cells.
//! - [`RegionMap`]: a classifier's decision regions over two inputs, with the
//!   data points on top.
//! - [`TokenRows`]: text cut into pieces, a row per cut (tokenizers side by
//!   side, a context window sliding over text).
//!
//! Every figure renders to a `String` with `to_svg` and to a file with `save`.
//!
//! # Example
//! ```
//! use addmul_plot::{LineChart, Series};
//! let svg = LineChart::new("loss", "epoch", "loss")
//!     .series(Series::new("train", vec![(1.0, 0.9), (2.0, 0.5), (3.0, 0.3)]))
//!     .to_svg()?;
//! assert!(svg.starts_with("<svg"));
//! # Ok::<(), addmul_plot::PlotError>(())
//! ```
#![deny(missing_docs)]

pub use plotters::chart::SeriesLabelPosition;

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A figure could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The drawing backend failed.
    #[error("drawing {figure}: {message}")]
    Draw {
        /// The figure's title.
        figure: String,
        /// The backend's message.
        message: String,
    },
    /// The figure has nothing to draw, or its data is not finite.
    #[error("figure {figure}: {problem}")]
    BadData {
        /// The figure's title.
        figure: String,
        /// What is wrong.
        problem: String,
    },
    /// The SVG file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, PlotError>;

/// Colours for series and classes: Okabe and Ito's palette, chosen to stay
/// distinct with the common kinds of colour blindness (no red beside green)
/// and in print. Line charts also draw each series after the first with its
/// own dash pattern ([`DASHES`]), so that no figure depends on colour alone.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
];

/// Dash and gap lengths (pixels) of line series `1..`: series 0 is solid.
pub const DASHES: [(u32, u32); 5] = [(9, 4), (2, 3), (14, 4), (5, 5), (1, 6)];

fn draw_err(figure: &str, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw { figure: figure.to_string(), message: e.to_string() }
}

fn bad(figure: &str, problem: impl Into<String>) -> PlotError {
    PlotError::BadData { figure: figure.to_string(), problem: problem.into() }
}

fn save_svg(path: &Path, svg: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io { path: dir.display().to_string(), source })?;
    }
    std::fs::write(path, svg).map_err(|source| PlotError::Io { path: path.display().to_string(), source })
}

fn render(
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(title, e))?;
        draw(root.clone())?;
        root.present().map_err(|e| draw_err(title, e))?;
    }
    Ok(svg)
}

/// Draws a chart's legend (its series' labels) at `position`, in a light box.
fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: &SeriesLabelPosition,
    title: &str,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .border_style(BLACK.mix(0.3))
        .background_style(WHITE.mix(0.9))
        .position(position.clone())
        .draw()
        .map_err(|e| draw_err(title, e))
}

fn padded_range(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

/// One named line of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    dots: bool,
}

impl Series {
    /// A series called `name`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, dots: false }
    }

    /// The same series with a dot on every point (steps of an algorithm
    /// rather than a curve), still joined by its line.
    pub fn with_dots(self) -> Self {
        Series { dots: true, ..self }
    }
}

/// Lines against a shared x axis, with an optional marked x position.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<Series>,
    marker: Option<(f64, String)>,
    log_x: bool,
    legend: SeriesLabelPosition,
    size: (u32, u32),
}

impl LineChart {
    /// An empty chart.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            marker: None,
            log_x: false,
            legend: SeriesLabelPosition::UpperRight,
            size: (720, 420),
        }
    }

    /// Adds a line.
    pub fn series(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }

    /// Draws a dashed vertical line at `x` labelled `label`.
    pub fn marker(mut self, x: f64, label: impl Into<String>) -> Self {
        self.marker = Some((x, label.into()));
        self
    }

    /// Puts the legend somewhere other than the upper right corner.
    pub fn legend_at(mut self, position: SeriesLabelPosition) -> Self {
        self.legend = position;
        self
    }

    /// Uses a logarithmic x axis (all x must be positive).
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// Renders the chart.
    ///
    /// # Errors
    /// [`PlotError::BadData`] if there are no points or a point is not
    /// finite (or not positive on a log axis).
    pub fn to_svg(&self) -> Result<String> {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in points {
            if !x.is_finite() || !y.is_finite() || (self.log_x && x <= 0.0) {
                return Err(bad(&self.title, format!("point ({x}, {y}) cannot be drawn")));
            }
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            return Err(bad(&self.title, "no points"));
        }
        let (y0, y1) = padded_range(y0, y1);
        render(self.size, &self.title, |root| {
            if self.log_x {
                self.draw(root, (x0..x1.max(x0 * 1.01)).log_scale(), y0..y1)
            } else {
                let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 0.5, x1 + 0.5) };
                self.draw(root, x0..x1, y0..y1)
            }
        })
    }

    fn draw<X>(&self, root: DrawingArea<SVGBackend<'_>, Shift>, x: X, y: std::ops::Range<f64>) -> Result<()>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let e = |e| draw_err(&self.title, e);
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            // Room for half of the last x label, which is centred on the edge.
            .margin_right(28)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x, y.clone())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| tick(*v))
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()].stroke_width(2);
            let points = s.points.iter().copied();
            if s.dots {
                let fill = PALETTE[i % PALETTE.len()].filled();
                chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, fill))).map_err(e)?;
            }
            let drawn = match i.checked_sub(1).map(|d| DASHES[d % DASHES.len()]) {
                None => chart.draw_series(LineSeries::new(points, colour)).map_err(e)?,
                Some((dash, gap)) => chart.draw_series(DashedLineSeries::new(points, dash, gap, colour)).map_err(e)?,
            };
            // The legend's sample line, 24 pixels: one dash longer than it
            // draws the solid line.
            let (dash, gap) = i.checked_sub(1).map_or((30, 1), |d| DASHES[d % DASHES.len()]);
            drawn
                .label(&s.name)
                .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], dash, gap, colour));
        }
        if let Some((mx, label)) = &self.marker {
            let style = BLACK.mix(0.6).stroke_width(1);
            chart.draw_series(DashedLineSeries::new(vec![(*mx, y.start), (*mx, y.end)], 6, 4, style)).map_err(e)?;
            // The label hangs from the top of the line on the side with more
            // room, so that it never runs past the plot's edge, on a white
            // card so that the curves under it do not cross it.
            let (px, _) = chart.backend_coord(&(*mx, y.end));
            let area = chart.plotting_area();
            let (columns, _) = area.get_pixel_range();
            let right_half = px > (columns.start + columns.end) / 2;
            let style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
            let (w, h) = area.estimate_text_size(label, &style).map_err(e)?;
            let (w, h) = (w as i32, h as i32);
            let left = if right_half { -4 - w } else { 4 };
            let card = Rectangle::new([(left - 3, 3), (left + w + 3, 7 + h)], WHITE.mix(0.9).filled());
            let text = EmptyElement::at((*mx, y.end)) + card + Text::new(label.clone(), (left, 5), style);
            chart.draw_series(std::iter::once(text)).map_err(e)?;
        }
        draw_legend(&mut chart, &self.legend, &self.title)
    }

    /// Renders the chart into `path`, creating its folder.
    ///
    /// # Errors
    /// As [`LineChart::to_svg`], or [`PlotError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_svg(path.as_ref(), &self.to_svg()?)
    }
}

/// Bars of values by category, one bar per group side by side in each
/// category (softmax probabilities at several temperatures, say).
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    title: String,
    x_label: String,
    y_label: String,
    categories: Vec<String>,
    groups: Vec<(String, Vec<f64>)>,
    legend: SeriesLabelPosition,
    size: (u32, u32),
}

impl BarChart {
    /// An empty chart over `categories` (the x axis, left to right).
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        categories: Vec<String>,
    ) -> Self {
        BarChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            categories,
            groups: Vec::new(),
            legend: SeriesLabelPosition::UpperRight,
            size: (720, 420),
        }
    }

    /// Adds a group: one value per category, drawn in the next colour.
    pub fn group(mut self, name: impl Into<String>, values: Vec<f64>) -> Self {
        self.groups.push((name.into(), values));
        self
    }

    /// Puts the legend somewhere other than the upper right corner.
    pub fn legend_at(mut self, position: SeriesLabelPosition) -> Self {
        self.legend = position;
        self
    }

    /// Renders the chart (the y axis starts at 0, or below it for negative
    /// values).
    ///
    /// # Errors
    /// [`PlotError::BadData`] without categories or groups, for a group
    /// without one value per category, or for a value that is not finite.
    pub fn to_svg(&self) -> Result<String> {
        let n = self.categories.len();
        if n == 0 || self.groups.is_empty() {
            return Err(bad(&self.title, "no categories or no groups"));
        }
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for (name, values) in &self.groups {
            if values.len() != n {
                return Err(bad(&self.title, format!("group {name} has {} values for {n} categories", values.len())));
            }
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(bad(&self.title, format!("group {name} holds {v}")));
            }
            (lo, hi) = values.iter().fold((lo, hi), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        }
        let top = if hi > 0.0 { hi * 1.08 } else { 1.0 };
        let bottom = if lo < 0.0 { lo * 1.08 } else { 0.0 };
        render(self.size, &self.title, |root| {
            let e = |e| draw_err(&self.title, e);
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..n as f64, bottom..top)
                .map_err(e)?;
            // A tick at every half: the category's name at its middle.
            let label = |v: &f64| {
                let i = (v - 0.5).round();
                if (v - 0.5 - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < n {
                    self.categories[i as usize].clone()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_labels(2 * n + 1)
                .x_label_formatter(&label)
                .y_label_formatter(&|v| tick(*v))
                .disable_x_mesh()
                .light_line_style(WHITE)
                .draw()
                .map_err(e)?;
            let g = self.groups.len() as f64;
            let width = 0.8 / g;
            for (k, (name, values)) in self.groups.iter().enumerate() {
                let colour = PALETTE[k % PALETTE.len()];
                let left = |i: usize| i as f64 + 0.1 + k as f64 * width;
                chart
                    .draw_series(
                        values
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| Rectangle::new([(left(i), 0.0), (left(i) + width, v)], colour.filled())),
                    )
                    .map_err(e)?
                    .label(name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
            }
            if self.groups.len() > 1 {
                draw_legend(&mut chart, &self.legend, &self.title)?;
            }
            Ok(())
        })
    }

    /// Renders the chart into `path`, creating its folder.
    ///
    /// # Errors
    /// As [`BarChart::to_svg`], or [`PlotError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_svg(path.as_ref(), &self.to_svg()?)
    }
}

/// A small neural network drawn as the article draws it: a column of
/// circles per layer with each neuron's name and value, and every weight
/// written on its arrow (blue positive, red negative, thicker for larger).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkDiagram {
    title: String,
    layers: Vec<Vec<(String, String)>>,
    weights: Vec<Vec<Vec<f64>>>,
    size: (u32, u32),
}

impl NetworkDiagram {
    /// An empty diagram.
    pub fn new(title: impl Into<String>) -> Self {
        NetworkDiagram { title: title.into(), layers: Vec::new(), weights: Vec::new(), size: (900, 500) }
    }

    /// Adds a layer (drawn to the right of the previous one): each neuron's
    /// name (written above it) and value (written in it).
    pub fn layer(mut self, neurons: Vec<(String, String)>) -> Self {
        self.layers.push(neurons);
        self
    }

    /// The weights from the previous layer into the last one added:
    /// `weights[j][i]` multiplies neuron `i` of the previous layer on its way
    /// to neuron `j` (a `[out, in]` weight matrix, row by row).
    pub fn weights(mut self, weights: Vec<Vec<f64>>) -> Self {
        self.weights.push(weights);
        self
    }

    /// Renders the diagram.
    ///
    /// # Errors
    /// [`PlotError::BadData`] without layers, or when the weights are not one
    /// `[out, in]` matrix of finite numbers between each pair of layers.
    pub fn to_svg(&self) -> Result<String> {
        if self.layers.is_empty() || self.layers.iter().any(Vec::is_empty) {
            return Err(bad(&self.title, "no layers, or an empty layer"));
        }
        if self.weights.len() + 1 != self.layers.len() {
            return Err(bad(
                &self.title,
                format!("{} weight matrices for {} layers", self.weights.len(), self.layers.len()),
            ));
        }
        for (l, w) in self.weights.iter().enumerate() {
            let (from, to) = (self.layers[l].len(), self.layers[l + 1].len());
            if w.len() != to || w.iter().any(|row| row.len() != from || row.iter().any(|v| !v.is_finite())) {
                return Err(bad(&self.title, format!("weights {l} are not [{to}, {from}] finite numbers")));
            }
        }
        let (width, height) = (self.size.0 as i32, self.size.1 as i32);
        let radius = 28;
        let x_of = |l: usize| {
            let n = self.layers.len() as i32;
            if n == 1 { width / 2 } else { 110 + l as i32 * (width - 220) / (n - 1) }
        };
        let y_of = |l: usize, i: usize| {
            let n = self.layers[l].len() as i32;
            let gap = (height - 130) / n.max(1);
            75 + gap / 2 + i as i32 * gap + (height - 130 - gap * n) / 2
        };
        let largest = self.weights.iter().flatten().flatten().fold(0.0f64, |m, w| m.max(w.abs())).max(1e-12);
        render(self.size, &self.title, |root| {
            let e = |e| draw_err(&self.title, e);
            let centred = |size: f64| {
                ("sans-serif", size).into_font().into_text_style(&root).pos(Pos::new(HPos::Center, VPos::Center))
            };
            root.draw(&Text::new(self.title.clone(), (width / 2, 22), centred(20.0))).map_err(e)?;
            // Every arrow, then every weight on its arrow, then the circles on
            // top. A weight sits a fraction of the way along that grows with
            // the target neuron, so that labels of crossing arrows part.
            let arrows = self.weights.iter().enumerate().flat_map(|(l, w)| {
                w.iter().enumerate().flat_map(move |(j, row)| row.iter().enumerate().map(move |(i, &v)| (l, j, i, v)))
            });
            let arrows: Vec<_> = arrows
                .map(|(l, j, i, v)| {
                    let ends = (x_of(l) + radius, y_of(l, i), x_of(l + 1) - radius, y_of(l + 1, j));
                    let t = 0.18 + 0.5 * j as f64 / self.layers[l + 1].len() as f64;
                    (ends, t, v)
                })
                .collect();
            for &((x0, y0, x1, y1), _, v) in &arrows {
                let colour = if v >= 0.0 { PALETTE[0] } else { PALETTE[1] };
                let stroke = 1 + (3.0 * v.abs() / largest).round() as u32;
                root.draw(&PathElement::new(vec![(x0, y0), (x1, y1)], colour.mix(0.7).stroke_width(stroke)))
                    .map_err(e)?;
            }
            for &((x0, y0, x1, y1), t, v) in &arrows {
                let colour = if v >= 0.0 { PALETTE[0] } else { PALETTE[1] };
                let (tx, ty) = (x0 + ((x1 - x0) as f64 * t) as i32, y0 + ((y1 - y0) as f64 * t) as i32);
                let text = format!("{v}");
                let half = 3 * text.len() as i32 + 3;
                root.draw(&Rectangle::new([(tx - half, ty - 8), (tx + half, ty + 8)], WHITE.mix(0.9).filled()))
                    .map_err(e)?;
                root.draw(&Text::new(text, (tx, ty), centred(11.0).color(&colour))).map_err(e)?;
            }
            for (l, layer) in self.layers.iter().enumerate() {
                for (i, (name, value)) in layer.iter().enumerate() {
                    let (x, y) = (x_of(l), y_of(l, i));
                    root.draw(&Circle::new((x, y), radius, WHITE.filled())).map_err(e)?;
                    root.draw(&Circle::new((x, y), radius, BLACK.mix(0.7).stroke_width(2))).map_err(e)?;
                    root.draw(&Text::new(value.clone(), (x, y), centred(12.0))).map_err(e)?;
                    root.draw(&Text::new(name.clone(), (x, y - radius - 11), centred(13.0))).map_err(e)?;
                }
            }
            Ok(())
        })
    }

    /// Renders the diagram into `path`, creating its folder.
    ///
    /// # Errors
    /// As [`NetworkDiagram::to_svg`], or [`PlotError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_svg(path.as_ref(), &self.to_svg()?)
    }
}

/// One piece of a [`TokenRows`] row: its text and its colour (an index into
/// [`PALETTE`]), or no colour for text that is only context.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The text in the box (`␣` for a space reads better than a gap).
    pub text: String,
    /// The box's colour, `None` for plain context.
    pub colour: Option<usize>,
}

impl Piece {
    /// A piece in colour `colour` of the palette.
    pub fn coloured(text: impl Into<String>, colour: usize) -> Self {
        Piece { text: text.into(), colour: Some(colour) }
    }

    /// A piece without a colour: context around the pieces that matter.
    pub fn plain(text: impl Into<String>) -> Self {
        Piece { text: text.into(), colour: None }
    }
}

/// Text cut into pieces, one row per cut: the same sentence as several
/// tokenizers split it, or a window sliding over a text. Each piece is a box
/// of its own (so the cuts show without colour), lightly filled with its
/// colour; every row has a label on its left.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRows {
    title: String,
    rows: Vec<(String, Vec<Piece>)>,
}

impl TokenRows {
    /// An empty figure.
    pub fn new(title: impl Into<String>) -> Self {
        TokenRows { title: title.into(), rows: Vec::new() }
    }

    /// Adds a row below the others.
    pub fn row(mut self, label: impl Into<String>, pieces: Vec<Piece>) -> Self {
        self.rows.push((label.into(), pieces));
        self
    }

    /// The width of `text` in the figure's monospace font at 15 px.
    fn text_width(text: &str) -> i32 {
        9 * text.chars().count() as i32
    }

    /// Renders the figure, as wide as its longest row.
    ///
    /// # Errors
    /// [`PlotError::BadData`] without rows, with an empty row or piece, or
    /// with a colour outside the palette.
    pub fn to_svg(&self) -> Result<String> {
        if self.rows.is_empty() || self.rows.iter().any(|(_, p)| p.is_empty() || p.iter().any(|p| p.text.is_empty())) {
            return Err(bad(&self.title, "no rows, or an empty row or piece"));
        }
        if let Some(c) = self.rows.iter().flat_map(|(_, p)| p).find_map(|p| p.colour.filter(|&c| c >= PALETTE.len())) {
            return Err(bad(&self.title, format!("colour {c} is not in the palette of {}", PALETTE.len())));
        }
        let (pad, gap, row_height, top) = (5, 3, 34, 52);
        let label_width = self.rows.iter().map(|(l, _)| 7 * l.chars().count() as i32).max().unwrap_or(0) + 24;
        let row_width =
            |pieces: &[Piece]| pieces.iter().map(|p| Self::text_width(&p.text) + 2 * pad + gap).sum::<i32>();
        let widest = self.rows.iter().map(|(_, p)| row_width(p)).max().unwrap_or(0);
        let width = (label_width + widest + 20).max(7 * self.title.chars().count() as i32 + 40);
        let height = top + row_height * self.rows.len() as i32 + 14;
        render((width as u32, height as u32), &self.title, |root| {
            let e = |e| draw_err(&self.title, e);
            let style = |family: &'static str, size: f64, h: HPos| {
                (family, size).into_font().into_text_style(&root).pos(Pos::new(h, VPos::Center))
            };
            root.draw(&Text::new(self.title.clone(), (width / 2, 22), style("sans-serif", 18.0, HPos::Center)))
                .map_err(e)?;
            for (r, (label, pieces)) in self.rows.iter().enumerate() {
                let y = top + r as i32 * row_height;
                let mid = y + (row_height - 8) / 2;
                root.draw(&Text::new(label.clone(), (label_width - 12, mid), style("sans-serif", 13.0, HPos::Right)))
                    .map_err(e)?;
                let mut x = label_width;
                for piece in pieces {
                    let w = Self::text_width(&piece.text) + 2 * pad;
                    let corners = [(x, y), (x + w, y + row_height - 8)];
                    match piece.colour {
                        Some(c) => {
                            root.draw(&Rectangle::new(corners, PALETTE[c].mix(0.3).filled())).map_err(e)?;
                            root.draw(&Rectangle::new(corners, PALETTE[c].stroke_width(2))).map_err(e)?;
                        }
                        None => root.draw(&Rectangle::new(corners, BLACK.mix(0.25).stroke_width(1))).map_err(e)?,
                    }
                    let ink = if piece.colour.is_some() { BLACK } else { RGBColor(110, 110, 110) };
                    let text = style("monospace", 15.0, HPos::Center).color(&ink);
                    root.draw(&Text::new(piece.text.clone(), (x + w / 2, mid), text)).map_err(e)?;
                    x += w + gap;
                }
            }
            Ok(())
        })
    }

    /// Renders the figure into `path`, creating its folder.
    ///
    /// # Errors
    /// As [`TokenRows::to_svg`], or [`PlotError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_svg(path.as_ref(), &self.to_svg()?)
    }
}

/// One box of an [`ArchitectureDiagram`]: what it is, its shapes, and a note
/// (its parameter count) written beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The name, written in bold.
    pub name: String,
    /// A second line: shapes, sizes.
    pub detail: String,
    /// Written to the right of the box.
    pub note: String,
}

impl Stage {
    /// A stage.
    pub fn new(name: impl Into<String>, detail: impl Into<String>, note: impl Into<String>) -> Self {
        Stage { name: name.into(), detail: detail.into(), note: note.into() }
    }
}

/// Stages `first..=last` of a column, bracketed with a label.
type Bracket = (usize, usize, String);

/// A model drawn as its papers draw it: columns of stages read from the
/// bottom (the input) up, an arrow between consecutive stages, a bracket
/// around the stages a column repeats (`× N`), and arrows from one column's
/// stage into another's (the encoder's output into the decoder's
/// cross-attention).
#[derive(Debug, Clone, PartialEq)]
pub struct ArchitectureDiagram {
    title: String,
    columns: Vec<(String, Vec<Stage>, Option<Bracket>)>,
    links: Vec<((usize, usize), (usize, usize))>,
}

impl ArchitectureDiagram {
    /// An empty diagram.
    pub fn new(title: impl Into<String>) -> Self {
        ArchitectureDiagram { title: title.into(), columns: Vec::new(), links: Vec::new() }
    }

    /// Adds a column (to the right of the last) headed `heading`, its stages
    /// from the bottom up; stages `repeat.0..=repeat.1` are bracketed with
    /// `repeat.2` (such as "× 4 blocks").
    pub fn column(
        mut self,
        heading: impl Into<String>,
        stages: Vec<Stage>,
        repeat: Option<(usize, usize, String)>,
    ) -> Self {
        self.columns.push((heading.into(), stages, repeat));
        self
    }

    /// An arrow from stage `from.1` of column `from.0` into stage `to.1` of
    /// column `to.0`.
    pub fn link(mut self, from: (usize, usize), to: (usize, usize)) -> Self {
        self.links.push((from, to));
        self
    }

    /// Renders the diagram.
    ///
    /// # Errors
    /// [`PlotError::BadData`] without columns, for an empty column, a
    /// bracket or link naming a stage that does not exist.
    pub fn to_svg(&self) -> Result<String> {
        if self.columns.is_empty() || self.columns.iter().any(|c| c.1.is_empty()) {
            return Err(bad(&self.title, "no columns, or an empty column"));
        }
        let exists = |(c, s): (usize, usize)| self.columns.get(c).is_some_and(|col| s < col.1.len());
        for (_, stages, repeat) in &self.columns {
            if let Some((a, b, _)) = repeat
                && !(a <= b && *b < stages.len())
            {
                return Err(bad(&self.title, format!("a bracket over stages {a}..={b} of {}", stages.len())));
            }
        }
        if let Some(link) = self.links.iter().find(|(a, b)| !exists(*a) || !exists(*b)) {
            return Err(bad(&self.title, format!("a link between stages that do not exist: {link:?}")));
        }
        let (box_w, box_h, gap, col_w) = (260, 46, 26, 440);
        let tallest = self.columns.iter().map(|c| c.1.len()).max().unwrap_or(1) as i32;
        // Room on the left for a bracket's label.
        let left = 110;
        let width = left + col_w * self.columns.len() as i32;
        let height = 110 + tallest * (box_h + gap);
        let x_of = |c: usize| left + c as i32 * col_w;
        // Stage s of a column sits s places up from the bottom.
        let y_of = |s: usize| height - 40 - box_h - s as i32 * (box_h + gap);
        render((width as u32, height as u32), &self.title, |root| {
            let e = |e| draw_err(&self.title, e);
            let style = |size: f64, h: HPos| {
                ("sans-serif", size).into_font().into_text_style(&root).pos(Pos::new(h, VPos::Center))
            };
            root.draw(&Text::new(self.title.clone(), (width / 2, 22), style(20.0, HPos::Center))).map_err(e)?;
            for (c, (heading, stages, repeat)) in self.columns.iter().enumerate() {
                let x = x_of(c);
                let top = y_of(stages.len() - 1);
                root.draw(&Text::new(heading.clone(), (x + box_w / 2, top - 28), style(15.0, HPos::Center)))
                    .map_err(e)?;
                if let Some((a, b, text)) = repeat {
                    let (y0, y1) = (y_of(*b) - 8, y_of(*a) + box_h + 8);
                    root.draw(&Rectangle::new(
                        [(x - 12, y0), (x + box_w + 12, y1)],
                        PALETTE[0].mix(0.6).stroke_width(2),
                    ))
                    .map_err(e)?;
                    root.draw(&Text::new(
                        text.clone(),
                        (x - 16, (y0 + y1) / 2),
                        style(14.0, HPos::Right).color(&PALETTE[0]),
                    ))
                    .map_err(e)?;
                }
                for (s, stage) in stages.iter().enumerate() {
                    let y = y_of(s);
                    if s + 1 < stages.len() {
                        let (ax, ay0, ay1) = (x + box_w / 2, y, y_of(s + 1) + box_h);
                        root.draw(&PathElement::new(vec![(ax, ay0), (ax, ay1)], BLACK.mix(0.6).stroke_width(2)))
                            .map_err(e)?;
                        root.draw(&Polygon::new(
                            vec![(ax, ay1), (ax - 5, ay1 + 8), (ax + 5, ay1 + 8)],
                            BLACK.mix(0.6).filled(),
                        ))
                        .map_err(e)?;
                    }
                    root.draw(&Rectangle::new([(x, y), (x + box_w, y + box_h)], WHITE.filled())).map_err(e)?;
                    root.draw(&Rectangle::new([(x, y), (x + box_w, y + box_h)], BLACK.mix(0.7).stroke_width(2)))
                        .map_err(e)?;
                    root.draw(&Text::new(stage.name.clone(), (x + box_w / 2, y + 15), style(14.0, HPos::Center)))
                        .map_err(e)?;
                    root.draw(&Text::new(stage.detail.clone(), (x + box_w / 2, y + 33), style(11.0, HPos::Center)))
                        .map_err(e)?;
                    root.draw(&Text::new(stage.note.clone(), (x + box_w + 18, y + box_h / 2), style(12.0, HPos::Left)))
                        .map_err(e)?;
                }
            }
            for &((c0, s0), (c1, s1)) in &self.links {
                // Out of the top of the stage, along the gap above it (clear
                // of the notes beside the boxes), then into the target's side.
                let (x0, y0) = (x_of(c0) + box_w / 2, y_of(s0));
                let above = y0 - gap / 2;
                let (x1, y1) = (x_of(c1), y_of(s1) + box_h / 2);
                let mid = x1 - 24;
                let path = vec![(x0, y0), (x0, above), (mid, above), (mid, y1), (x1, y1)];
                root.draw(&PathElement::new(path, PALETTE[1].stroke_width(2))).map_err(e)?;
                root.draw(&Polygon::new(vec![(x1, y1), (x1 - 8, y1 - 5), (x1 - 8, y1 + 5)], PALETTE[1].filled()))
                    .map_err(e)?;
            }
            Ok(())
        })
    }

    /// Renders the diagram into `path`, creating its folder.
    ///
    /// # Errors
    /// As [`ArchitectureDiagram::to_svg`], or [`PlotError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_svg(path.as_ref(), &self.to_svg()?)
    }
}

/// A matrix of values as coloured cells, white (low) to dark blue (high).
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    title: String,
    values: Vec<Vec<f64>>,
    row_labels: Vec<String>,
    col_labels: Vec<String>,
    x_label: String,
    y_label: String,
    range: Option<(f64, f64)>,
    annotate: bool,
    diverging: bool,
}

impl Heatmap {
    /// A heatmap of `values[row][col]`.
    pub fn new(title: impl Into<String>, values: Vec<Vec<f64>>) -> Self {
        Heatmap {
            title: title.into(),
            values,
            row_labels: Vec::new(),
            col_labels: Vec::new(),
            x_label: String::new(),
            y_label: String::new(),
            range: None,
            annotate: false,
            diverging: false,
        }
    }

    /// Labels for the rows (top to bottom) and columns (left to right).
    pub fn labels(mut self, rows: Vec<String>, cols: Vec<String>) -> Self {
        self.row_labels = rows;
        self.col_labels = cols;
        self
    }

    /// Axis descriptions.
    pub fn axes(mut self, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        self.x_label = x_label.into();
        self.y_label = y_label.into();
        self
    }

    /// Fixes the colour scale (otherwise the data's minimum and maximum).
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }

    /// Writes each value in its cell (for small matrices).
    pub fn annotate(mut self) -> Self {
        self.annotate = true;
        self
    }

    /// Uses a red-white-blue scale centred on the middle of the range (for
    /// values of both signs).
    pub fn diverging(mut self) -> Self {
        self.diverging = true;
        self
    }

    fn colour(&self, t: f64) -> RGBColor {
        let t = t.clamp(0.0, 1.0);
        let lerp = |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
        if self.diverging {
            let (from, to, t) = if t < 0.5 {
                ((178, 24, 43), (247, 247, 247), t * 2.0)
            } else {
                ((247, 247, 247), (33, 102, 172), t * 2.0 - 1.0)
            };
            RGBColor(lerp(from.0, to.0, t), lerp(from.1, to.1, t), lerp(from.2, to.2, t))
        } else {
            RGBColor(lerp(255, 8, t), lerp(255, 48, t), lerp(255, 107, t))
        }
    }

    /// Renders the heatmap.
    ///
    /// # Errors
    /// [`PlotError::BadData`] if the matrix is empty, ragged or not finite.
    pub fn to_svg(&self) -> Result<String> {
        let rows = self.values.len();
        let cols = self.values.first().map_or(0, Vec::len);
        if rows == 0 || cols == 0 || self.values.iter().any(|r| r.len() != cols) {
            return Err(bad(&self.title, "the matrix is empty or ragged"));
        }
        if self.values.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad(&self.title, "a value is not finite"));
        }
        let (lo, hi) = self.range.unwrap_or_else(|| {
            let lo = self.values.iter().flatten().copied().fold(f64::INFINITY, f64::min);
            let hi = self.values.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        });
        let span = if hi > lo { hi - lo } else { 1.0 };
        // The axes have at least two cells each: plotters maps a one-cell
        // axis onto nothing (a single row would draw an empty figure), so a
        // single row or column is drawn in the first of two, the second left
        // blank.
        let (grid_rows, grid_cols) = (rows.max(2), cols.max(2));
        let cell = (560 / cols.max(rows)).clamp(4, 60) as u32;
        let size = ((cell * cols as u32 + 140).max(640), cell * rows as u32 + 120);
        render(size, &self.title, |root| {
            let e = |e| draw_err(&self.title, e);
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d((0..grid_cols - 1).into_segmented(), (0..grid_rows - 1).into_segmented())
                .map_err(e)?;
            // Labels sit at cell centres; rows are drawn top to bottom.
            let label = |labels: &[String], i: usize| labels.get(i).cloned().unwrap_or_else(|| i.to_string());
            let centre = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) => Some(*i),
                _ => None,
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                // Every cell may carry a label when labels are given (empty
                // ones draw nothing, so a sparse list stays readable);
                // numbered cells at most 40 per axis.
                .x_labels(if self.col_labels.is_empty() { cols.min(40) } else { cols })
                .y_labels(if self.row_labels.is_empty() { rows.min(40) } else { rows })
                .x_label_formatter(&|v| {
                    centre(v).filter(|&c| c < cols).map(|c| label(&self.col_labels, c)).unwrap_or_default()
                })
                .y_label_formatter(&|v| {
                    centre(v)
                        .and_then(|r| (grid_rows - 1).checked_sub(r))
                        .filter(|&r| r < rows)
                        .map(|r| label(&self.row_labels, r))
                        .unwrap_or_default()
                })
                .draw()
                .map_err(e)?;
            let cells = self
                .values
                .iter()
                .enumerate()
                .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, &v)| (r, c, v)));
            chart
                .draw_series(cells.clone().map(|(r, c, v)| {
                    let y = grid_rows - 1 - r;
                    let corners = [
                        (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                    ];
                    Rectangle::new(corners, self.colour((v - lo) / span).filled())
                }))
                .map_err(e)?;
            if self.annotate {
                let centred = Pos::new(HPos::Center, VPos::Center);
                chart
                    .draw_series(cells.map(|(r, c, v)| {
                        let colour = if (v - lo) / span > 0.55 { WHITE } else { BLACK };
                        let style = ("sans-serif", 12).into_font().color(&colour).pos(centred);
                        Text::new(
                            format!("{v:.2}"),
                            (SegmentValue::CenterOf(c), SegmentValue::CenterOf(grid_rows - 1 - r)),
                            style,
                        )
                    }))
                    .map_err(e)?;
            }
            Ok(())
        })
    }

    /// Renders the heatmap into `path`.
    ///
    /// # Errors
    /// As [`Heatmap::to_svg`], or [`PlotError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_svg(path.as_ref(), &self.to_svg()?)
    }
}

/// A classifier's answer over a 2-D slice of its inputs, with points on top.
pub struct RegionMap<'a> {
    title: String,
    x_label: String,
    y_label: String,
    x_range: (f64, f64),
    y_range: (f64, f64),
    classify: Box<dyn Fn(f64, f64) -> usize + 'a>,
    class_names: Vec<String>,
    points: Vec<(f64, f64, usize)>,
    resolution: usize,
}

impl std::fmt::Debug for RegionMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionMap").field("title", &self.title).finish_non_exhaustive()
    }
}

impl<'a> RegionMap<'a> {
    /// A map of `classify(x, y)` (a class index) over the given ranges.
    pub fn new(
        title: impl Into<String>,
        (x_label, x_range): (&str, (f64, f64)),
        (y_label, y_range): (&str, (f64, f64)),
        classify: impl Fn(f64, f64) -> usize + 'a,
    ) -> Self {
        RegionMap {
            title: title.into(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x_range,
            y_range,
            classify: Box::new(classify),
            class_names: Vec::new(),
            points: Vec::new(),
            resolution: 120,
        }
    }

    /// Names of the classes, for the legend.
    pub fn classes(mut self, names: &[&str]) -> Self {
        self.class_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Points `(x, y, class)` drawn over the regions.
    pub fn points(mut self, points: Vec<(f64, f64, usize)>) -> Self {
        self.points = points;
        self
    }

    /// Renders the map.
    ///
    /// # Errors
    /// [`PlotError::BadData`] for an empty range.
    pub fn to_svg(&self) -> Result<String> {
        let ((x0, x1), (y0, y1)) = (self.x_range, self.y_range);
        if !(x1 > x0 && y1 > y0) {
            return Err(bad(&self.title, "empty range"));
        }
        render((640, 520), &self.title, |root| {
            let e = |e| draw_err(&self.title, e);
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(e)?;
            chart.configure_mesh().disable_mesh().x_desc(&self.x_label).y_desc(&self.y_label).draw().map_err(e)?;
            let n = self.resolution;
            let (dx, dy) = ((x1 - x0) / n as f64, (y1 - y0) / n as f64);
            let cells = (0..n).flat_map(|i| (0..n).map(move |j| (i, j)));
            chart
                .draw_series(cells.map(|(i, j)| {
                    let (x, y) = (x0 + i as f64 * dx, y0 + j as f64 * dy);
                    let class = (self.classify)(x + dx / 2.0, y + dy / 2.0);
                    Rectangle::new([(x, y), (x + dx, y + dy)], PALETTE[class % PALETTE.len()].mix(0.18).filled())
                }))
                .map_err(e)?;
            for class in 0..self.class_names.len().max(1) {
                let colour = PALETTE[class % PALETTE.len()];
                let pts: Vec<(f64, f64)> = self
                    .points
                    .iter()
                    .filter(|p| p.2 == class)
                    .map(|p| (p.0.clamp(x0, x1), p.1.clamp(y0, y1)))
                    .collect();
                let name = self.class_names.get(class).cloned().unwrap_or_default();
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                    .map_err(e)?
                    .label(name)
                    .legend(move |(x, y)| Circle::new((x + 6, y), 4, colour.filled()));
            }
            chart
                .configure_series_labels()
                .border_style(BLACK.mix(0.3))
                .background_style(WHITE.mix(0.9))
                .draw()
                .map_err(e)?;
            Ok(())
        })
    }

    /// Renders the map into `path`.
    ///
    /// # Errors
    /// As [`RegionMap::to_svg`], or [`PlotError::Io`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_svg(path.as_ref(), &self.to_svg()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_draws_every_series_and_the_marker() {
        let svg = LineChart::new("curves", "epoch", "loss")
            .series(Series::new("train", vec![(1.0, 1.0), (2.0, 0.5)]))
            .series(Series::new("validation", vec![(1.0, 1.2), (2.0, 0.9)]))
            .marker(2.0, "best")
            .log_x()
            .to_svg()
            .unwrap();
        for text in ["curves", "train", "validation", "best", "epoch"] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(!svg.contains("http://") || svg.contains("http://www.w3.org/2000/svg"));
    }

    #[test]
    fn a_marker_label_stays_inside_the_plot() {
        // A marker near the right edge gets its label on its left, one near
        // the left edge on its right.
        let label = |at: f64| {
            let svg = LineChart::new("c", "x", "y")
                .series(Series::new("s", vec![(0.0, 0.0), (100.0, 1.0)]))
                .marker(at, "a long label for the marker")
                .to_svg()
                .unwrap();
            let lines: Vec<&str> = svg.lines().collect();
            let at = lines.iter().position(|l| l.starts_with("a long label")).expect("the label is drawn");
            let line = lines[at - 1];
            let x: f64 = line.split(" x=\"").nth(1).and_then(|v| v.split('"').next()?.parse().ok()).unwrap();
            let marker = lines[..at]
                .iter()
                .rev()
                .find(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"1\""))
                .and_then(|l| l.split("points=\"").nth(1)?.split(',').next()?.parse::<f64>().ok())
                .expect("the marker's line is drawn");
            (x, marker)
        };
        let (right_x, right_marker) = label(95.0);
        let (left_x, left_marker) = label(5.0);
        // The label is about 160 pixels wide; the plot is 800 wide.
        assert!(right_x < right_marker - 150.0, "right: label at {right_x}, marker at {right_marker}");
        assert!(left_x > left_marker, "left: label at {left_x}, marker at {left_marker}");
    }

    #[test]
    fn a_single_row_or_column_is_drawn() {
        // Every cell is a coloured rectangle of positive size (a one-cell
        // axis used to give them no height or width: an empty figure).
        let drawn = |svg: &str| {
            svg.lines()
                .filter(|l| l.starts_with("<rect") && !l.contains("#FFFFFF"))
                .filter(|l| {
                    let size = |attr: &str| -> f64 {
                        l.split(&format!(" {attr}=\""))
                            .nth(1)
                            .and_then(|v| v.split('"').next()?.parse().ok())
                            .unwrap_or(0.0)
                    };
                    size("width") > 0.0 && size("height") > 0.0
                })
                .count()
        };
        for values in [vec![vec![0.2, 0.5, 0.9]], vec![vec![0.2], vec![0.9]], vec![vec![0.5]], vec![vec![0.3; 3]; 2]] {
            let n = values.len() * values[0].len();
            let svg = Heatmap::new("h", values).range(0.0, 1.0).to_svg().unwrap();
            assert_eq!(drawn(&svg), n, "{svg}");
        }
    }

    #[test]
    fn token_rows_draw_every_piece_in_its_own_box() {
        let svg = TokenRows::new("the cats sat")
            .row("characters", "the".chars().map(|c| Piece::coloured(c.to_string(), 0)).collect())
            .row("BPE", vec![Piece::coloured("the", 1), Piece::plain("␣cats")])
            .to_svg()
            .unwrap();
        for text in ["the cats sat", "characters", "BPE", "␣cats", "t", "h", "e"] {
            assert!(svg.contains(&format!("\n{text}\n</text>")), "missing {text}: {svg}");
        }
        // A filled box and its outline per coloured piece, an outline for the plain one.
        let boxes = svg.lines().filter(|l| l.starts_with("<rect") && !l.contains("#FFFFFF")).count();
        assert_eq!(boxes, 2 * 4 + 1, "{svg}");
        assert!(TokenRows::new("t").to_svg().is_err());
        assert!(TokenRows::new("t").row("r", vec![Piece::coloured("a", PALETTE.len())]).to_svg().is_err());
        assert!(TokenRows::new("t").row("r", vec![Piece::plain("")]).to_svg().is_err());
    }

    #[test]
    fn steps_are_drawn_as_dots() {
        let line = Series::new("s", vec![(0.0, 1.0), (1.0, 0.5), (2.0, 0.2)]);
        let count = |svg: &str| svg.matches("<circle").count();
        let plain = LineChart::new("t", "x", "y").series(line.clone()).to_svg().unwrap();
        let dotted = LineChart::new("t", "x", "y").series(line.with_dots()).to_svg().unwrap();
        assert_eq!(count(&dotted), count(&plain) + 3);
    }

    #[test]
    fn bad_data_is_reported() {
        let err = LineChart::new("t", "x", "y").to_svg().unwrap_err();
        assert_eq!(err.to_string(), "figure t: no points");
        let err = LineChart::new("t", "x", "y").series(Series::new("s", vec![(0.0, f64::NAN)])).to_svg().unwrap_err();
        assert!(err.to_string().contains("cannot be drawn"));
        assert!(Heatmap::new("h", vec![vec![1.0], vec![]]).to_svg().is_err());
    }

    #[test]
    fn bar_chart_names_every_category_and_group() {
        let categories: Vec<String> = ["cat", "dog", "emu"].map(String::from).to_vec();
        let svg = BarChart::new("bars", "token", "probability", categories.clone())
            .group("cold", vec![0.7, 0.2, 0.1])
            .group("hot", vec![0.4, 0.35, 0.25])
            .to_svg()
            .unwrap();
        for text in ["bars", "cat", "dog", "emu", "cold", "hot", "token"] {
            assert!(svg.contains(&format!("\n{text}\n")), "missing {text}");
        }
        // Six bars plus the two legend swatches, over the background.
        assert!(svg.matches("<rect").count() >= 8, "{svg}");
        let short = BarChart::new("b", "x", "y", categories.clone()).group("g", vec![1.0]).to_svg().unwrap_err();
        assert!(short.to_string().contains("1 values for 3 categories"), "{short}");
        assert!(BarChart::new("b", "x", "y", categories).group("g", vec![1.0, f64::NAN, 0.0]).to_svg().is_err());
        assert!(BarChart::new("b", "x", "y", vec![]).to_svg().is_err());
    }

    #[test]
    fn network_diagram_writes_every_neuron_and_weight() {
        let svg = NetworkDiagram::new("net")
            .layer(vec![("a".into(), "1".into()), ("b".into(), "2".into())])
            .layer(vec![("out".into(), "0.5".into())])
            .weights(vec![vec![0.25, -0.125]])
            .to_svg()
            .unwrap();
        for text in ["net", "a", "b", "out", "0.5", "0.25", "-0.125"] {
            assert!(svg.contains(&format!("\n{text}\n")), "missing {text}");
        }
        let wrong =
            NetworkDiagram::new("n").layer(vec![("a".into(), String::new())]).layer(vec![("b".into(), String::new())]);
        assert!(wrong.clone().to_svg().unwrap_err().to_string().contains("0 weight matrices for 2 layers"));
        assert!(wrong.weights(vec![vec![1.0, 2.0]]).to_svg().is_err());
    }

    #[test]
    fn architecture_diagram_writes_every_stage_bracket_and_link() {
        let stages = || vec![Stage::new("embed", "[V, d]", "100"), Stage::new("block", "attention", "2,000")];
        let svg = ArchitectureDiagram::new("model")
            .column("encoder", stages(), Some((1, 1, "× 2".into())))
            .column("decoder", stages(), None)
            .link((0, 1), (1, 1))
            .to_svg()
            .unwrap();
        for text in ["model", "encoder", "decoder", "embed", "[V, d]", "2,000", "× 2"] {
            assert!(svg.contains(&format!("\n{text}\n")), "missing {text}");
        }
        let bracket = ArchitectureDiagram::new("m").column("c", stages(), Some((1, 2, "x".into())));
        assert!(bracket.to_svg().unwrap_err().to_string().contains("a bracket over stages 1..=2 of 2"));
        let link = ArchitectureDiagram::new("m").column("c", stages(), None).link((0, 0), (1, 0));
        assert!(link.to_svg().unwrap_err().to_string().contains("do not exist"));
        assert!(ArchitectureDiagram::new("m").to_svg().is_err());
    }

    #[test]
    fn heatmap_and_region_map_render() {
        let svg = Heatmap::new("weights", vec![vec![0.1, 0.9], vec![0.5, 0.5]])
            .labels(vec!["a".into(), "b".into()], vec!["x".into(), "y".into()])
            .annotate()
            .to_svg()
            .unwrap();
        assert!(svg.contains("0.90") && svg.contains("<rect"));
        let classify = |x: f64, _: f64| usize::from(x > 0.0);
        let svg = RegionMap::new("regions", ("x", (-1.0, 1.0)), ("y", (-1.0, 1.0)), classify)
            .classes(&["left", "right"])
            .points(vec![(-0.5, 0.0, 0), (0.5, 0.0, 1)])
            .to_svg()
            .unwrap();
        assert!(svg.contains("left") && svg.contains("right"));
    }
}

/// A tick label: at most six decimals, without trailing zeros (steps read
/// `500`, not `500.0`).
fn tick(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_string() } else { s.to_string() }
}

#[cfg(test)]
mod tick_tests {
    #[test]
    fn ticks_drop_needless_decimals() {
        assert_eq!(super::tick(500.0), "500");
        assert_eq!(super::tick(0.25), "0.25");
        assert_eq!(super::tick(0.1 + 0.2), "0.3");
        assert_eq!(super::tick(-0.0), "0");
        assert_eq!(super::tick(1e-7), "0");
        assert_eq!(super::tick(-2.5), "-2.5");
    }
}
