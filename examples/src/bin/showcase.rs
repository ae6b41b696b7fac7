//! The showcase: the seed articles' profile endpoint served by several
//! instances of the example API behind a round-robin client, under each
//! caching strategy in turn, measured side by side against the articles'
//! claims. It prints the comparison table and the headline, and writes the
//! latency chart (SVG) and an HTML report.
//!
//! `cargo run --release -p examples --bin showcase -- --help` lists the flags.
//! SQLite and the in-memory cache by default; the Redis strategies run on
//! `REDIS_URL`, or on a `redis-server` started here when one is installed.

use std::process::ExitCode;

use clap::Parser as _;
use examples::showcase::{Settings, run};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::parse();
    match run(settings).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("showcase: {error}");
            ExitCode::from(2)
        }
    }
}
