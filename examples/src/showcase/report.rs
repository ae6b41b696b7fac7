//! The comparison table (measured beside the seed articles' claims), the
//! headline, the latency chart (SVG) and the self-contained HTML report.

use std::fmt::Write as _;
use std::time::Duration;

use super::fleet::Strategy;
use super::{Outcome, Settings};

/// What the seed articles claim for a strategy: hit rate, latency, staleness risk, database load.
struct Claim {
    hit_rate: &'static str,
    latency: &'static str,
    staleness: &'static str,
    db_load: &'static str,
}

fn claim(strategy: Strategy) -> Claim {
    let (hit_rate, latency, staleness, db_load) = match strategy {
        Strategy::NoCache => ("-", "p99 180 ms", "-", "baseline"),
        Strategy::InMemoryTtl | Strategy::InMemoryInvalidation => {
            ("70–85%", "<1 ms", "per-server inconsistency", "−70 %")
        }
        Strategy::RedisTtl => ("80–95%", "1–5 ms", "stale up to TTL", "−70 %+"),
        Strategy::RedisEvents => ("95%+", "1–5 ms", "only if invalidation missed", "−70 %+"),
        Strategy::RedisVersioned => ("90%+", "1–5 ms", "minimal, old versions safe", "−70 %+"),
        Strategy::PageCache
        | Strategy::TwoLevel
        | Strategy::StaleWhileRevalidate
        | Strategy::WriteThrough => ("-", "-", "-", "-"),
    };
    Claim { hit_rate, latency, staleness, db_load }
}

/// Explains the columns.
pub const LEGEND: &str = "hit rate: cache lookups answered from the cache, from empty (cold: the first seconds of load) and in \
steady state (measured, once every instance has read every user); a read makes one lookup. latency: reads, at the client. stale: reads that returned a user \
version older than a write that had completed (on any instance) before the read began; (x across): of those, \
reads on another instance than the write's. DB load: database queries per operation against no cache. \
[seed: ...] is what the seed articles claim.";

fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1e3;
    if ms >= 10.0 { format!("{ms:.0} ms") } else { format!("{ms:.2} ms") }
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_owned(), |share| format!("{:.1} %", share * 100.0))
}

/// A change in percent with a real minus sign.
fn change(ratio: f64) -> String {
    let change = (ratio - 1.0) * 100.0;
    if change <= -99.5 {
        format!("−{:.1} %", -change)
    } else if change < -0.5 {
        format!("−{:.0} %", -change)
    } else {
        format!("+{change:.0} %")
    }
}

/// One row's cells, in column order.
fn cells(outcome: &Outcome, baseline: Option<f64>) -> Vec<String> {
    let (steady, seed) = (&outcome.steady, claim(outcome.strategy));
    let load = match baseline {
        Some(base) if base > 0.0 && outcome.strategy != Strategy::NoCache => {
            change(steady.queries_per_op() / base)
        }
        _ => "-".to_owned(),
    };
    vec![
        outcome.strategy.label().to_owned(),
        percent(outcome.cold.hit_rate()),
        percent(steady.hit_rate()),
        seed.hit_rate.to_owned(),
        millis(steady.percentile(0.50)),
        millis(steady.percentile(0.95)),
        millis(steady.percentile(0.99)),
        seed.latency.to_owned(),
        format!("{} ({} across)", steady.stale, steady.stale_across),
        seed.staleness.to_owned(),
        format!("{:.2}", steady.queries_per_op()),
        load,
        seed.db_load.to_owned(),
    ]
}

const HEADERS: [&str; 13] = [
    "strategy",
    "hit cold",
    "hit steady",
    "[seed]",
    "p50",
    "p95",
    "p99",
    "[seed]",
    "stale reads",
    "[seed] staleness risk",
    "DB q/op",
    "DB load",
    "[seed]",
];

fn baseline(outcomes: &[Outcome]) -> Option<f64> {
    outcomes.iter().find(|o| o.strategy == Strategy::NoCache).map(|o| o.steady.queries_per_op())
}

/// The comparison table, as aligned text.
#[must_use]
pub fn table(outcomes: &[Outcome]) -> String {
    let base = baseline(outcomes);
    let rows: Vec<Vec<String>> = outcomes.iter().map(|o| cells(o, base)).collect();
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([HEADERS[c].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in std::iter::once(HEADERS.map(str::to_owned).to_vec()).chain(rows) {
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 || c == 9 {
                let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{cell}  ", " ".repeat(pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// "p99 X ms → Y ms, database load −Z %": no cache against the strategy with
/// the lowest p99 among those that served no stale read.
#[must_use]
pub fn headline(outcomes: &[Outcome]) -> String {
    let seed = "(seed: p99 180 ms → 8 ms, database load −70 %)";
    let Some(none) = outcomes.iter().find(|o| o.strategy == Strategy::NoCache) else {
        return format!("headline: no baseline measured {seed}");
    };
    let best = outcomes
        .iter()
        .filter(|o| o.strategy != Strategy::NoCache && o.steady.stale == 0 && !o.steady.latencies.is_empty())
        .min_by_key(|o| o.steady.percentile(0.99));
    match best {
        Some(best) => format!(
            "headline: p99 {} → {}, database load {} with {}, no stale read {seed}",
            millis(none.steady.percentile(0.99)),
            millis(best.steady.percentile(0.99)),
            change(best.steady.queries_per_op() / none.steady.queries_per_op().max(f64::MIN_POSITIVE)),
            best.strategy.label(),
        ),
        None => format!("headline: no strategy served reads without a stale one {seed}"),
    }
}

/// The highest share of reads the chart shows (p99.9).
const TAIL_SHARE: f64 = 0.999;

/// Latency distributions as cumulative curves, as SVG: latency on a log
/// scale, and the share of reads on a tail scale, so that p99 and p99.9
/// are as far apart as p0 and p90.
#[must_use]
pub fn chart(outcomes: &[Outcome], settings: &Settings) -> String {
    let (width, height, left, right, top, bottom) = (960.0, 500.0, 70.0, 280.0, 40.0, 60.0);
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let slowest =
        outcomes.iter().filter_map(|o| o.steady.latencies.last()).max().copied().unwrap_or(1).max(10);
    let (lo, hi) = (1.0_f64.log10(), f64::from(slowest).log10().ceil());
    let x = |micros: f64| left + (micros.max(1.0).log10() - lo) / (hi - lo) * plot_w;
    // The tail on a log scale: p0, p90, p99 and p99.9 equally far apart.
    let tail = |share: f64| -(1.0 - share.min(TAIL_SHARE)).log10();
    let y = |share: f64| top + (1.0 - tail(share) / tail(TAIL_SHARE)) * plot_h;
    let (query_min, query_spread) = settings.query_latency();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="latency-chart" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="22" font-size="15">Read latency, cumulative ({} instances, {} clients, {:.1} % writes, {}–{} ms per query)</text>
"#,
        settings.instances,
        settings.clients,
        settings.write_share * 100.0,
        query_min.as_millis(),
        (query_min + query_spread).as_millis(),
    );
    for decade in 0..=(hi as i32) {
        let micros = 10_f64.powi(decade);
        let label =
            if micros >= 1000.0 { format!("{} ms", micros / 1000.0) } else { format!("{micros} µs") };
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{label}</text>"##,
            x(micros),
            top + plot_h,
            top + plot_h + 18.0
        );
    }
    for share in [0.0, 0.5, 0.9, 0.99, TAIL_SHARE] {
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#eee"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">p{4}</text>"##,
            y(share),
            left + plot_w,
            left - 6.0,
            y(share) + 4.0,
            (share * 1000.0).round() / 10.0
        );
    }
    for (index, o) in outcomes.iter().enumerate() {
        let latencies = &o.steady.latencies;
        let n = latencies.len() as f64;
        // 400 points evenly spread over the tail scale, each the latency of its share.
        let points: Vec<String> = (0..=400)
            .filter(|_| !latencies.is_empty())
            .map(|step| {
                let share = 1.0 - 10_f64.powf(-tail(TAIL_SHARE) * f64::from(step) / 400.0);
                let index = ((share * n).ceil() as usize).clamp(1, latencies.len()) - 1;
                format!("{:.1},{:.1}", x(f64::from(latencies[index])), y(share))
            })
            .collect();
        let legend_y = top + 20.0 + 22.0 * index as f64;
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>
<line x1="{lx:.1}" y1="{legend_y:.1}" x2="{lx2:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="3"/><text x="{tx:.1}" y="{ty:.1}">{label}</text>"#,
            color = o.strategy.color(),
            points = points.join(" "),
            lx = left + plot_w + 15.0,
            lx2 = left + plot_w + 40.0,
            tx = left + plot_w + 46.0,
            ty = legend_y + 4.0,
            label = o.strategy.label(),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The report: headline, settings, the table and the chart, in one HTML file
/// with nothing to fetch.
#[must_use]
pub fn html(outcomes: &[Outcome], settings: &Settings, headline: &str) -> String {
    let base = baseline(outcomes);
    let mut rows = String::new();
    for outcome in outcomes {
        rows.push_str("<tr>");
        for (c, cell) in cells(outcome, base).iter().enumerate() {
            let class = if HEADERS[c] == "[seed]" || c == 9 { " class=\"seed\"" } else { "" };
            let _ = write!(rows, "<td{class}>{}</td>", escape(cell));
        }
        rows.push_str("</tr>\n");
    }
    let headers: String = HEADERS.iter().map(|h| format!("<th>{}</th>", escape(h))).collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Caching strategies across instances</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
td.seed {{ color: #777; font-style: italic; }}
.headline {{ font-size: 20px; font-weight: bold; }}
</style>
</head>
<body>
<h1>Caching strategies across {instances} instances</h1>
<p class="headline" id="headline">{headline}</p>
<p>{profile}. {clients} clients offering {rate:.0} operations/s, {writes:.1} % writes, reads Zipf(s = {zipf}) over {keys} users; {warmup} s warm-up, then {duration} s measured per strategy.</p>
<table id="comparison">
<thead><tr>{headers}</tr></thead>
<tbody>
{rows}</tbody>
</table>
<p>{legend}</p>
<figure>
{chart}</figure>
</body>
</html>
"#,
        instances = settings.instances,
        headline = escape(headline),
        profile = escape(&settings.db_profile()),
        clients = settings.clients,
        rate = settings.rate,
        writes = settings.write_share * 100.0,
        zipf = settings.zipf,
        keys = settings.keys,
        warmup = settings.warmup,
        duration = settings.duration,
        legend = escape(LEGEND),
        chart = chart(outcomes, settings),
    )
}
