//! A REST API over a real database, cached with `cache-runtime`, and the
//! pieces the showcase shares with it.

pub mod api;
pub mod db;
pub mod observe;
pub mod setup;
pub mod showcase;
