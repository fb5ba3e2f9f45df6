//! The run's PNG plots: training and validation loss, learning rate and gradient norm per
//! optimizer against steps, and the test set's ROC curves and calibration.

use std::path::Path;

use plotters::prelude::*;

use super::metrics::{self, Bin};

/// One optimizer's series for the plots.
pub struct Series<'a> {
    pub name: &'a str,
    /// (step, value) pairs.
    pub train_loss: Vec<(f64, f64)>,
    pub val_loss: Vec<(f64, f64)>,
    pub lr: Vec<(f64, f64)>,
    pub grad_norm: Vec<(f64, f64)>,
    /// (false-positive rate, true-positive rate); empty where the test metrics are undefined.
    pub roc: Vec<(f64, f64)>,
    /// `None` where the test metrics are undefined (the run diverged).
    pub auc: Option<f64>,
    /// The test set's calibration table ([`metrics::calibration`]); empty: the run is left
    /// out of calibration.png.
    pub calibration: Vec<Bin>,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Makes the plots' font (Ubuntu Light, from egui's default fonts) plotters' sans-serif.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

type PlotResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// One line of a chart: its legend, its points, its color's index and whether it is thin.
type Line<'a> = (String, &'a [(f64, f64)], usize, bool);

/// A line chart of `lines` (label, points, dashed) with these titles, written to `path`.
fn chart(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    lines: &[Line<'_>],
    log_y: bool,
) -> PlotResult {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = lines.iter().flat_map(|(_, p, ..)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points.filter(|(_, y)| y.is_finite() && (!log_y || *y > 0.0)) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Ok(());
    }
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72);
    // The same drawing for a logarithmic and a linear y axis (two chart types).
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .label_style(("sans-serif", 15))
                .draw()?;
            for (label, points, color, dashed) in lines {
                let color = COLORS[*color % COLORS.len()];
                let style = color.stroke_width(if *dashed { 1 } else { 2 });
                let points: Vec<(f64, f64)> = points
                    .iter()
                    .copied()
                    .filter(|(_, y)| y.is_finite() && (!log_y || *y > 0.0))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points, style))?
                    .label(label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 16))
                .draw()?;
        }};
    }
    if log_y {
        draw!(builder.build_cartesian_2d(x0..x1, (y0 * 0.9..y1 * 1.1).log_scale())?);
    } else {
        let pad = 0.05 * (y1 - y0).max(1e-12);
        draw!(builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?);
    }
    root.present()?;
    Ok(())
}

/// The reliability diagram of the runs with a calibration table: each bin's mean predicted
/// probability (x) against its observed default rate (y), one line with points per run, and
/// the diagonal a calibrated model follows. Nothing is written without a table.
///
/// Linear axes, both zoomed to the largest bin value (plus a margin): with a 2-5% default
/// rate every bin sits below a few tenths, and on [0, 1] the table would be a smudge in the
/// corner. Not log axes, though they would spread the low deciles: a low bin with no default
/// observed (about 2 expected among 1000 records at 0.2%) is a real 0, which a log axis
/// cannot show. The same range on both axes keeps the diagonal at 45 degrees, so a point
/// above it reads as risk underestimated at once.
fn reliability(
    path: &Path,
    series: &[Series<'_>],
) -> std::result::Result<bool, Box<dyn std::error::Error>> {
    let runs: Vec<(usize, &Series<'_>)> = series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.calibration.is_empty())
        .collect();
    let top = runs
        .iter()
        .flat_map(|(_, s)| s.calibration.iter())
        .flat_map(|b| [b.predicted, b.observed])
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    if runs.is_empty() {
        return Ok(false);
    }
    let top = if top > 0.0 { (top * 1.1).min(1.0) } else { 1.0 };
    let root = BitMapBackend::new(path, (760, 680)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Calibration, test set (equal-count bins)",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..top, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("mean predicted probability")
        .y_desc("observed default rate")
        .label_style(("sans-serif", 15))
        .draw()?;
    let gray = RGBColor(127, 127, 127);
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (top, top)],
            gray.stroke_width(1),
        ))?
        .label("perfectly calibrated")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], gray.stroke_width(1)));
    for (i, s) in runs {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = s
            .calibration
            .iter()
            .map(|b| (b.predicted, b.observed))
            .collect();
        let ece = metrics::expected_calibration_error(&s.calibration);
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(format!("{} (ECE {ece:.4})", s.name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(true)
}

/// Writes loss.png, lr.png, grad_norm.png, roc.png and, where a run has a calibration table,
/// calibration.png into `dir`; returns the paths written.
pub fn write(
    dir: &Path,
    series: &[Series<'_>],
) -> std::result::Result<Vec<std::path::PathBuf>, Box<dyn std::error::Error>> {
    register_font();
    let mut written = Vec::new();
    let mut losses = Vec::new();
    for (i, s) in series.iter().enumerate() {
        losses.push((
            format!("{} training (batch)", s.name),
            &s.train_loss[..],
            i,
            true,
        ));
        losses.push((format!("{} validation", s.name), &s.val_loss[..], i, false));
    }
    let path = dir.join("loss.png");
    chart(&path, "Focal loss", ("step", "loss"), &losses, true)?;
    written.push(path);
    let lines = |f: for<'s> fn(&'s Series<'_>) -> &'s [(f64, f64)]| {
        series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.to_string(), f(s), i, false))
            .collect::<Vec<_>>()
    };
    let path = dir.join("lr.png");
    chart(
        &path,
        "Learning rate (warm-up, then cosine)",
        ("step", "learning rate"),
        &lines(|s| &s.lr),
        true,
    )?;
    written.push(path);
    let path = dir.join("grad_norm.png");
    chart(
        &path,
        "Global gradient norm (before clipping)",
        ("step", "norm"),
        &lines(|s| &s.grad_norm),
        true,
    )?;
    written.push(path);
    let roc: Vec<Line<'_>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                match s.auc {
                    Some(auc) => format!("{} (AUC {auc:.3})", s.name),
                    None => format!("{} (diverged: no AUC)", s.name),
                },
                &s.roc[..],
                i,
                false,
            )
        })
        .collect();
    let chance = [(0.0, 0.0), (1.0, 1.0)];
    let mut with_chance = roc;
    with_chance.push(("chance".to_string(), &chance[..], 3, true));
    let path = dir.join("roc.png");
    chart(
        &path,
        "ROC curve, test set",
        ("false-positive rate", "true-positive rate"),
        &with_chance,
        false,
    )?;
    written.push(path);
    let path = dir.join("calibration.png");
    if reliability(&path, series)? {
        written.push(path);
    }
    Ok(written)
}
