//! The showcase binary, run briefly on the fast database: it prints the
//! comparison table and the headline and writes the chart and the HTML
//! report, which headless Chromium then renders.
//!
//! Chromium (`/usr/bin/chromium`, or `CHROMIUM`) is optional: without it
//! the rendering check says SKIPPED, unless `CACHE_REQUIRE_CHROMIUM=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// This test's own directory (removed at the end).
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("showcase-test-{}", std::process::id()))
}

fn scratch(name: &str) -> PathBuf {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir.join(name)
}

/// Runs the showcase with tiny durations; returns its stdout and the report's path.
fn run_showcase() -> (String, PathBuf, PathBuf) {
    let (chart, report) = (scratch("latency.svg"), scratch("report.html"));
    let output = Command::new(env!("CARGO_BIN_EXE_showcase"))
        .args([
            "--fast-db",
            "--warmup",
            "0.3",
            "--duration",
            "0.6",
            "--rate",
            "200",
            "--clients",
            "8",
            "--keys",
            "100",
        ])
        .arg("--chart")
        .arg(&chart)
        .arg("--report")
        .arg(&report)
        .env("SQLITE_PATH", scratch("db.sqlite3"))
        .output()
        .expect("the showcase runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the showcase failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (stdout, chart, report)
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    path.exists().then_some(path)
}

/// The DOM of `page` after headless Chromium loaded it.
fn dump_dom(chromium: &Path, page: &Path) -> String {
    let profile = scratch("chromium-profile");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium starts");
    // Bounded: a hung browser fails the test instead of hanging it.
    let started = std::time::Instant::now();
    while child.try_wait().expect("chromium's status").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("chromium did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("chromium's output");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn showcase_prints_the_table_and_headline_and_writes_a_report_that_renders() {
    let (stdout, chart, report) = run_showcase();
    for row in ["no cache", "in-memory, TTL only", "in-memory, local invalidation", "in-memory full-page"] {
        assert!(stdout.contains(row), "no {row:?} row in:\n{stdout}");
    }
    for column in ["hit cold", "hit steady", "p50", "p95", "p99", "stale reads", "DB load", "[seed]"] {
        assert!(stdout.contains(column), "no {column:?} column in:\n{stdout}");
    }
    let headline = stdout.lines().find(|l| l.starts_with("headline: p99 ")).unwrap_or_else(|| {
        panic!("no headline in:\n{stdout}");
    });
    assert!(headline.contains(" → ") && headline.contains("database load"), "{headline}");
    assert!(stdout.contains("fast local database"), "the database profile is stated:\n{stdout}");

    let svg = std::fs::read_to_string(&chart).expect("the chart is written");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "a chart with curves");
    let html = std::fs::read_to_string(&report).expect("the report is written");
    assert!(html.contains("<table id=\"comparison\">") && html.contains("<svg"), "table and chart inline");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "self-contained");

    let Some(chromium) = chromium() else {
        if std::env::var("CACHE_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
            panic!("CACHE_REQUIRE_CHROMIUM=1 but no chromium at /usr/bin/chromium (or CHROMIUM)");
        }
        eprintln!(
            "\n*** SKIPPED: rendering the showcase report in headless Chromium: no /usr/bin/chromium \
             (apt-get install chromium, or set CHROMIUM; CACHE_REQUIRE_CHROMIUM=1 makes this fail) ***\n"
        );
        let _ = std::fs::remove_dir_all(scratch_dir());
        return;
    };
    let dom = dump_dom(&chromium, &report);
    // What Chromium parsed, not the file: elements it built.
    assert!(dom.contains("id=\"latency-chart\""), "the SVG chart is in the DOM:\n{dom:.2000}");
    assert!(dom.contains("<polyline"), "the chart's curves are in the DOM");
    assert!(dom.contains("<tbody>") && dom.matches("<tr>").count() >= 5, "the table's rows are in the DOM");
    assert!(dom.contains("id=\"headline\""), "the headline is in the DOM");
    let _ = std::fs::remove_dir_all(scratch_dir());
}
