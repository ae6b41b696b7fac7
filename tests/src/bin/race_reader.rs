//! A reader in its own process, for the cross-process no-stale-set test.
//!
//! `race_reader <redis-url> <user|team>` starts a cached read whose database
//! query blocks: it prints `LOADED` once the query has read (old) data, waits
//! for a line on standard input, then lets the read finish and store, and
//! prints `DONE`.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::Cache;
use cache_tests::scenarios::{Db, Read, read};
use tokio::sync::Notify;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(which)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: race_reader <redis-url> <user|team>");
        std::process::exit(2);
    };
    let which = if which == "team" { Read::Team } else { Read::User };
    let cache = Cache::builder()
        .redis(url)
        .and_then(|builder| builder.prefix("test:app"))
        .map(|builder| builder.timeout(Duration::from_secs(2)).build())
        .unwrap_or_else(|error| {
            eprintln!("{error}");
            std::process::exit(2);
        });
    let gate = Arc::new(Notify::new());
    let db = Arc::new(Db::gated(Arc::clone(&gate)));
    let relay = {
        let db = Arc::clone(&db);
        tokio::spawn(async move {
            db.entered().notified().await;
            println!("LOADED");
            std::io::stdout().flush().ok();
            let _ = tokio::task::spawn_blocking(|| std::io::stdin().lock().lines().next()).await;
            gate.notify_one();
        })
    };
    read(which, &cache, &db).await;
    relay.await.ok();
    println!("DONE");
}
