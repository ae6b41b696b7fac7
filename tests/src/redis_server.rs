//! Real `redis-server` processes for tests: each on a free loopback port, in a
//! temporary directory of its own, killed and cleaned up on drop. Tests can
//! kill, pause (SIGSTOP), resume and restart them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
    child: Option<Child>,
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
        let dir = std::env::temp_dir().join(format!(
            "cache-tests-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server =
            Self { port, dir, extra_args: args.iter().map(|&a| a.to_owned()).collect(), child: None };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
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

    /// `redis://127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters, no replicas.
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
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_with_args(&args)).collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let _ = nodes[0].cli(&create);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes.iter().all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
            assert!(Instant::now() < deadline, "cluster never reached cluster_state:ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { nodes }
    }

    /// `redis://` URLs of the masters.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The masters.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The masters, to kill, pause or restart one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
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
    }
}
