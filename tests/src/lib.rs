//! Support for the integration tests: shared scenarios and a Redis harness.

pub mod scenarios;
