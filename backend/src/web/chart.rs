//! The dashboard's chart of a user's last hour of runs, drawn on the server
//! as an inline `<svg>` (no chart service, no script): stacked bars of runs
//! per minute by status, with a legend, over a panel of each minute's p50
//! and p99 run duration.
//!
//! The page's Content-Security-Policy allows no inline styles, so colours
//! are presentation attributes (`fill`, `stroke`), which a stylesheet can
//! still override through the class names. Only numbers and fixed labels
//! go in, and every text is escaped all the same.

use std::fmt::Write as _;

use crate::http::escape_html as escape;
use crate::run_stats::{HourStats, MINUTES, RunStats, StatusCounts};
use crate::store::RunStatus;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 392.0;
/// Left of the plots: room for the axis labels.
const LEFT: f64 = 60.0;
const PLOT_W: f64 = 648.0;
const SLOT_W: f64 = PLOT_W / MINUTES as f64;
/// Space between two minutes' bars.
const BAR_GAP: f64 = 2.0;
const RUNS_TOP: f64 = 28.0;
const RUNS_H: f64 = 140.0;
const DURATIONS_TOP: f64 = 248.0;
const DURATIONS_H: f64 = 100.0;
const AXIS_COLOR: &str = "#9e9e9e";
const GRID_COLOR: &str = "#e0e0e0";
const TEXT_COLOR: &str = "#424242";
const P50_COLOR: &str = "#1565c0";
const P99_COLOR: &str = "#c62828";

/// The chart of `stats`: an `<svg>` element to put in a page as it is.
pub(crate) fn runs_chart(stats: &HourStats) -> String {
    let summary = summary(stats);
    let mut svg = String::with_capacity(16 * 1024);
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="runs-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" font-family="system-ui, sans-serif" font-size="11" fill="{TEXT_COLOR}">"##,
        label = escape(&summary),
    );
    let _ = write!(
        svg,
        "<title>{}</title><desc>{}</desc>",
        escape(&summary),
        escape(DESCRIPTION)
    );
    runs_panel(&mut svg, stats);
    legend(&mut svg);
    durations_panel(&mut svg, stats);
    if stats.durations_capped {
        let _ = write!(
            svg,
            r#"<text class="chart-note" x="{LEFT}" y="{y}">{}</text>"#,
            escape(&format!(
                "Durations: the {} most recent runs of the hour.",
                thousands(RunStats::MAX_DURATIONS)
            )),
            y = HEIGHT - 4.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

const DESCRIPTION: &str = "Top: runs per minute over the last hour, stacked by status; runs \
     still queued or running count in the minute they were queued. Bottom: each minute's median \
     (p50) and 99th percentile (p99) duration of the runs that ended in it.";

/// What the chart says, in one sentence or two, for screen readers.
pub(crate) fn summary(stats: &HourStats) -> String {
    let totals = &stats.totals;
    if totals.total() == 0 {
        return "No runs in the last hour.".to_string();
    }
    let parts: Vec<String> = StatusCounts::ORDER
        .iter()
        .filter(|s| totals.get(**s) > 0)
        .map(|s| format!("{} {}", totals.get(*s), label(*s)))
        .collect();
    let mut text = format!("Runs in the last hour: {}.", parts.join(", "));
    if let (Some(p50), Some(p99)) = (stats.p50_ms, stats.p99_ms) {
        let _ = write!(
            text,
            " Run duration p50 {}, p99 {}.",
            format_ms(p50),
            format_ms(p99)
        );
    }
    text
}

/// The stacked bars, their axis and grid.
fn runs_panel(svg: &mut String, stats: &HourStats) {
    let most = stats.minutes.iter().map(|m| m.counts.total()).max();
    let top = nice_ceil(most.unwrap_or(0).max(1) as f64);
    heading(svg, RUNS_TOP - 12.0, "Runs per minute");
    let ticks: Vec<(f64, String)> = [0.0, top / 2.0, top]
        .into_iter()
        .filter(|v| v.fract() == 0.0)
        .map(|v| (v / top, format!("{v}")))
        .collect();
    y_axis(svg, RUNS_TOP, RUNS_H, &ticks);
    let base = RUNS_TOP + RUNS_H;
    for (i, minute) in stats.minutes.iter().enumerate().take(MINUTES) {
        if minute.counts.total() == 0 {
            continue;
        }
        let _ = write!(
            svg,
            r#"<g class="chart-minute" data-minute="{i}"><title>{}</title>"#,
            escape(&minute_title(i, &minute.counts))
        );
        let x = LEFT + i as f64 * SLOT_W + BAR_GAP / 2.0;
        let mut stacked = 0.0;
        for status in StatusCounts::ORDER {
            let runs = minute.counts.get(status);
            if runs == 0 {
                continue;
            }
            let h = runs as f64 * RUNS_H / top;
            stacked += h;
            let _ = write!(
                svg,
                r#"<rect class="chart-bar chart-{status}" x="{x:.2}" y="{y:.3}" width="{w:.2}" height="{h:.3}" fill="{fill}"/>"#,
                status = status.as_str(),
                y = base - stacked,
                w = SLOT_W - BAR_GAP,
                fill = color(status),
            );
        }
        svg.push_str("</g>");
    }
    x_axis(svg, base);
}

/// Each status's colour and name, in one row under the bars.
fn legend(svg: &mut String) {
    let y = RUNS_TOP + RUNS_H + 32.0;
    let mut x = LEFT;
    svg.push_str(r#"<g class="chart-legend">"#);
    for status in StatusCounts::ORDER {
        let name = label(status);
        let _ = write!(
            svg,
            r#"<rect class="chart-{status}" x="{x:.1}" y="{top:.1}" width="10" height="10" fill="{fill}"/><text x="{tx:.1}" y="{y:.1}">{name}</text>"#,
            status = status.as_str(),
            top = y - 9.0,
            fill = color(status),
            tx = x + 14.0,
            name = escape(name),
        );
        // About 6.2 units a character at this size, then a gap.
        x += 14.0 + name.len() as f64 * 6.2 + 12.0;
    }
    svg.push_str("</g>");
}

/// The p50 and p99 lines, their axis and grid.
fn durations_panel(svg: &mut String, stats: &HourStats) {
    heading(svg, DURATIONS_TOP - 12.0, "Run duration per minute");
    // The lines' key, beside the heading.
    let key_x = LEFT + 170.0;
    let key_y = DURATIONS_TOP - 16.0;
    let _ = write!(
        svg,
        r#"<g class="chart-legend"><line x1="{key_x}" y1="{key_y}" x2="{x2}" y2="{key_y}" stroke="{P50_COLOR}" stroke-width="2"/><text x="{t1}" y="{ty}">p50</text><line x1="{x3}" y1="{key_y}" x2="{x4}" y2="{key_y}" stroke="{P99_COLOR}" stroke-width="2" stroke-dasharray="4 2"/><text x="{t2}" y="{ty}">p99</text></g>"#,
        x2 = key_x + 16.0,
        t1 = key_x + 20.0,
        ty = key_y + 4.0,
        x3 = key_x + 50.0,
        x4 = key_x + 66.0,
        t2 = key_x + 70.0,
    );
    let base = DURATIONS_TOP + DURATIONS_H;
    let most = stats
        .minutes
        .iter()
        .filter_map(|m| m.p99_ms.max(m.p50_ms))
        .max();
    let Some(most) = most else {
        y_axis(svg, DURATIONS_TOP, DURATIONS_H, &[(0.0, "0".to_string())]);
        let _ = write!(
            svg,
            r#"<text class="chart-empty" x="{x}" y="{y}" text-anchor="middle">No run ended with a duration in the last hour.</text>"#,
            x = LEFT + PLOT_W / 2.0,
            y = DURATIONS_TOP + DURATIONS_H / 2.0,
        );
        x_axis(svg, base);
        return;
    };
    let top = nice_ceil(most.max(1) as f64);
    let ticks: Vec<(f64, String)> = [0.0, top / 2.0, top]
        .into_iter()
        .map(|v| {
            let text = if v == 0.0 {
                "0".into()
            } else {
                format_ms(v as i64)
            };
            (v / top, text)
        })
        .collect();
    y_axis(svg, DURATIONS_TOP, DURATIONS_H, &ticks);
    for (class, color, dashes, p99) in [
        ("chart-p50", P50_COLOR, "", false),
        ("chart-p99", P99_COLOR, r#" stroke-dasharray="4 2""#, true),
    ] {
        let points: Vec<Option<(f64, f64)>> = stats
            .minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let ms = if p99 { m.p99_ms } else { m.p50_ms };
                ms.map(|ms| {
                    let x = LEFT + (i as f64 + 0.5) * SLOT_W;
                    (x, base - ms as f64 * DURATIONS_H / top)
                })
            })
            .collect();
        // A minute without durations breaks the line.
        let mut d = String::new();
        let mut drawing = false;
        for point in &points {
            match point {
                Some((x, y)) => {
                    let _ = write!(d, "{}{x:.2} {y:.3} ", if drawing { "L" } else { "M" });
                    drawing = true;
                }
                None => drawing = false,
            }
        }
        let _ = write!(
            svg,
            r#"<g class="{class}"><path d="{}" fill="none" stroke="{color}" stroke-width="2"{dashes}/>"#,
            d.trim_end()
        );
        // Dots, so that a minute alone between gaps still shows.
        for (x, y) in points.iter().flatten() {
            let _ = write!(
                svg,
                r#"<circle cx="{x:.2}" cy="{y:.3}" r="2" fill="{color}"/>"#
            );
        }
        svg.push_str("</g>");
    }
    x_axis(svg, base);
}

/// A panel's heading.
fn heading(svg: &mut String, y: f64, text: &str) {
    let _ = write!(
        svg,
        r#"<text class="chart-heading" x="{LEFT}" y="{y}" font-weight="600">{}</text>"#,
        escape(text)
    );
}

/// The left axis of a panel from `top`, `height` tall, with gridlines at
/// `ticks` (a fraction of the height from the bottom, and its label).
fn y_axis(svg: &mut String, top: f64, height: f64, ticks: &[(f64, String)]) {
    svg.push_str(r#"<g class="chart-axis">"#);
    for (at, text) in ticks {
        let y = top + height - at * height;
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="{GRID_COLOR}"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{}</text>"#,
            escape(text),
            x2 = LEFT + PLOT_W,
            tx = LEFT - 6.0,
            ty = y + 4.0,
        );
    }
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="{AXIS_COLOR}"/></g>"#,
        bottom = top + height,
    );
}

/// The time axis under a panel whose bottom is at `base`.
fn x_axis(svg: &mut String, base: f64) {
    let _ = write!(
        svg,
        r#"<g class="chart-axis"><line x1="{LEFT}" y1="{base}" x2="{x2}" y2="{base}" stroke="{AXIS_COLOR}"/>"#,
        x2 = LEFT + PLOT_W,
    );
    for (minute, text, anchor) in [
        (0, "60 min ago", "start"),
        (15, "45 min ago", "middle"),
        (30, "30 min ago", "middle"),
        (45, "15 min ago", "middle"),
        (MINUTES, "now", "end"),
    ] {
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{y}" text-anchor="{anchor}">{}</text>"#,
            escape(text),
            x = LEFT + minute as f64 * SLOT_W,
            y = base + 14.0,
        );
    }
    svg.push_str("</g>");
}

/// A minute's tooltip: when, and its runs by status.
fn minute_title(i: usize, counts: &StatusCounts) -> String {
    let ago = MINUTES - 1 - i;
    let when = match ago {
        0 => "This minute".to_string(),
        1 => "1 minute ago".to_string(),
        n => format!("{n} minutes ago"),
    };
    let parts: Vec<String> = StatusCounts::ORDER
        .iter()
        .filter(|s| counts.get(**s) > 0)
        .map(|s| format!("{} {}", counts.get(*s), label(*s)))
        .collect();
    format!("{when}: {}", parts.join(", "))
}

/// A status as the chart names it.
fn label(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::TimedOut => "timed out",
        RunStatus::LimitExceeded => "limit exceeded",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Running => "running",
        RunStatus::Queued => "queued",
    }
}

/// A status's colour: failures warm, unfinished runs blue, told apart by
/// lightness too.
fn color(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "#2e7d32",
        RunStatus::Failed => "#c62828",
        RunStatus::TimedOut => "#ef6c00",
        RunStatus::LimitExceeded => "#8e24aa",
        RunStatus::Cancelled => "#757575",
        RunStatus::Running => "#1565c0",
        RunStatus::Queued => "#90caf9",
    }
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `v` (> 0):
/// an axis top with round ticks.
fn nice_ceil(v: f64) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|top| *top >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// A duration as people read it: ms below a second, then seconds, then
/// minutes.
fn format_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} min", ms as f64 / 60_000.0)
    }
}

/// 50000 as "50,000".
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_stats::MinuteStats;

    /// An hour with runs in minutes 10 (10 succeeded) and 20 (5 succeeded,
    /// 5 failed), durations in minute 10.
    fn hour() -> HourStats {
        let since = 1_700_000_040_000;
        let mut minutes: Vec<MinuteStats> = (0..MINUTES)
            .map(|i| MinuteStats {
                start_ms: since + i as i64 * 60_000,
                ..MinuteStats::default()
            })
            .collect();
        minutes[10].counts.add(RunStatus::Succeeded, 10);
        minutes[20].counts.add(RunStatus::Succeeded, 5);
        minutes[20].counts.add(RunStatus::Failed, 5);
        minutes[10].p50_ms = Some(200);
        minutes[10].p99_ms = Some(1500);
        let mut totals = StatusCounts::default();
        totals.add(RunStatus::Succeeded, 15);
        totals.add(RunStatus::Failed, 5);
        HourStats {
            since_ms: since,
            until_ms: since + 3_600_000,
            minutes,
            totals,
            p50_ms: Some(200),
            p99_ms: Some(1500),
            durations_read: 10,
            durations_capped: false,
        }
    }

    fn number(node: roxmltree::Node<'_, '_>, name: &str) -> f64 {
        node.attribute(name).unwrap().parse().unwrap()
    }

    /// The bars of `minute`: (status class, y, height), bottom first.
    fn bars(doc: &roxmltree::Document<'_>, minute: usize) -> Vec<(String, f64, f64)> {
        let group = doc
            .descendants()
            .find(|n| n.attribute("data-minute") == Some(&minute.to_string()))
            .unwrap_or_else(|| panic!("no bars for minute {minute}"));
        group
            .children()
            .filter(|n| n.has_tag_name("rect"))
            .map(|n| {
                (
                    n.attribute("class").unwrap().to_string(),
                    number(n, "y"),
                    number(n, "height"),
                )
            })
            .collect()
    }

    #[test]
    fn the_chart_is_well_formed_svg_with_a_summary_and_no_inline_style() {
        let svg = runs_chart(&hour());
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert!(root.has_tag_name(("http://www.w3.org/2000/svg", "svg")));
        assert_eq!(root.attribute("role"), Some("img"));
        assert!(root.attribute("viewBox").is_some());
        let summary = "Runs in the last hour: 15 succeeded, 5 failed. \
                       Run duration p50 200 ms, p99 1.5 s.";
        assert_eq!(root.attribute("aria-label"), Some(summary));
        let title = root.first_element_child().unwrap();
        assert!(title.has_tag_name("title"));
        assert_eq!(title.text(), Some(summary));
        for node in doc.descendants().filter(|n| n.is_element()) {
            assert!(node.attribute("style").is_none(), "inline style: {svg}");
            let name = node.tag_name().name();
            assert!(name != "script" && name != "style", "<{name}> in {svg}");
            assert!(
                node.attributes().all(|a| !a.name().starts_with("on")),
                "an event handler in {svg}"
            );
        }
        // Both duration lines, and no empty-panel text.
        for class in ["chart-p50", "chart-p99"] {
            let line = doc
                .descendants()
                .find(|n| n.attribute("class") == Some(class))
                .unwrap();
            assert!(line.descendants().any(|n| n.has_tag_name("path")));
        }
        assert!(!svg.contains("chart-empty") && !svg.contains("chart-note"));
        // The legend names every status.
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        for status in StatusCounts::ORDER {
            assert!(texts.contains(&label(status)), "{} missing", label(status));
        }
    }

    #[test]
    fn bars_are_stacked_and_as_tall_as_their_counts() {
        let svg = runs_chart(&hour());
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let ten = bars(&doc, 10);
        let twenty = bars(&doc, 20);
        assert_eq!(ten.len(), 1);
        assert_eq!(twenty.len(), 2);
        assert!(ten[0].0.contains("chart-succeeded"));
        assert!(twenty[0].0.contains("chart-succeeded") && twenty[1].0.contains("chart-failed"));
        // 10 runs are twice as tall as 5; 5 and 5 are alike.
        let close = |a: f64, b: f64| (a - b).abs() < 0.01;
        assert!(close(ten[0].2, 2.0 * twenty[0].2), "{ten:?} {twenty:?}");
        assert!(close(twenty[0].2, twenty[1].2));
        // Both columns stand on the axis; the failed runs sit on the
        // succeeded ones, and the two columns are equally tall.
        let base = RUNS_TOP + RUNS_H;
        assert!(close(ten[0].1 + ten[0].2, base));
        assert!(close(twenty[0].1 + twenty[0].2, base));
        assert!(close(twenty[1].1 + twenty[1].2, twenty[0].1));
        assert!(close(twenty[1].1, ten[0].1));
        // Minutes without runs have no bars.
        let groups = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("chart-minute"))
            .count();
        assert_eq!(groups, 2);
    }

    #[test]
    fn an_empty_hour_says_so() {
        let mut stats = hour();
        for minute in &mut stats.minutes {
            *minute = MinuteStats {
                start_ms: minute.start_ms,
                ..MinuteStats::default()
            };
        }
        stats.totals = StatusCounts::default();
        stats.p50_ms = None;
        stats.p99_ms = None;
        stats.durations_capped = true;
        let svg = runs_chart(&stats);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert_eq!(
            doc.root_element().attribute("aria-label"),
            Some("No runs in the last hour.")
        );
        assert!(!svg.contains("chart-minute") && svg.contains("chart-empty"));
        assert!(svg.contains("the 50,000 most recent runs"));
    }

    #[test]
    fn helpers() {
        assert_eq!(
            escape(r#"<a & 'b' "c">"#),
            "&lt;a &amp; &#39;b&#39; &quot;c&quot;&gt;"
        );
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(10.0), 10.0);
        assert_eq!(nice_ceil(11.0), 20.0);
        assert_eq!(nice_ceil(1500.0), 2000.0);
        assert_eq!(format_ms(850), "850 ms");
        assert_eq!(format_ms(1500), "1.5 s");
        assert_eq!(format_ms(42_000), "42 s");
        assert_eq!(format_ms(90_000), "1.5 min");
        assert_eq!(thousands(50_000), "50,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(
            minute_title(59, &hour().minutes[10].counts),
            "This minute: 10 succeeded"
        );
        assert_eq!(
            minute_title(20, &hour().minutes[20].counts),
            "39 minutes ago: 5 succeeded, 5 failed"
        );
    }
}
