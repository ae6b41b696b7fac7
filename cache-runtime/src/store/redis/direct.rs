//! Reads of a cluster sent straight to the master of the key's slot.
//!
//! The cluster client hands every command to one task of its own, which routes
//! it and passes it on: a hop that halved the hit throughput. For a plain
//! `GET` (a hit, a counter) the store keeps its own copy of the slot map
//! (`CLUSTER SLOTS`, learnt through the cluster client) and one connection per
//! master, as the standalone store has for its server. Anything unusual goes
//! back to the cluster client, which knows how to follow it, and the map is
//! learnt again: a redirection (`MOVED`, `ASK`: the slot moved or is moving),
//! a connection error (the node died), or a slot the map does not know. A
//! timeout is not retried: the call's time is spent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisResult, Value};

use super::tls::TlsOptions;

/// Least time between two refreshes of the slot map.
const REFRESH_EVERY: Duration = Duration::from_millis(100);

/// The masters of a cluster by slot, and a connection to each.
struct SlotMap {
    /// Index in `nodes` of each slot's master; `u16::MAX` when none.
    owner: Box<[u16]>,
    nodes: Vec<((String, u16), ConnectionManager)>,
}

pub(crate) struct Direct {
    /// A seed's URL: the scheme, credentials and database of every node's.
    seed_url: String,
    /// The certificates of every node's connection.
    tls: TlsOptions,
    timeout: Duration,
    map: RwLock<Option<SlotMap>>,
    refreshing: AtomicBool,
    epoch: Instant,
    last_refresh_ms: AtomicU64,
}

impl Direct {
    pub(crate) fn new(seed_url: String, tls: TlsOptions, timeout: Duration) -> Self {
        Self {
            seed_url,
            tls,
            timeout,
            map: RwLock::new(None),
            refreshing: AtomicBool::new(false),
            epoch: Instant::now(),
            last_refresh_ms: AtomicU64::new(0),
        }
    }

    /// The connection to the master of `slot`, if the map knows it.
    pub(crate) fn node_for(&self, slot: u16) -> Option<ConnectionManager> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let map = map.as_ref()?;
        let index = *map.owner.get(usize::from(slot))?;
        map.nodes.get(usize::from(index)).map(|(_, connection)| connection.clone())
    }

    /// Learns the slot map again through `cluster`, in the background, at most
    /// once per [`REFRESH_EVERY`]; without a runtime, not at all.
    pub(crate) fn refresh(self: &Arc<Self>, cluster: ClusterConnection) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_refresh_ms.load(Ordering::Relaxed);
        if (last != 0 && now.saturating_sub(last) < duration_ms(REFRESH_EVERY))
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.last_refresh_ms.store(now.max(1), Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let direct = Arc::clone(self);
        runtime.spawn(async move {
            if let Err(error) = direct.learn(cluster).await {
                tracing::debug!(%error, "Redis Cluster slot map not learnt: reads go through the cluster client");
            }
            direct.refreshing.store(false, Ordering::Release);
        });
    }

    async fn learn(&self, mut cluster: ClusterConnection) -> RedisResult<()> {
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        let answer = tokio::time::timeout(
            self.timeout,
            cluster.route_command(slots, RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary)),
        )
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "CLUSTER SLOTS timed out")))??;
        let ranges = parse_slots(&answer);
        let mut known: HashMap<(String, u16), ConnectionManager> = {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            map.as_ref().map(|map| map.nodes.iter().cloned().collect()).unwrap_or_default()
        };
        let mut owner = vec![u16::MAX; 16_384].into_boxed_slice();
        let mut nodes: Vec<((String, u16), ConnectionManager)> = Vec::new();
        for (start, end, address) in ranges {
            let index = match nodes.iter().position(|(known, _)| *known == address) {
                Some(index) => index,
                None => {
                    let connection = match known.remove(&address) {
                        Some(connection) => connection,
                        None => self.connect(&address)?,
                    };
                    nodes.push((address, connection));
                    nodes.len() - 1
                }
            };
            let Ok(index) = u16::try_from(index) else { continue };
            for slot in start..=end.min(16_383) {
                owner[usize::from(slot)] = index;
            }
        }
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = Some(SlotMap { owner, nodes });
        Ok(())
    }

    fn connect(&self, (host, port): &(String, u16)) -> RedisResult<ConnectionManager> {
        let client = self.tls.client(&node_url(&self.seed_url, host, *port))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(0);
        ConnectionManager::new_lazy_with_config(client, config)
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `(first slot, last slot, master address)` of each range of a `CLUSTER SLOTS` answer.
fn parse_slots(answer: &Value) -> Vec<(u16, u16, (String, u16))> {
    let Value::Array(ranges) = answer else { return Vec::new() };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(fields) = range else { return None };
            let number = |value: &Value| match value {
                Value::Int(n) => u16::try_from(*n).ok(),
                _ => None,
            };
            let (start, end) = (number(fields.first()?)?, number(fields.get(1)?)?);
            let Value::Array(master) = fields.get(2)? else { return None };
            let host = match master.first()? {
                Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
                Value::SimpleString(text) => text.clone(),
                _ => return None,
            };
            let port = number(master.get(1)?)?;
            (!host.is_empty() && host != "?").then_some((start, end, (host, port)))
        })
        .collect()
}

/// `seed` with its host and port replaced: the same scheme, credentials, database and options.
fn node_url(seed: &str, host: &str, port: u16) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let credentials = authority.rsplit_once('@').map(|(credentials, _)| credentials);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    match credentials {
        Some(credentials) => format!("{scheme}://{credentials}@{host}:{port}{tail}"),
        None => format!("{scheme}://{host}:{port}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_keep_the_seeds_scheme_credentials_and_database() {
        assert_eq!(node_url("redis://127.0.0.1:7000", "10.0.0.2", 7001), "redis://10.0.0.2:7001");
        assert_eq!(
            node_url("rediss://user:pw@seed.example:7000/0?protocol=3", "10.0.0.2", 7001),
            "rediss://user:pw@10.0.0.2:7001/0?protocol=3"
        );
        assert_eq!(node_url("redis://:p@w@h:1", "::1", 2), "redis://:p@w@[::1]:2");
    }

    #[test]
    fn slot_ranges_are_read() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![Value::BulkString(host.as_bytes().to_vec()), Value::Int(port), Value::Nil])
        };
        let answer = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("127.0.0.1", 7001)]),
            Value::Array(vec![Value::Int(1), Value::Int(2), node("?", 7002)]),
        ]);
        assert_eq!(
            parse_slots(&answer),
            [(0, 5460, ("127.0.0.1".to_owned(), 7000)), (5461, 16383, ("127.0.0.1".to_owned(), 7001))]
        );
    }
}
