//! Support for the integration tests: shared scenarios and a Redis harness.

pub mod bench;
pub mod certs;
pub mod linked;
pub mod redis_server;
pub mod scenarios;
