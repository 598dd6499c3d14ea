//! Server-rendered SVG charts: bar charts (grouped or stacked) and line charts over a day axis, readable at
//! a glance and accessible (`role="img"`, `<title>` and `<desc>`; the page also shows the numbers in a
//! table). No script and no inline style: colours come from classes styled in `app.css` (so dark mode
//! works), geometry from presentation attributes, which the CSP allows.

use std::fmt::Write;

/// Drawing area of every chart, in SVG user units (the SVG scales to its container's width).
const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;

/// One series: its legend name, its colour class (`series-1` … `series-3`) and one value per x label
/// (`None`: no value that day, nothing drawn).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub class: &'static str,
    pub values: Vec<Option<f64>>,
}

/// What every chart has: an id (for `aria-labelledby`), a title and a description for screen readers,
/// the x labels (one per day) and the y axis' name.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub desc: String,
    pub x_labels: Vec<String>,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// How the y axis is scaled and labelled.
#[derive(Debug, Clone)]
pub enum YAxis {
    /// 0 up to a round number above the largest value (or above the largest stack).
    Count,
    /// 0–100 %.
    Percent,
    /// Evenly spaced named levels (value = level index), e.g. the latency buckets.
    Levels(Vec<String>),
}

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest "round" number (1, 2, 2.5 or 5 × 10ⁿ) ≥ `v`; 1 for `v` ≤ 0, so an empty chart has an axis.
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        let c = m * base;
        if c >= v * (1.0 - 1e-12) {
            return c;
        }
    }
    10.0 * base
}

/// Label every n-th day so at most `max` labels show (1 for short periods).
pub fn label_every(n: usize, max: usize) -> usize {
    if n <= max || max == 0 {
        1
    } else {
        n.div_ceil(max)
    }
}

/// A count for an axis: 1200 → "1.2k", 3000000 → "3M", 12 → "12".
pub fn short_count(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = format!("{x:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s}{unit}")
}

struct Frame {
    y_max: f64,
    ticks: Vec<(f64, String)>,
}

impl Frame {
    fn y(&self, v: f64) -> f64 {
        TOP + (H - TOP - BOTTOM) * (1.0 - (v / self.y_max).clamp(0.0, 1.0))
    }
}

fn frame(axis: &YAxis, largest: f64) -> Frame {
    match axis {
        YAxis::Count => {
            let y_max = nice_ceiling(largest);
            let ticks = (0..=4)
                .map(|i| {
                    let v = y_max * f64::from(i) / 4.0;
                    (v, short_count(v))
                })
                .collect();
            Frame { y_max, ticks }
        }
        YAxis::Percent => Frame {
            y_max: 100.0,
            ticks: (0..=4)
                .map(|i| (f64::from(i) * 25.0, format!("{}%", i * 25)))
                .collect(),
        },
        YAxis::Levels(names) => Frame {
            y_max: (names.len().max(2) - 1) as f64,
            ticks: names
                .iter()
                .enumerate()
                .map(|(i, n)| (i as f64, n.clone()))
                .collect(),
        },
    }
}

fn open(out: &mut String, c: &Chart) {
    let _ = write!(
        out,
        r#"<svg class="chart" id="{id}" viewBox="0 0 {W} {H}" width="100%" role="img" aria-labelledby="{id}-title {id}-desc" preserveAspectRatio="xMidYMid meet"><title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>"#,
        id = c.id,
        title = escape(&c.title),
        desc = escape(&c.desc),
    );
}

fn axes(out: &mut String, c: &Chart, f: &Frame) {
    let x0 = LEFT;
    let x1 = W - RIGHT;
    for (v, label) in &f.ticks {
        let y = f.y(*v);
        let _ = write!(
            out,
            r#"<line class="chart-grid" x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}"/><text class="chart-tick" x="{tx}" y="{ty:.1}" text-anchor="end">{l}</text>"#,
            tx = x0 - 6.0,
            ty = y + 4.0,
            l = escape(label),
        );
    }
    let n = c.x_labels.len().max(1);
    let step = (x1 - x0) / n as f64;
    let every = label_every(n, 8);
    for (i, label) in c.x_labels.iter().enumerate() {
        // Always label the last day (today); the others every `every` days counting back from it.
        if !(n - 1 - i).is_multiple_of(every) {
            continue;
        }
        let x = x0 + step * (i as f64 + 0.5);
        let _ = write!(
            out,
            r#"<text class="chart-tick" x="{x:.1}" y="{y:.1}" text-anchor="middle">{l}</text>"#,
            y = H - BOTTOM + 16.0,
            l = escape(label),
        );
    }
    let _ = write!(
        out,
        r#"<line class="chart-axis" x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}"/><text class="chart-axis-label" x="{cx:.1}" y="{ly:.1}" text-anchor="middle">Day (UTC)</text><text class="chart-axis-label" x="12" y="{my:.1}" text-anchor="middle" transform="rotate(-90 12 {my:.1})">{yl}</text>"#,
        y = f.y(0.0),
        cx = (x0 + x1) / 2.0,
        ly = H - 6.0,
        my = (TOP + H - BOTTOM) / 2.0,
        yl = escape(&c.y_label),
    );
}

fn legend(out: &mut String, c: &Chart) {
    out.push_str(r#"<ul class="chart-legend">"#);
    for s in &c.series {
        let _ = write!(
            out,
            r#"<li><svg class="chart-swatch" viewBox="0 0 10 10" width="10" height="10" aria-hidden="true"><rect class="{}" width="10" height="10"/></svg>{}</li>"#,
            s.class,
            escape(&s.name)
        );
    }
    out.push_str("</ul>");
}

/// A bar chart: per x label, the series side by side (`stacked` = false) or on top of each other. Each bar
/// carries a `<title>` with its value (a tooltip in browsers). Returns the SVG followed by an HTML legend.
pub fn bars(c: &Chart, axis: &YAxis, stacked: bool) -> String {
    let n = c.x_labels.len().max(1);
    let largest = (0..n)
        .map(|i| {
            let vals = c
                .series
                .iter()
                .filter_map(|s| s.values.get(i).copied().flatten());
            if stacked {
                vals.sum::<f64>()
            } else {
                vals.fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max);
    let f = frame(axis, largest);
    let mut out = String::new();
    open(&mut out, c);
    axes(&mut out, c, &f);
    let step = (W - RIGHT - LEFT) / n as f64;
    let group = step * 0.8;
    let k = c.series.len().max(1) as f64;
    for i in 0..n {
        let x_group = LEFT + step * i as f64 + (step - group) / 2.0;
        let mut base = 0.0;
        for (j, s) in c.series.iter().enumerate() {
            let Some(v) = s.values.get(i).copied().flatten() else {
                continue;
            };
            if v <= 0.0 {
                continue;
            }
            let (x, w, lo, hi) = if stacked {
                (x_group, group, base, base + v)
            } else {
                (x_group + group / k * j as f64, group / k, 0.0, v)
            };
            base = hi;
            let (y_top, y_bottom) = (f.y(hi), f.y(lo));
            let label = c.x_labels.get(i).map(String::as_str).unwrap_or("");
            let value = match axis {
                YAxis::Percent => format!("{v:.0}%"),
                _ => short_count(v),
            };
            let _ = write!(
                out,
                r#"<rect class="{cls}" x="{x:.2}" y="{y_top:.2}" width="{w:.2}" height="{h:.2}"><title>{label}: {name} {value}</title></rect>"#,
                cls = s.class,
                h = (y_bottom - y_top).max(0.5),
                label = escape(label),
                name = escape(&s.name),
            );
        }
    }
    out.push_str("</svg>");
    legend(&mut out, c);
    out
}

/// A line chart: each series a line through its days with values, with a dot per value (a day without a
/// value breaks the line). Returns the SVG followed by an HTML legend.
pub fn lines(c: &Chart, axis: &YAxis) -> String {
    let n = c.x_labels.len().max(1);
    let largest = c
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0, |a: f64, b| a.max(*b));
    let f = frame(axis, largest);
    let mut out = String::new();
    open(&mut out, c);
    axes(&mut out, c, &f);
    let step = (W - RIGHT - LEFT) / n as f64;
    for s in &c.series {
        let point = |i: usize, v: f64| (LEFT + step * (i as f64 + 0.5), f.y(v));
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        for i in 0..n {
            match s.values.get(i).copied().flatten() {
                Some(v) => run.push(point(i, v)),
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        for r in &runs {
            if r.len() > 1 {
                let pts = r
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = write!(
                    out,
                    r#"<polyline class="chart-line {}" fill="none" points="{pts}"/>"#,
                    s.class
                );
            }
        }
        for (i, v) in s.values.iter().enumerate().take(n) {
            let Some(v) = v else { continue };
            let (x, y) = point(i, *v);
            let shown = match axis {
                YAxis::Levels(names) => names
                    .get(v.round().max(0.0) as usize)
                    .cloned()
                    .unwrap_or_default(),
                YAxis::Percent => format!("{v:.0}%"),
                YAxis::Count => short_count(*v),
            };
            let label = c.x_labels.get(i).map(String::as_str).unwrap_or("");
            let _ = write!(
                out,
                r#"<circle class="{cls}" cx="{x:.1}" cy="{y:.1}" r="3"><title>{label}: {name} {shown}</title></circle>"#,
                cls = s.class,
                label = escape(label),
                name = escape(&s.name),
                shown = escape(&shown),
            );
        }
    }
    out.push_str("</svg>");
    legend(&mut out, c);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>, days: usize) -> Chart {
        Chart {
            id: "t",
            title: "Messages <per> day".into(),
            desc: "A & B".into(),
            x_labels: (1..=days).map(|d| format!("{d} Mar")).collect(),
            y_label: "Messages".into(),
            series,
        }
    }

    #[test]
    fn round_axis_maxima() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(21.0), 25.0);
        assert_eq!(nice_ceiling(250.0), 250.0);
        assert_eq!(nice_ceiling(11_112.0), 20_000.0);
        assert_eq!(short_count(1200.0), "1.2k");
        assert_eq!(short_count(3_000_000.0), "3M");
        assert_eq!(short_count(12.0), "12");
        assert_eq!(short_count(2.5), "2.5");
    }

    #[test]
    fn day_labels_thin_out_on_long_periods() {
        assert_eq!(label_every(7, 8), 1);
        assert_eq!(label_every(30, 8), 4);
        assert_eq!(label_every(90, 8), 12);
    }

    #[test]
    fn bar_charts_draw_one_rect_per_positive_value_and_escape_text() {
        let c = chart(
            vec![
                Series {
                    name: "In".into(),
                    class: "series-1",
                    values: vec![Some(3.0), Some(0.0), None],
                },
                Series {
                    name: "Out".into(),
                    class: "series-2",
                    values: vec![Some(2.0), Some(1.0), Some(4.0)],
                },
            ],
            3,
        );
        let svg = bars(&c, &YAxis::Count, false);
        assert!(svg.starts_with("<svg class=\"chart\" id=\"t\""), "{svg}");
        assert!(svg.contains("<title id=\"t-title\">Messages &lt;per&gt; day</title>"));
        assert!(svg.contains("<desc id=\"t-desc\">A &amp; B</desc>"));
        // 3 + 2 + 1 + 4 drawn, the 0 and the missing value not; plus one swatch per series.
        assert_eq!(svg.matches("<rect class=\"series-1\" x=").count(), 1);
        assert_eq!(svg.matches("<rect class=\"series-2\" x=").count(), 3);
        assert_eq!(svg.matches("class=\"chart-swatch\"").count(), 2);
        assert!(svg.contains("<title>3 Mar: Out 4</title>"));
        // Largest value 4 → axis up to 5: the "5" tick exists.
        assert!(svg.contains(">5</text>"));
        assert!(!svg.contains("style="));
    }

    #[test]
    fn stacked_bars_scale_to_the_largest_stack() {
        let c = chart(
            vec![
                Series {
                    name: "A".into(),
                    class: "series-1",
                    values: vec![Some(60.0)],
                },
                Series {
                    name: "B".into(),
                    class: "series-2",
                    values: vec![Some(40.0)],
                },
            ],
            1,
        );
        let svg = bars(&c, &YAxis::Percent, true);
        assert!(svg.contains(">100%</text>"));
        assert!(svg.contains("<title>1 Mar: A 60%</title>"));
        // Drawing area is 184 units high: A spans 60 % of it from the bottom, B sits on top of it.
        assert!(
            svg.contains(r#"y="85.60" width="515.20" height="110.40""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"y="12.00" width="515.20" height="73.60""#),
            "{svg}"
        );
    }

    #[test]
    fn lines_break_on_missing_days_and_use_level_names() {
        let c = chart(
            vec![Series {
                name: "p50".into(),
                class: "series-1",
                values: vec![Some(1.0), Some(3.0), None, Some(2.0)],
            }],
            4,
        );
        let levels = vec![
            "50 ms".into(),
            "100 ms".into(),
            "200 ms".into(),
            "400 ms".into(),
        ];
        let svg = lines(&c, &YAxis::Levels(levels));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("<title>2 Mar: p50 400 ms</title>"));
    }
}
