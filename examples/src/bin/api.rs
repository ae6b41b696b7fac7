//! The REST API server: `cargo run --release -p examples --bin api`.
//!
//! SQLite by default (`DATABASE_URL` for PostgreSQL), the in-memory cache by
//! default (`REDIS_URL` for Redis, and `CACHE_LOCAL_MB` for a two-level cache
//! with that much process memory in front of it), port 3000 (`PORT`).

use std::sync::Arc;

use examples::api::{App, router};
use examples::setup;

#[tokio::main]
async fn main() {
    let db = match setup::database().await {
        Ok(db) => db,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    let cache = match setup::cache() {
        Ok(cache) => cache,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    let port = std::env::var("PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(3000);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on port {port}: {error}");
            std::process::exit(1);
        }
    };
    let backend = match cache.status().layers.first().map(|layer| layer.kind) {
        Some(cache_runtime::LayerKind::Redis) => "Redis",
        _ => "in-memory",
    };
    println!("listening on http://127.0.0.1:{port} ({} database, {backend} cache)", db.kind());
    let app = match router(Arc::new(App { db, cache })) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("server stopped: {error}");
    }
}
