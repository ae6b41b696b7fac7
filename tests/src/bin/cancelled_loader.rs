//! A loader in its own process whose load is cancelled, for the lease tests.
//!
//! `cancelled_loader <redis-url>` starts the cached read `get_user(1, 7)` whose
//! database query blocks: it prints `LOADED` once the query has started (the
//! load then holds the entry's Redis lease), cancels the call at the first line
//! on standard input and prints `CANCELLED`, then keeps running (so work the
//! cache left to its runtime can finish) until standard input closes.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::Cache;
use cache_tests::scenarios::{Db, Read, read};
use tokio::sync::Notify;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: cancelled_loader <redis-url>");
        std::process::exit(2);
    };
    let cache = Cache::builder()
        .redis(&url)
        .and_then(|builder| builder.prefix("test:app"))
        .map(|builder| builder.timeout(Duration::from_secs(2)).build())
        .unwrap_or_else(|error| {
            eprintln!("{error}");
            std::process::exit(2);
        });
    // Never opened: the query blocks until the call is cancelled.
    let db = Arc::new(Db::gated(Arc::new(Notify::new())));
    let load = {
        let (cache, db) = (cache.clone(), Arc::clone(&db));
        tokio::spawn(async move { read(Read::User, &cache, &db).await })
    };
    db.entered().notified().await;
    say("LOADED");
    next_line().await;
    load.abort();
    let _ = load.await;
    say("CANCELLED");
    next_line().await;
}

fn say(line: &str) {
    println!("{line}");
    std::io::stdout().flush().ok();
}

/// Waits for a line on standard input, or for it to close.
async fn next_line() {
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().lock().lines().next()).await;
}
