//! Draws the comparison harness's CSV files (`cargo bench --bench compare -- --out DIR`)
//! as SVG charts:
//!
//! - `throughput.svg`: throughput and client CPU per message at 64 B, 1 KiB and 64 KiB,
//!   each contender as a ratio to raw tokio-tungstenite (`throughput.csv`);
//! - `timeline.svg`: messages the server received per millisecond around one server-side
//!   drop (`timeline.csv`, `timeline_summary.csv`);
//! - `scale.svg`: RSS and keepalive CPU per connection, and the time for all sinks to
//!   come back after a drop of every connection, against the number of sinks
//!   (`scale.csv`).
//!
//! Usage: `charts CSV_DIR SVG_DIR`. A chart whose CSV is missing is skipped with a note.

use std::collections::HashMap;
use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn Error>>;
/// A chart: reads from the CSV directory, writes the SVG file.
type Draw = fn(&Path, &Path) -> Result<()>;
/// Points of one line, (x, y).
type Line = Vec<(f64, f64)>;
/// A panel of the scale chart: title, y unit, labelled lines.
type Panel<'a> = (&'a str, &'a str, Vec<(&'a str, Line)>);

/// A CSV file as rows of named fields (the harness writes no quoted fields).
struct Table {
    rows: Vec<HashMap<String, String>>,
}

impl Table {
    fn read(path: &Path) -> Result<Table> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let rows = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                header
                    .iter()
                    .zip(l.split(','))
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
            .collect();
        Ok(Table { rows })
    }

    fn find<'a>(&'a self, key: &[(&str, &str)]) -> Option<&'a HashMap<String, String>> {
        self.rows.iter().find(|r| {
            key.iter()
                .all(|(k, v)| r.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn num(row: &HashMap<String, String>, field: &str) -> f64 {
    row.get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

const FONT: &str = "sans-serif";

/// Contenders in chart order, with the colour each keeps in every chart.
fn colour(contender: &str) -> RGBColor {
    match contender {
        "raw" => RGBColor(90, 90, 90),
        "stream-reconnect" => RGBColor(230, 159, 0),
        "ws-reconnect" => RGBColor(0, 114, 178),
        "ws-reconnect-acked-64" => RGBColor(204, 121, 167),
        "ws-reconnect-acked-batch" | "ws-reconnect-acked" => RGBColor(0, 158, 115),
        "ws-reconnect-handle" => RGBColor(86, 180, 233),
        _ => RGBColor(0, 0, 0),
    }
}

// ---- (a) throughput and CPU as ratios to raw -----------------------------------------

fn throughput(csv: &Path, out: &Path) -> Result<()> {
    let table = Table::read(&csv.join("throughput.csv"))?;
    let sizes = [("64", "64 B"), ("1024", "1 KiB"), ("65536", "64 KiB")];
    let contenders = [
        ("raw", "raw tokio-tungstenite"),
        ("stream-reconnect", "stream-reconnect"),
        ("ws-reconnect", "ws-reconnect"),
        (
            "ws-reconnect-acked-batch",
            "ws-reconnect, acknowledged (server acks per batch)",
        ),
        ("ws-reconnect-handle", "ws-reconnect through spawn()'s handle"),
    ];
    let root = SVGBackend::new(out, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    for (panel, (field, title, better)) in panels.iter().zip([
        (
            "rate_median",
            "One-way throughput, ratio to raw",
            "higher is better",
        ),
        (
            "cpu_ns_median",
            "Client CPU per message, ratio to raw",
            "lower is better",
        ),
    ]) {
        // ratio[size][contender]
        let ratios: Vec<Vec<f64>> = sizes
            .iter()
            .map(|(size, _)| {
                let raw = table
                    .find(&[("size", size), ("contender", "raw")])
                    .map_or(f64::NAN, |r| num(r, field));
                contenders
                    .iter()
                    .map(|(c, _)| {
                        table
                            .find(&[("size", size), ("contender", c)])
                            .map_or(f64::NAN, |r| num(r, field) / raw)
                    })
                    .collect()
            })
            .collect();
        let top = ratios
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::max)
            * 1.6; // room for the legend above the bars
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{title} ({better})"), (FONT, 16))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..sizes.len() as f64, 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(sizes.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 && i < sizes.len() {
                    sizes[i].1.to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("ratio to raw")
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()?;
        let width = 0.8 / contenders.len() as f64;
        for (c, (key, label)) in contenders.iter().enumerate() {
            let bars: Vec<_> = ratios
                .iter()
                .enumerate()
                .filter(|(_, r)| r[c].is_finite())
                .map(|(s, r)| {
                    let x0 = s as f64 + 0.1 + c as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, r[c])], colour(key).filled())
                })
                .collect();
            let colour = colour(key);
            chart
                .draw_series(bars)?
                .label(*label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        // The parity line.
        chart.draw_series(LineSeries::new(
            [(0.0, 1.0), (sizes.len() as f64, 1.0)],
            BLACK.stroke_width(1),
        ))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 11))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

// ---- (b) the drop timeline ----------------------------------------------------------

fn timeline(csv: &Path, out: &Path) -> Result<()> {
    let table = Table::read(&csv.join("timeline.csv"))?;
    let summary = Table::read(&csv.join("timeline_summary.csv")).ok();
    let contenders = [
        "raw",
        "stream-reconnect",
        "ws-reconnect",
        "ws-reconnect-acked",
    ];
    let series: Vec<Vec<(f64, f64)>> = contenders
        .iter()
        .map(|c| {
            table
                .rows
                .iter()
                .filter(|r| r.get("contender").map(String::as_str) == Some(*c))
                .map(|r| (num(r, "ms"), num(r, "received")))
                .collect()
        })
        .collect();
    let all = series.iter().flatten();
    let (x0, x1) = all.clone().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| {
        (a.min(*x), b.max(*x + 1.0))
    });
    let top = all.map(|(_, y)| *y).fold(1.0f64, f64::max) * 1.15;
    let root = SVGBackend::new(out, (1000, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "One server-side drop (TCP closed, no Close frame) at t = 0: messages the server received per ms, unpaced 64 B",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("ms from the drop")
        .y_desc("messages received per ms")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (c, points) in contenders.iter().zip(&series) {
        let first = summary
            .as_ref()
            .and_then(|s| s.find(&[("contender", c)]))
            .map_or(f64::NAN, |r| num(r, "first_after_ms"));
        let lost = summary
            .as_ref()
            .and_then(|s| s.find(&[("contender", c)]))
            .map_or(f64::NAN, |r| num(r, "lost"));
        let label = if first.is_finite() {
            format!("{c}: back after {first:.1} ms, {lost:.0} lost")
        } else {
            format!("{c}: does not come back")
        };
        let colour = colour(c);
        // A step line: each bucket's count held over its millisecond.
        let steps: Vec<(f64, f64)> = points
            .iter()
            .flat_map(|&(x, y)| [(x, y), (x + 1.0, y)])
            .collect();
        chart
            .draw_series(LineSeries::new(steps, colour.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2)));
    }
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (0.0, top)],
        BLACK.stroke_width(1),
    ))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

// ---- (c) the scale curve ---------------------------------------------------------------

fn scale(csv: &Path, out: &Path) -> Result<()> {
    let table = Table::read(&csv.join("scale.csv"))?;
    let pick = |jitter: &str, field: &str| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = table
            .rows
            .iter()
            .filter(|r| r.get("jitter_ms").map(String::as_str) == Some(jitter))
            .map(|r| (num(r, "connections"), num(r, field)))
            .filter(|(_, y)| y.is_finite())
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let cpu_per_1k: Vec<(f64, f64)> = pick("0", "idle_cpu_ms_per_s")
        .into_iter()
        .map(|(n, cpu)| (n, cpu * 1000.0 / n))
        .collect();
    let panels: [Panel<'_>; 3] = [
        (
            "RSS per idle connection",
            "KiB",
            vec![
                ("after the dials", pick("0", "rss_kib_per_conn")),
                (
                    "after a reconnection of all",
                    pick("0", "rss_after_reconnect_kib_per_conn"),
                ),
            ],
        ),
        (
            "Client CPU while idle, keepalive every 1 s",
            "ms of CPU per s, per 1,000 connections",
            vec![("keepalive 1 s (the default 20 s: /20)", cpu_per_1k)],
        ),
        (
            "All connections dropped at once: back in",
            "ms from the drop",
            vec![
                ("no jitter, median", pick("0", "reconnect_median_ms")),
                ("no jitter, last", pick("0", "reconnect_max_ms")),
                ("1 s jitter, median", pick("1000", "reconnect_median_ms")),
                ("1 s jitter, last", pick("1000", "reconnect_max_ms")),
            ],
        ),
    ];
    let palette = [
        RGBColor(0, 114, 178),
        RGBColor(86, 180, 233),
        RGBColor(213, 94, 0),
        RGBColor(230, 159, 0),
    ];
    let root = SVGBackend::new(out, (1200, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (title, unit, lines)) in root.split_evenly((1, 3)).iter().zip(panels) {
        let points = lines.iter().flat_map(|(_, v)| v.iter());
        let x1 = points.clone().map(|p| p.0).fold(1.0f64, f64::max) * 1.08;
        let top = points.map(|p| p.1).fold(1e-9f64, f64::max) * 1.3;
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 15))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..x1, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("idle sinks in one process")
            .y_desc(unit)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (i, (label, v)) in lines.into_iter().enumerate() {
            let colour = palette[i % palette.len()];
            chart
                .draw_series(LineSeries::new(v.clone(), colour.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2))
                });
            chart.draw_series(v.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 11))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(csv), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: charts CSV_DIR SVG_DIR  (CSV_DIR as written by `cargo bench --bench compare -- --out CSV_DIR`)");
        std::process::exit(2);
    };
    let (csv, out) = (Path::new(csv), Path::new(out));
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("{}: {e}", out.display());
        std::process::exit(1);
    }
    let charts: [(&str, Draw); 3] = [
        ("throughput.svg", throughput),
        ("timeline.svg", timeline),
        ("scale.svg", scale),
    ];
    let mut failed = false;
    for (name, draw) in charts {
        match draw(csv, &out.join(name)) {
            Ok(()) => println!("wrote {}", out.join(name).display()),
            Err(e) => {
                eprintln!("skipped {name}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
