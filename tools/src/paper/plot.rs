//! PNG plots of the paper benchmark (plotters): time per token and memory against
//! position, log scale. Text needs a TrueType font; DejaVu Sans is read from the
//! system (Debian: fonts-dejavu-core).

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::Figures;

const FONT_PATHS: [&str; 2] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let bytes = FONT_PATHS.iter().find_map(|p| std::fs::read(p).ok()).ok_or_else(|| {
        anyhow!(
            "the plots need DejaVuSans.ttf (Debian/Ubuntu: apt install fonts-dejavu-core); looked in {FONT_PATHS:?}"
        )
    })?;
    ONCE.call_once(|| {
        // The font lives as long as the process: plotters keeps a reference to it.
        let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, leaked);
    });
    Ok(())
}

fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("{}: {e}", path.display())
}

/// A named line and its colour.
type Series = (&'static str, Vec<(f64, f64)>, RGBColor);

/// One log-scale chart against position, with a legend.
fn log_plot(path: &Path, title: &str, y_desc: &str, steps: usize, series: Vec<Series>) -> Result<()> {
    register_font()?;
    let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN_POSITIVE), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..steps as f64, (lo.min(hi) * 0.5..hi * 2.0).log_scale())
        .map_err(err(path))?;
    chart.configure_mesh().x_desc("position").y_desc(y_desc).draw().map_err(err(path))?;
    for (label, points, color) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err(path))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// Milliseconds per token against position: linear (f32, int8), softmax with a
/// cache (every 16th position), softmax recomputing (the measured positions).
pub fn time_per_token(path: &Path, f: &Figures) -> Result<()> {
    let ms = |s: f64| s * 1e3;
    let every = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().filter(|(p, _)| p % 16 == 0).map(|(p, s)| (p as f64, ms(*s))).collect()
    };
    let series = vec![
        ("linear attention, int8", every(&f.linear_int8), RGBColor(0, 114, 178)),
        ("linear attention, f32", every(&f.linear_f32), RGBColor(86, 180, 233)),
        ("softmax + KV cache, f32", every(&f.softmax_cached), RGBColor(230, 159, 0)),
        (
            "softmax, recomputed, f32",
            f.softmax_recompute.iter().map(|(p, s)| (*p as f64, ms(*s))).collect(),
            RGBColor(213, 94, 0),
        ),
    ];
    log_plot(path, &format!("{}: time per token against position", f.name), "ms per token", f.steps, series)
}

/// Bytes of recurrent state (linear) and of keys and values (softmax) against position.
pub fn memory(path: &Path, f: &Figures) -> Result<()> {
    let kb = |b: usize| b as f64 / 1024.0;
    let state = vec![(0.0, kb(f.state_bytes)), (f.steps as f64, kb(f.state_bytes))];
    let cache = f.cache_bytes.iter().map(|(p, b)| (*p as f64, kb(*b))).collect();
    let series = vec![
        ("linear attention: recurrent state", state, RGBColor(0, 114, 178)),
        ("softmax: KV cache", cache, RGBColor(230, 159, 0)),
    ];
    log_plot(path, &format!("{}: memory against position", f.name), "KB", f.steps, series)
}
