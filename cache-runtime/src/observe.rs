//! Metric names, in one place. Every metric goes through the [`metrics`]
//! facade, so any exporter works; per-function counters are also readable
//! without one through [`stats`](crate::stats).
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `cache_hits_total` | counter | `function` |
//! | `cache_misses_total` | counter | `function` |
//! | `cache_loads_total` | counter | `function` |
//! | `cache_stores_refused_total` | counter | `function` |
//! | `cache_errors_total` | counter | `function`, `class` (`timeout`, `connection`, `busy`, `read_only`, `moved`, `out_of_memory`, `wrong_type`, `server`, `breaker_open`, `undecodable`, `encode`) |
//! | `cache_oversized_values_total` | counter | `function` |
//! | `cache_key_collisions_total` | counter | `function` |
//! | `cache_stale_served_total` | counter | `function` |
//! | `cache_background_refreshes_total` | counter | `function` |
//! | `cache_fail_safe_served_total` | counter | `function` |
//! | `cache_puts_total` | counter | `function` |
//! | `cache_early_refreshes_total` | counter | `function` |
//! | `cache_soft_timeouts_total` | counter | `function` |
//! | `cache_hard_timeouts_total` | counter | `function` |
//! | `cache_throttled_loads_total` | counter | `function` |
//! | `cache_load_seconds` | histogram | `function` |
//! | `cache_value_bytes` | histogram | `function` |
//! | `cache_breaker_opened_total` | counter | |
//! | `cache_invalidation_retries_total` | counter | |
//! | `cache_invalidation_failures_total` | counter | |
//! | `cache_invalidations_pending` | gauge | |
//! | `cache_l1_hits_total` | counter | |
//! | `cache_l2_hits_total` | counter | |
//! | `cache_bus_messages_total` | counter | |
//! | `cache_bus_gaps_total` | counter | |
//! | `cache_bus_resyncs_total` | counter | |
//! | `cache_l1_bytes` | gauge (each second) | |
//! | `cache_evictions_total` | counter | |
//! | `cache_memory_bytes` | gauge (at each store) | |
//! | `cache_cluster_reconnects_total` | counter | |
//! | `cache_fenced_reads_total` | counter | |

pub(crate) const HITS: &str = "cache_hits_total";
pub(crate) const MISSES: &str = "cache_misses_total";
pub(crate) const LOADS: &str = "cache_loads_total";
pub(crate) const STORES_REFUSED: &str = "cache_stores_refused_total";
pub(crate) const ERRORS: &str = "cache_errors_total";
pub(crate) const STALE_SERVED: &str = "cache_stale_served_total";
pub(crate) const BACKGROUND_REFRESHES: &str = "cache_background_refreshes_total";
pub(crate) const FAIL_SAFE_SERVED: &str = "cache_fail_safe_served_total";
pub(crate) const PUTS: &str = "cache_puts_total";
pub(crate) const EARLY_REFRESHES: &str = "cache_early_refreshes_total";
pub(crate) const SOFT_TIMEOUTS: &str = "cache_soft_timeouts_total";
pub(crate) const HARD_TIMEOUTS: &str = "cache_hard_timeouts_total";
pub(crate) const THROTTLED_LOADS: &str = "cache_throttled_loads_total";
pub(crate) const KEY_COLLISIONS: &str = "cache_key_collisions_total";
pub(crate) const OVERSIZED_VALUES: &str = "cache_oversized_values_total";
pub(crate) const LOAD_SECONDS: &str = "cache_load_seconds";
pub(crate) const VALUE_BYTES: &str = "cache_value_bytes";
pub(crate) const BREAKER_OPENED: &str = "cache_breaker_opened_total";
pub(crate) const INVALIDATION_RETRIES: &str = "cache_invalidation_retries_total";
pub(crate) const INVALIDATION_FAILURES: &str = "cache_invalidation_failures_total";
pub(crate) const INVALIDATIONS_PENDING: &str = "cache_invalidations_pending";
pub(crate) const L1_HITS: &str = "cache_l1_hits_total";
pub(crate) const L2_HITS: &str = "cache_l2_hits_total";
pub(crate) const BUS_MESSAGES: &str = "cache_bus_messages_total";
pub(crate) const BUS_GAPS: &str = "cache_bus_gaps_total";
pub(crate) const BUS_RESYNCS: &str = "cache_bus_resyncs_total";
pub(crate) const L1_BYTES: &str = "cache_l1_bytes";
pub(crate) const EVICTIONS: &str = "cache_evictions_total";
pub(crate) const MEMORY_BYTES: &str = "cache_memory_bytes";
/// A read answered by the body because an invalidation of this process covering it was pending.
pub(crate) const FENCED_READS: &str = "cache_fenced_reads_total";
/// A Redis Cluster connection that stopped answering was replaced.
pub(crate) const CLUSTER_RECONNECTS: &str = "cache_cluster_reconnects_total";
