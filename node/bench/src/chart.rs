//! The chart `--chart` writes: throughput and p99 workflow latency over the run, as SVG.

use serde_json::Value;

/// An SVG chart of a report's timeline: tasks per second (solid) and p99 workflow latency of the
/// workflows completed in each second (dashed, right axis), so a failover shows as a dip and a
/// spike.
pub(crate) fn chart(report: &Value) -> String {
    let points: Vec<(f64, f64, Option<f64>)> = report["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["second"].as_f64().unwrap_or(0.0),
                p["tasksPerSecond"].as_f64().unwrap_or(0.0),
                p["workflowP99Ms"].as_f64(),
            )
        })
        .collect();
    let (w, h, left, right, top, bottom) = (800.0, 360.0, 70.0, 70.0, 40.0, 40.0);
    let max_t = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_rate = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let max_p99 = points.iter().filter_map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let x = |t: f64| left + (w - left - right) * t / max_t;
    let y = |v: f64, max: f64| top + (h - top - bottom) * (1.0 - v / max);
    let rate_line: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1, max_rate))).collect();
    let p99_line: Vec<String> =
        points.iter().filter_map(|p| p.2.map(|v| format!("{:.1},{:.1}", x(p.0), y(v, max_p99)))).collect();
    let title = format!(
        "overture bench: {} workflows ({}), {} node(s)",
        report["workflows"],
        report["shape"].as_str().unwrap_or_default(),
        report["nodes"]
    );
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="24" font-size="14">{title}</text>
<line x1="{left}" y1="{bottom_y}" x2="{right_x}" y2="{bottom_y}" stroke="#444"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom_y}" stroke="#444"/>
<line x1="{right_x}" y1="{top}" x2="{right_x}" y2="{bottom_y}" stroke="#444"/>
<text x="8" y="{top}" fill="#1f5fbf">{max_rate:.0} tasks/s</text>
<text x="{right_label}" y="{top}" fill="#c0392b">{max_p99:.0} ms p99</text>
<text x="{right_x}" y="{time_y}" text-anchor="end">{max_t:.0} s</text>
<text x="{left}" y="{time_y}">0 s</text>
<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{rate}"/>
<polyline fill="none" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,3" points="{p99}"/>
</svg>
"##,
        bottom_y = h - bottom,
        right_x = w - right,
        right_label = w - right + 4.0,
        time_y = h - bottom + 18.0,
        rate = rate_line.join(" "),
        p99 = p99_line.join(" "),
    )
}
