//! The Redis store's connection: one server, or a Redis Cluster.
//!
//! [`Conn`] is what the store talks through. It behaves as one connection
//! whatever is behind it, so the store has one read path:
//! - on one server, a pipeline is one round trip, its commands run in order;
//! - on a cluster, the client routes each command to the node of its key's
//!   slot and follows topology changes itself (`MOVED`, `ASK`, failovers).
//!   It refuses pipelines over several slots, and an entry's counters live in
//!   slots of their own, so a pipeline is sent as its commands, concurrently
//!   (the client multiplexes them, one round trip per node in parallel), with
//!   two rules that keep what a pipeline promised: a `PUBLISH` leaves only
//!   after every other command answered (a bus message never overtakes the
//!   invalidation it announces), and a script a node lost (`NOSCRIPT`, as
//!   after a failover: scripts are per node) is sent again as `EVAL`, on that
//!   node only.
//!
//! Every exchange on a cluster is bounded by the store's timeout, the client's
//! retries and redirections included.
//!
//! A cluster has a circuit breaker per range of 256 slots rather than one for
//! the store: a master that fails or stalls opens the breakers of its slots
//! only, and calls on the other masters' slots go on as before.
//!
//! The cluster client can wedge: in redis 1.8.1 a slot refresh (after a
//! `MOVED`, during a resharding) may wait forever for a lock that requests it
//! no longer polls hold, and then every request of that connection times out
//! or fails. So a cluster connection that answered nothing for a timeout while
//! calls time out or fail is replaced by a new one (at most once per timeout); the old
//! one ends with its last request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Notify;

use super::breaker::{Breaker, BreakerState};
use super::direct::Direct;
use super::tls::TlsOptions;
use super::{RedisSettings, Urgency, scripts};

/// Slots per circuit breaker of a cluster.
const SLOTS_PER_BREAKER: usize = 256;
/// What a call refused by its slots' open breaker answers.
pub(crate) const SLOTS_BREAKER_OPEN: &str = "circuit breaker open for these slots";

/// Longest timeout handed to the cluster client: larger ones wait as long.
const MAX_CLIENT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Where the store connects, as the builder was told.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// One server's URL.
    Single(String),
    /// The seed URLs of a Redis Cluster.
    Cluster(Vec<String>),
}

/// What the store connects to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One server (or a proxy in front of several).
    Single(redis::Client),
    /// A Redis Cluster, reached through its seed nodes.
    Cluster(ClusterTarget),
}

/// The seed nodes of a Redis Cluster and how to read from it.
#[derive(Debug, Clone)]
pub(crate) struct ClusterTarget {
    urls: Vec<String>,
    /// One client per seed, for connections of their own (the bus's subscriber).
    seeds: Vec<redis::Client>,
    read_from_replicas: bool,
    /// The certificates of every connection to a node.
    tls: TlsOptions,
}

impl ClusterTarget {
    /// Checks the seed URLs: each a Redis URL, all with the same credentials.
    fn new(urls: Vec<String>, tls: TlsOptions) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("a Redis Cluster needs at least one seed node URL".to_owned());
        }
        let seeds = urls
            .iter()
            .map(|url| tls.client(url).map_err(|error| format!("invalid Redis URL {url:?}: {error}")))
            .collect::<Result<Vec<_>, _>>()?;
        let target = Self { urls, seeds, read_from_replicas: false, tls };
        target
            .client_builder()
            .build()
            .map_err(|error| format!("invalid Redis Cluster seed nodes {:?}: {error}", target.urls))?;
        Ok(target)
    }

    /// A builder of cluster clients for the seeds, with the certificates given.
    fn client_builder(&self) -> ClusterClientBuilder {
        let builder = ClusterClientBuilder::new(self.urls.clone());
        match self.tls.certificates() {
            #[cfg(feature = "tls")]
            Some(certificates) => builder.certs(certificates),
            _ => builder,
        }
    }

    pub(crate) fn set_read_from_replicas(&mut self, enabled: bool) {
        self.read_from_replicas = enabled;
    }

    /// A lazy connection: nodes are connected on first use, and again after failures.
    fn connect(&self, timeout: Duration) -> RedisResult<ClusterConnection> {
        let timeout = timeout.clamp(Duration::from_millis(1), MAX_CLIENT_TIMEOUT);
        let retry_wait_ms = u64::try_from(timeout.as_millis() / 8).unwrap_or(u64::MAX).max(2);
        let mut builder = self
            .client_builder()
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // Retries, reconnections and redirections all within one `timeout`:
            // what is not done by then is a timeout for the store.
            .overall_response_timeout(Some(timeout))
            .retries(3)
            .min_retry_wait(1)
            .max_retry_wait(retry_wait_ms)
            .retry_wait_formula(2, 2);
        if self.read_from_replicas {
            builder = builder.read_routing_strategy(redis::cluster_read_routing::RandomReplicaStrategy);
        }
        let config = redis::cluster::ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Ok(builder.build()?.get_pending_async_connection_with_config(config))
    }
}

impl Target {
    /// The target of `endpoint`, its clients made with the certificates of
    /// `tls`; with TLS, rustls's crypto provider is installed first.
    pub(crate) fn open(endpoint: &Endpoint, tls: &TlsOptions) -> Result<Self, String> {
        match endpoint {
            Endpoint::Single(url) => {
                tls.check_urls(std::slice::from_ref(url))?;
                let client =
                    tls.client(url).map_err(|error| format!("invalid Redis URL {url:?}: {error}"))?;
                Ok(Self::Single(client))
            }
            Endpoint::Cluster(urls) => {
                tls.check_urls(urls)?;
                Ok(Self::Cluster(ClusterTarget::new(urls.clone(), tls.clone())?))
            }
        }
    }

    /// A client for a connection of its own to one node: for a cluster, the
    /// seeds in turn (`attempt` picks which), since any node relays `PUBLISH`.
    pub(crate) fn node_client(&self, attempt: usize) -> &redis::Client {
        match self {
            Self::Single(client) => client,
            Self::Cluster(cluster) => &cluster.seeds[attempt % cluster.seeds.len()],
        }
    }

    /// A lazy connection, bounded by the timeout (one attempt: the breaker and
    /// the next call decide what happens after a failure).
    pub(crate) fn connect(&self, settings: &RedisSettings, recovered: &Arc<Notify>) -> RedisResult<Conn> {
        let timeout = settings.timeout;
        match self {
            Self::Single(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(0);
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(client.clone(), config)?))
            }
            Self::Cluster(cluster) => {
                let connection = cluster.connect(timeout)?;
                let breakers = (0..16_384 / SLOTS_PER_BREAKER)
                    .map(|_| {
                        Breaker::new(
                            settings.breaker_threshold,
                            settings.breaker_cooldown,
                            Arc::clone(recovered),
                        )
                    })
                    .collect();
                // Reads from replicas go through the client, which routes them there.
                let direct = (!cluster.read_from_replicas).then(|| {
                    Arc::new(Direct::new(
                        cluster.urls[0].clone(),
                        cluster.tls.clone(),
                        timeout.min(MAX_CLIENT_TIMEOUT),
                    ))
                });
                Ok(Conn::Cluster(
                    Arc::new(ClusterHandle {
                        direct,
                        target: cluster.clone(),
                        breakers,
                        timeout: timeout.min(MAX_CLIENT_TIMEOUT),
                        connection: Mutex::new(connection),
                        epoch: Instant::now(),
                        last_answer_ms: AtomicU64::new(0),
                        last_replaced_ms: AtomicU64::new(0),
                    }),
                    Urgency::Normal,
                ))
            }
        }
    }
}

/// A connection of the store; clones share it.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    /// With the urgency of the call it serves (a forced call ignores the slots' breakers).
    Cluster(Arc<ClusterHandle>, Urgency),
}

/// The cluster connection, replaced when it wedges (see the module).
pub(crate) struct ClusterHandle {
    /// Plain reads straight to the slot's master (see [`super::direct`]).
    direct: Option<Arc<Direct>>,
    target: ClusterTarget,
    /// One per [`SLOTS_PER_BREAKER`] slots.
    breakers: Box<[Breaker]>,
    timeout: Duration,
    connection: Mutex<ClusterConnection>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last answer (an error reply counts).
    last_answer_ms: AtomicU64,
    last_replaced_ms: AtomicU64,
}

impl ClusterHandle {
    fn current(&self) -> ClusterConnection {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn answered(&self, now: u64) {
        if self.last_answer_ms.load(Ordering::Relaxed) != now {
            self.last_answer_ms.store(now, Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes how an exchange ended; replaces a connection that stopped answering.
    fn observe<T>(&self, outcome: &RedisResult<T>) {
        let now = self.now_ms();
        match outcome {
            // A reply, or an error reply of a node: the connection answers.
            Ok(_) => return self.answered(now),
            Err(error) if error.code().is_some() => return self.answered(now),
            // Refused by a breaker: says nothing.
            Err(error) if error.to_string().contains(SLOTS_BREAKER_OPEN) => return,
            // A timeout or a connection error: silence.
            Err(_) => {}
        }
        let patience = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        let silent = now.saturating_sub(self.last_answer_ms.load(Ordering::Relaxed)) > patience;
        let last_replaced = self.last_replaced_ms.load(Ordering::Relaxed);
        let due = last_replaced == 0 || now.saturating_sub(last_replaced) > patience;
        if !(silent && due)
            || self
                .last_replaced_ms
                .compare_exchange(last_replaced, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match self.target.connect(self.timeout) {
            Ok(fresh) => {
                *self.connection.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
                tracing::warn!("the Redis Cluster connection stopped answering: replaced");
                metrics::counter!(crate::observe::CLUSTER_RECONNECTS).increment(1);
            }
            Err(error) => tracing::warn!(%error, "the Redis Cluster connection could not be replaced"),
        }
    }
}

/// A node of a cluster, to send a command to it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    host: String,
    port: u16,
}

impl Conn {
    /// This connection for a call of `urgency`.
    pub(crate) fn for_call(self, urgency: Urgency) -> Self {
        match self {
            Self::Cluster(handle, _) => Self::Cluster(handle, urgency),
            single @ Self::Single(_) => single,
        }
    }

    /// Whether the store's own breaker judges this connection's failures: not
    /// on a cluster, whose breakers are per slot.
    pub(crate) fn uses_store_breaker(&self) -> bool {
        matches!(self, Self::Single(_))
    }

    /// On a cluster, the state of its least healthy slot breaker.
    pub(crate) fn breaker_state(&self) -> Option<BreakerState> {
        let Self::Cluster(handle, _) = self else { return None };
        let states = handle.breakers.iter().map(Breaker::state);
        Some(states.fold(BreakerState::Closed, |worst, state| match (worst, state) {
            (BreakerState::Open, _) | (_, BreakerState::Open) => BreakerState::Open,
            (BreakerState::HalfOpen, _) | (_, BreakerState::HalfOpen) => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }))
    }

    /// The nodes that hold keys: every master of a cluster; `[None]` for one server.
    pub(crate) async fn masters(&mut self) -> RedisResult<Vec<Option<Node>>> {
        match self {
            Self::Single(_) => Ok(vec![None]),
            Self::Cluster(handle, _) => {
                let mut connection = handle.current();
                let mut nodes = redis::cmd("CLUSTER");
                nodes.arg("NODES");
                let text: String = redis::from_redis_value(
                    connection
                        .route_command(nodes, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                        .await?,
                )?;
                Ok(serving_masters(&text).into_iter().map(Some).collect())
            }
        }
    }

    /// Sends `command` to `node` (or where it routes, without one).
    pub(crate) async fn on_node<T: redis::FromRedisValue>(
        &mut self,
        node: Option<&Node>,
        command: Cmd,
    ) -> RedisResult<T> {
        match (self, node) {
            (Self::Cluster(handle, _), Some(node)) => {
                let mut connection = handle.current();
                let route = SingleNodeRoutingInfo::ByAddress { host: node.host.clone(), port: node.port };
                Ok(redis::from_redis_value(
                    connection.route_command(command, RoutingInfo::SingleNode(route)).await?,
                )?)
            }
            (connection, _) => command.query_async(connection).await,
        }
    }
}

/// The masters of `CLUSTER NODES` output that serve slots and are not failing.
fn serving_masters(cluster_nodes: &str) -> Vec<Node> {
    cluster_nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serving = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "noaddr" || f == "handshake")
                && fields.len() > 8;
            if !serving {
                return None;
            }
            let address = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some(Node { host: host.to_owned(), port: port.parse().ok()? })
        })
        .collect()
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis Cluster did not answer in time",
    ))
}

/// Whether `outcome` is a node's answer that it does not have a script.
fn is_noscript(outcome: &RedisResult<Value>) -> bool {
    match outcome {
        Err(error) => error.code() == Some("NOSCRIPT"),
        Ok(Value::ServerError(error)) => error.code() == "NOSCRIPT",
        Ok(_) => false,
    }
}

/// `EVALSHA <sha> ...` as `EVAL <script> ...`, when `command` calls one of the store's scripts.
fn as_eval(command: &Cmd) -> Option<Cmd> {
    let mut args = command.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => bytes,
        _ => b"0".as_slice(),
    });
    if !args.next()?.eq_ignore_ascii_case(b"EVALSHA") {
        return None;
    }
    let body = scripts::body_of(args.next()?)?;
    let mut eval = redis::cmd("EVAL");
    eval.arg(body);
    for arg in args {
        eval.arg(arg);
    }
    Some(eval)
}

/// The hash slot of `key` (CRC16/XMODEM of its hash tag, or of the whole key).
fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(key) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 { crc << 1 } else { (crc << 1) ^ 0x1021 };
        }
    }
    crc % 16_384
}

/// The key `command` is routed by: its first key (after `EVALSHA <sha> <count>`).
fn routing_key(command: &Cmd) -> Option<&[u8]> {
    let mut args = command.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => bytes,
        _ => b"".as_slice(),
    });
    let name = args.next()?;
    if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL") {
        args.nth(2)
    } else {
        args.next()
    }
}

/// One command on a cluster, under the breaker of its slots; a script the
/// node lost is sent again in full.
async fn cluster_command(handle: &ClusterHandle, urgency: Urgency, command: &Cmd) -> RedisResult<Value> {
    let slot = routing_key(command).map_or(0, slot_of);
    let breaker = &handle.breakers[usize::from(slot) / SLOTS_PER_BREAKER];
    let permit = match urgency {
        Urgency::Normal => {
            breaker.permit().ok_or_else(|| RedisError::from((redis::ErrorKind::Io, SLOTS_BREAKER_OPEN)))?
        }
        Urgency::Forced => breaker.force_permit(),
    };
    if let Some(outcome) = direct_read(handle, slot, command).await {
        // Only an answer or a timeout comes back from the direct path.
        match &outcome {
            Err(error) if error.is_timeout() => permit.failed(error),
            _ => permit.succeeded(),
        }
        return outcome;
    }
    let mut connection = handle.current();
    let mut outcome = connection.req_packed_command(command).await;
    if is_noscript(&outcome)
        && let Some(eval) = as_eval(command)
    {
        outcome = connection.req_packed_command(&eval).await;
    }
    // Only the client's own answers tell whether it wedged: the direct path
    // answering hits says nothing about it.
    handle.observe(&outcome);
    match &outcome {
        Err(error) if super::CacheError::classify(error.clone()).is_outage() => permit.failed(error),
        _ => permit.succeeded(),
    }
    outcome
}

/// A `GET` sent straight to the master of `slot`; `None` when it is for the
/// cluster client (not a `GET`, an unknown slot, a redirection or a dead
/// connection, after which the slot map is learnt again).
async fn direct_read(handle: &ClusterHandle, slot: u16, command: &Cmd) -> Option<RedisResult<Value>> {
    let direct = handle.direct.as_ref()?;
    let is_get = command.args_iter().len() == 2
        && command
            .args_iter()
            .next()
            .is_some_and(|arg| matches!(arg, redis::Arg::Simple(name) if name.eq_ignore_ascii_case(b"GET")));
    if !is_get {
        return None;
    }
    let Some(mut node) = direct.node_for(slot) else {
        direct.refresh(handle.current());
        return None;
    };
    let outcome = node.req_packed_command(command).await;
    let elsewhere = match &outcome {
        Ok(Value::ServerError(_)) => true,
        Err(error) if error.is_timeout() => false,
        Err(error) => {
            matches!(error.code(), Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
                || error.code().is_none()
        }
        Ok(_) => false,
    };
    if elsewhere {
        direct.refresh(handle.current());
        return None;
    }
    Some(outcome)
}

/// A pipeline's commands on a cluster, as the module says.
async fn cluster_pipeline(
    handle: &ClusterHandle,
    urgency: Urgency,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let commands: Vec<&Cmd> = pipeline.cmd_iter().skip(offset).take(count).collect();
    let is_publish = |command: &&Cmd| {
        command.args_iter().next().is_some_and(
            |arg| matches!(arg, redis::Arg::Simple(name) if name.eq_ignore_ascii_case(b"PUBLISH")),
        )
    };
    let mut values: Vec<Option<Value>> = vec![None; commands.len()];
    for publishes in [false, true] {
        let batch: Vec<(usize, &Cmd)> = commands
            .iter()
            .enumerate()
            .filter(|(_, command)| is_publish(command) == publishes)
            .map(|(i, c)| (i, *c))
            .collect();
        let answers =
            join_all(batch.iter().map(|(_, command)| cluster_command(handle, urgency, command))).await;
        for ((index, _), answer) in batch.iter().zip(answers) {
            values[*index] = Some(answer?);
        }
    }
    Ok(values.into_iter().map(|value| value.unwrap_or(Value::Nil)).collect())
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(handle, urgency) => {
                let (handle, urgency) = (Arc::clone(handle), *urgency);
                async move {
                    // Bounded by the client's overall response timeout (no timer of our own:
                    // one per call costs a tenth of the hit throughput).
                    cluster_command(&handle, urgency, cmd).await
                }
                .boxed()
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(handle, urgency) => {
                let (handle, urgency) = (Arc::clone(handle), *urgency);
                let exchange: BoxFuture<'a, RedisResult<Vec<Value>>> = async move {
                    tokio::time::timeout(
                        handle.timeout,
                        cluster_pipeline(&handle, urgency, pipeline, offset, count),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        // Its commands were cut off before they could be observed.
                        let outcome = Err(timed_out());
                        handle.observe(&outcome);
                        outcome
                    })
                }
                .boxed();
                exchange
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(..) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_that_serve_slots_are_found() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,host.example master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7004@17004 slave b2 0 0 2 connected
e5 127.0.0.1:7005@17005 master - 0 0 4 connected 10923-16383
f6 127.0.0.1:7006@17006 master - 0 0 5 connected
";
        let ports: Vec<u16> = serving_masters(nodes).iter().map(|node| node.port).collect();
        assert_eq!(ports, [7001, 7002, 7005]);
    }

    #[test]
    fn slots_are_those_of_redis() {
        // Values of `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"a"), 15_495);
        assert_eq!(slot_of(b"user:1000"), 1_649);
        assert_eq!(slot_of(b"app:{user:42}:lease"), slot_of(b"user:42"));
        assert_eq!(slot_of(b"{}x"), slot_of(b"{}x"));
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg("sha").arg(2).arg("app:{k}").arg("app:{k}:lease");
        assert_eq!(routing_key(&evalsha), Some(b"app:{k}".as_slice()));
        assert_eq!(routing_key(redis::cmd("GET").arg("x")), Some(b"x".as_slice()));
    }

    #[test]
    fn a_lost_script_is_sent_in_full() {
        let scripts = super::super::scripts::Scripts::new();
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(scripts.bump.get_hash()).arg(1).arg("k");
        let eval = as_eval(&evalsha).expect("one of the store's scripts");
        let args: Vec<Vec<u8>> = eval
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(args[0], b"EVAL");
        assert!(args[1].starts_with(b"\nif redis.call('EXISTS'"));
        assert_eq!(&args[2..], [b"1".to_vec(), b"k".to_vec()]);
        assert!(as_eval(redis::cmd("GET").arg("k")).is_none());
    }
}
