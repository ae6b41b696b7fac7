//! Real `redis-server` processes for tests: each on a free loopback port, in a
//! temporary directory of its own, killed and cleaned up on drop. Tests can
//! kill, pause (SIGSTOP), resume and restart them. A server may speak TLS
//! only ([`RedisServer::start_tls`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether `redis-server` is on `PATH`.
#[must_use]
pub fn redis_server_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether Redis tests may run. Without `redis-server` they are skipped with a
/// message, unless `CACHE_REQUIRE_REDIS=1`, when this panics instead.
///
/// # Panics
/// When `redis-server` is missing and `CACHE_REQUIRE_REDIS=1`.
#[must_use]
pub fn require_redis() -> bool {
    if redis_server_available() {
        return true;
    }
    assert!(
        std::env::var("CACHE_REQUIRE_REDIS").as_deref() != Ok("1"),
        "redis-server not found on PATH and CACHE_REQUIRE_REDIS=1"
    );
    eprintln!("SKIPPED: redis-server not on PATH (set CACHE_REQUIRE_REDIS=1 to fail instead)");
    false
}

/// A free loopback port (bound once, then released).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// A `redis-server` child process.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    tls: Option<ServerTls>,
    child: Option<Child>,
}

/// How a server speaks TLS: on its port, and only TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's certificate (PEM file).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// The CA the server trusts for client certificates, and `redis-cli` for the server's.
    pub ca: PathBuf,
    /// Whether clients must present a certificate signed by `ca` (`--tls-auth-clients`).
    pub require_client_cert: bool,
    /// The certificate and key `redis-cli` presents, if any.
    pub client: Option<(PathBuf, PathBuf)>,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

impl RedisServer {
    /// Starts a server on a free port.
    ///
    /// # Panics
    /// When it does not answer `PING` within 10 s (the message has its log).
    #[must_use]
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server on a free port with extra `redis-server` arguments.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    #[must_use]
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_on(free_port(), args)
    }

    /// Starts a server on `port`.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    #[must_use]
    pub fn start_on(port: u16, args: &[&str]) -> Self {
        Self::start_inner(port, args, None)
    }

    /// Starts a server on a free port that speaks TLS only, as `tls` says;
    /// [`RedisServer::url`] is then a `rediss://` URL.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    #[must_use]
    pub fn start_tls(tls: ServerTls) -> Self {
        Self::start_tls_with_args(tls, &[])
    }

    /// Starts a TLS server, as [`RedisServer::start_tls`], with extra `redis-server` arguments.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    #[must_use]
    pub fn start_tls_with_args(tls: ServerTls, args: &[&str]) -> Self {
        Self::start_inner(free_port(), args, Some(tls))
    }

    fn start_inner(port: u16, args: &[&str], tls: Option<ServerTls>) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cache-tests-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server =
            Self { port, dir, extra_args: args.iter().map(|&a| a.to_owned()).collect(), tls, child: None };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = self.dir.join("redis.log");
        let port = self.port.to_string();
        let listen: Vec<std::ffi::OsString> = match &self.tls {
            None => vec!["--port".into(), port.into()],
            Some(tls) => vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.into(),
                "--tls-cert-file".into(),
                tls.cert.clone().into(),
                "--tls-key-file".into(),
                tls.key.clone().into(),
                "--tls-ca-cert-file".into(),
                tls.ca.clone().into(),
                "--tls-auth-clients".into(),
                (if tls.require_client_cert { "yes" } else { "no" }).into(),
            ],
        };
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping(Duration::from_millis(200)) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("redis-server on port {} did not start:\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers `PING` within `timeout` (with `PONG`, or by asking for a password).
    #[must_use]
    pub fn answers_ping(&self, timeout: Duration) -> bool {
        if self.tls.is_some() {
            return self.cli_within(&["PING"], timeout).is_some_and(|output| {
                let reply = String::from_utf8_lossy(&output.stdout);
                output.status.success() && (reply.trim() == "PONG" || reply.contains("NOAUTH"))
            });
        }
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr(), timeout) else { return false };
        let _ = stream.set_read_timeout(Some(timeout));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        // `+PONG`, or `-NOAUTH` from a server started with `--requirepass`: it answers.
        let mut reply = [0_u8; 7];
        stream.read_exact(&mut reply).is_ok() && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
    }

    /// The server's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:port`, or `rediss://` for a TLS server.
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it; its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill").args([signal, &child.id().to_string()]).status();
            assert!(status.is_ok_and(|s| s.success()), "kill {signal} failed");
        }
    }

    /// Kills the server and starts a new, empty one on the same port.
    ///
    /// # Panics
    /// When the new server does not start.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpListener::bind(self.addr()).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.spawn();
    }

    /// Runs `redis-cli -p port <args>` and returns its trimmed output.
    ///
    /// # Panics
    /// When `redis-cli` fails.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> String {
        let output = self.cli_command(args).output().expect("run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Creates ACL user `user` (password `pw`) with every permission; its URL.
    ///
    /// # Panics
    /// When the server refuses.
    #[must_use]
    pub fn user_url(&self, user: &str) -> String {
        self.acl(user, &["reset", "on", ">pw", "~*", "&*", "+@all"]);
        format!("redis://{user}:pw@127.0.0.1:{}", self.port)
    }

    /// Applies ACL `rules` to `user` (`["-del", "-evalsha"]`); connections
    /// already authenticated as `user` are bound by them at once.
    ///
    /// # Panics
    /// When the server refuses.
    pub fn acl(&self, user: &str, rules: &[&str]) {
        let mut args = vec!["ACL", "SETUSER", user];
        args.extend_from_slice(rules);
        assert_eq!(self.cli(&args), "OK", "ACL SETUSER {user} {rules:?}");
    }

    /// `redis-cli -p port <args>`, with the TLS options of a TLS server.
    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(tls) = &self.tls {
            command.arg("--tls").arg("--cacert").arg(&tls.ca);
            if let Some((cert, key)) = &tls.client {
                command.arg("--cert").arg(cert).arg("--key").arg(key);
            }
        }
        command.args(args);
        command
    }

    /// Runs `redis-cli` as [`RedisServer::cli`] does, killed after `timeout`
    /// (it has no timeout of its own); `None` when it did not finish.
    fn cli_within(&self, args: &[&str], timeout: Duration) -> Option<Output> {
        let mut child = self
            .cli_command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + timeout;
        while child.try_wait().ok()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait_with_output().ok()
    }
}

/// ACL rules that leave a cache reading but refuse its invalidations.
pub const REFUSE_INVALIDATIONS: &[&str] = &["-del", "-unlink", "-eval", "-evalsha", "-publish"];

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster: three masters, and optionally a replica of each.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them.
    ///
    /// # Panics
    /// When the cluster does not reach `cluster_state:ok` within 20 s.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(0, 2000)
    }

    /// Starts three masters with `replicas` replicas each, with
    /// `cluster-node-timeout` `node_timeout_ms` (how soon a dead master is
    /// replaced by its replica: about that, plus an election).
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    #[must_use]
    pub fn start_with(replicas: usize, node_timeout_ms: u64) -> Self {
        Self::start_nodes(replicas, node_timeout_ms, None)
    }

    /// Starts three masters that speak TLS only, to clients and to each
    /// other, as `tls` says; [`RedisCluster::urls`] are then `rediss://` URLs.
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    #[must_use]
    pub fn start_tls(tls: &ServerTls) -> Self {
        Self::start_nodes(0, 2000, Some(tls))
    }

    fn start_nodes(replicas: usize, node_timeout_ms: u64, tls: Option<&ServerTls>) -> Self {
        let timeout = node_timeout_ms.to_string();
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout,
            "--cluster-replica-validity-factor",
            "0",
            "--tls-cluster",
            if tls.is_some() { "yes" } else { "no" },
            "--tls-replication",
            if tls.is_some() { "yes" } else { "no" },
        ];
        let count = 3 * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| match tls {
                Some(tls) => RedisServer::start_tls_with_args(tls.clone(), &args),
                None => RedisServer::start_with_args(&args),
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let replicas = replicas.to_string();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        let _ = nodes[0].cli(&create);
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(20));
        cluster
    }

    /// Waits until every live node says `cluster_state:ok` and agrees that
    /// every slot is served by a master that is not failing.
    ///
    /// # Panics
    /// When that does not happen within `patience`.
    pub fn wait_ok(&self, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let live: Vec<&RedisServer> =
                self.nodes.iter().filter(|n| n.answers_ping(Duration::from_millis(200))).collect();
            let ok = live.iter().all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                && live.iter().all(|n| {
                    let nodes = n.cli(&["CLUSTER", "NODES"]);
                    let served: usize = nodes
                        .lines()
                        .filter(|l| {
                            l.split_whitespace()
                                .nth(2)
                                .is_some_and(|f| f.contains("master") && !f.contains("fail"))
                        })
                        .flat_map(|l| l.split_whitespace().skip(8))
                        .map(|range| match range.split_once('-') {
                            Some((a, b)) => {
                                b.parse::<usize>().unwrap_or(0) + 1 - a.parse::<usize>().unwrap_or(0)
                            }
                            None => usize::from(!range.starts_with('[')),
                        })
                        .sum();
                    served == 16384
                });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "cluster never reached cluster_state:ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis://` URLs of every node (masters and replicas).
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Every node.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Every node, to kill, pause or restart one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// A node that answers.
    ///
    /// # Panics
    /// When none does.
    #[must_use]
    pub fn live_node(&self) -> &RedisServer {
        self.nodes.iter().find(|n| n.answers_ping(Duration::from_millis(200))).expect("a live cluster node")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    #[must_use]
    pub fn slot_of(&self, key: &str) -> u16 {
        self.live_node().cli(&["CLUSTER", "KEYSLOT", key]).parse().expect("a slot number")
    }

    /// The index in [`RedisCluster::nodes`] of the master serving `slot`.
    ///
    /// # Panics
    /// When no node serves it.
    #[must_use]
    pub fn master_of(&self, slot: u16) -> usize {
        self.try_master_of(slot).unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The index of the master serving `slot`, if a live node knows one.
    #[must_use]
    pub fn try_master_of(&self, slot: u16) -> Option<usize> {
        let nodes = self.live_node().cli(&["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ','])
                    .next()
                    .and_then(|address| address.rsplit_once(':'))
                    .and_then(|(_, port)| port.parse().ok())
                    .expect("a node address");
                return self.nodes.iter().position(|n| n.port() == port);
            }
        }
        None
    }

    /// Indexes of the nodes that are masters now.
    #[must_use]
    pub fn masters(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.answers_ping(Duration::from_millis(200)) && n.cli(&["ROLE"]).starts_with("master")
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// One cluster of three masters for the whole test process, started on
    /// first use. Statics are never dropped, so a watchdog process kills its
    /// servers (and removes their directories) once the test process is gone.
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    #[must_use]
    pub fn shared() -> &'static Self {
        static SHARED: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let cluster = Self::start();
            let pids: Vec<String> =
                cluster.nodes.iter().filter_map(|n| n.child.as_ref().map(|c| c.id().to_string())).collect();
            let dirs: Vec<String> = cluster.nodes.iter().map(|n| n.dir.display().to_string()).collect();
            let script = format!(
                "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {} 2>/dev/null; rm -rf {}",
                std::process::id(),
                pids.join(" "),
                dirs.join(" ")
            );
            let _ = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            cluster
        })
    }

    /// Moves `slot` and its keys from master `from` to master `to`, as
    /// `redis-cli --cluster reshard` does: `IMPORTING` on `to`, `MIGRATING` on
    /// `from`, `MIGRATE` of its keys in batches (calling `between` after each
    /// step), then `SETSLOT NODE` on every master.
    pub fn migrate_slot(&self, slot: u16, from: usize, to: usize, mut between: impl FnMut()) {
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        let source_id = source.cli(&["CLUSTER", "MYID"]);
        let target_id = target.cli(&["CLUSTER", "MYID"]);
        let slot_text = slot.to_string();
        assert_eq!(target.cli(&["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &source_id]), "OK");
        assert_eq!(source.cli(&["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &target_id]), "OK");
        between();
        let port = target.port().to_string();
        loop {
            let keys = source.cli(&["CLUSTER", "GETKEYSINSLOT", &slot_text, "5"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "REPLACE", "KEYS"];
            migrate.extend(keys.iter().copied());
            let _ = source.cli(&migrate);
            between();
        }
        for index in self.masters() {
            let _ = self.nodes[index].cli(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &target_id]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_restarts_and_pauses() {
        if !require_redis() {
            return;
        }
        let mut server = RedisServer::start();
        let other = RedisServer::start();
        assert_ne!(server.port(), other.port());
        assert_eq!(server.cli(&["SET", "k", "v"]), "OK");
        server.restart();
        assert_eq!(server.cli(&["GET", "k"]), "", "a restarted server is empty");
        server.pause();
        assert!(!server.answers_ping(Duration::from_millis(300)));
        server.resume();
        assert!(server.answers_ping(Duration::from_secs(2)));
        server.kill();
        assert!(!server.answers_ping(Duration::from_millis(300)));
    }

    #[test]
    fn a_cluster_of_three_masters_serves_every_slot() {
        if !require_redis() {
            return;
        }
        let cluster = RedisCluster::start();
        assert_eq!(cluster.urls().len(), 3);
        let info = cluster.nodes()[0].cli(&["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_slots_ok:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
        let slot = cluster.slot_of("a");
        let from = cluster.master_of(slot);
        let to = (from + 1) % 3;
        assert_eq!(cluster.live_node().cli(&["-c", "SET", "a", "1"]), "OK");
        cluster.migrate_slot(slot, from, to, || {});
        assert_eq!(cluster.master_of(slot), to);
        assert_eq!(cluster.nodes()[to].cli(&["GET", "a"]), "1", "the key moved with its slot");
    }
}
