//! TLS to Redis (`rediss://`, the `tls` feature), against `redis-server`
//! processes that speak TLS only, with certificates made here by `openssl`.
//!
//! Skipped (with a message) when `redis-server` or `openssl` is not
//! installed, unless `CACHE_REQUIRE_REDIS=1`, when they fail instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::{Cache, CacheBuilder, cached};
use cache_tests::certs::{TestCertificates, require_tls_tools};
use cache_tests::redis_server::{RedisCluster, RedisServer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A TLS server and the certificates it was started with.
struct Fixture {
    server: RedisServer,
    certificates: TestCertificates,
}

impl Fixture {
    /// A server presenting the certificate `name.crt`, requiring client certificates or not.
    fn start_with(require_client_cert: bool, name: &str) -> Option<Self> {
        if !require_tls_tools() {
            return None;
        }
        let certificates = TestCertificates::generate();
        let mut tls = certificates.server_tls(require_client_cert);
        tls.cert = certificates.path(&format!("{name}.crt"));
        tls.key = certificates.path(&format!("{name}.key"));
        let server = RedisServer::start_tls(tls);
        Some(Self { server, certificates })
    }

    fn ca(&self) -> Vec<u8> {
        self.certificates.pem("ca.crt")
    }
}

macro_rules! fixture {
    ($($arg:expr),*) => {
        match Fixture::start_with($($arg),*) {
            Some(fixture) => fixture,
            None => return,
        }
    };
}

/// Every test's settings: short timeouts, so failures are quick.
fn builder() -> CacheBuilder {
    Cache::builder()
        .prefix("test:tls")
        .expect("valid prefix")
        .timeout(Duration::from_millis(500))
        .circuit_breaker(3, Duration::from_millis(200))
}

#[cached(key = "greeting:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn greeting(cache: &Cache, runs: &AtomicUsize, id: u64) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    format!("hello {id}")
}

/// Calls [`greeting`] `calls` times; returns how many ran its body.
async fn body_runs(cache: &Cache, calls: usize) -> usize {
    let runs = AtomicUsize::new(0);
    for _ in 0..calls {
        assert_eq!(greeting(cache, &runs, 1).await, "hello 1");
    }
    runs.load(Ordering::SeqCst)
}

/// The cache failures [`greeting`] has counted so far, in this process.
fn greeting_errors() -> u64 {
    cache_runtime::stats().iter().filter(|s| s.function.ends_with("::greeting")).map(|s| s.errors).sum()
}

#[tokio::test]
async fn a_server_signed_by_a_ca_given_with_tls_root_ca_serves_hits() {
    let fixture = fixture!(false, "server");
    let cache = builder().redis(&fixture.server.url()).unwrap().tls_root_ca(&fixture.ca()).unwrap().build();
    assert_eq!(body_runs(&cache, 2).await, 1, "the second call is a hit");
    assert!(!cache.status().degraded());
    assert_eq!(fixture.server.cli(&["EXISTS", "test:tls:{greeting:1}"]), "1", "the entry is in Redis");
}

#[tokio::test]
async fn a_server_no_trusted_ca_signed_answers_from_the_body_without_panicking() {
    let fixture = fixture!(false, "server");
    // The webpki roots only: the test CA is not one of them.
    let cache = builder().redis(&fixture.server.url()).unwrap().build();
    assert_eq!(body_runs(&cache, 3).await, 3, "the cache is down: every call runs the body");
}

#[tokio::test]
async fn a_client_certificate_opens_a_server_that_requires_one() {
    let fixture = fixture!(true, "server");
    let (cert, key) = (fixture.certificates.pem("client.crt"), fixture.certificates.pem("client.key"));
    // The certificates before the URL: the order does not matter.
    let cache = builder()
        .tls_client_cert(&cert, &key)
        .unwrap()
        .tls_root_ca(&fixture.ca())
        .unwrap()
        .redis(&fixture.server.url())
        .unwrap()
        .build();
    assert_eq!(body_runs(&cache, 2).await, 1, "the second call is a hit");

    let without = builder().tls_root_ca(&fixture.ca()).unwrap().redis(&fixture.server.url()).unwrap().build();
    let error = ping_error(&without).await;
    assert_eq!(error.class(), "tls", "{error}");
    assert!(error.to_string().contains("tls_client_cert"), "the fix: {error}");
    let errors = greeting_errors();
    assert_eq!(body_runs(&without, 2).await, 2, "refused without a certificate: every call runs the body");
    assert!(greeting_errors() > errors, "the refusals are counted");
}

#[tokio::test]
async fn an_unrelated_ca_runs_the_body_counts_the_error_and_warns_once() {
    let fixture = fixture!(false, "server");
    let warnings = Arc::new(WarningLog::default());
    let _guard = tracing::subscriber::set_default(Arc::clone(&warnings));
    let cache = builder()
        .redis(&fixture.server.url())
        .unwrap()
        .tls_root_ca(&fixture.certificates.pem("other-ca.crt"))
        .unwrap()
        .build();
    let errors = greeting_errors();
    assert_eq!(body_runs(&cache, 5).await, 5, "the cache is down: every call runs the body");
    assert!(greeting_errors() >= errors + 3, "every failure is counted");
    assert!(cache.status().degraded(), "the circuit breaker opened");
    let warnings: Vec<String> =
        warnings.messages().into_iter().filter(|message| message.contains("misconfigured")).collect();
    assert_eq!(warnings.len(), 1, "one warning, not one per call: {warnings:#?}");
    assert!(
        warnings[0].contains("invalid peer certificate") && warnings[0].contains("tls_root_ca"),
        "the cause and the fix: {}",
        warnings[0]
    );
}

#[tokio::test]
async fn a_certificate_for_another_host_name_runs_the_body() {
    let fixture = fixture!(false, "elsewhere");
    let cache = builder().redis(&fixture.server.url()).unwrap().tls_root_ca(&fixture.ca()).unwrap().build();
    let error = ping_error(&cache).await;
    assert_eq!(error.class(), "tls", "{error}");
    let text = error.to_string();
    assert!(
        text.contains("not valid for name") && text.contains("subjectAltName"),
        "the cause and the fix: {text}"
    );
    assert_eq!(body_runs(&cache, 3).await, 3, "the cache is down: every call runs the body");
}

/// The error of a `PING` through `cache`, which must fail.
async fn ping_error(cache: &Cache) -> cache_runtime::CacheError {
    cache
        .redis_command::<String>(cache_runtime::redis::cmd("PING"))
        .await
        .expect("a Redis cache")
        .expect_err("no connection")
}

#[tokio::test]
async fn a_cluster_over_tls_serves_hits_from_every_master() {
    if !require_tls_tools() {
        return;
    }
    let certificates = TestCertificates::generate();
    let cluster = RedisCluster::start_tls(&certificates.server_tls(true));
    let cache = builder()
        .redis_cluster(&cluster.urls())
        .unwrap()
        .tls_root_ca(&certificates.pem("ca.crt"))
        .unwrap()
        .tls_client_cert(&certificates.pem("client.crt"), &certificates.pem("client.key"))
        .unwrap()
        .build();
    let runs = AtomicUsize::new(0);
    // Keys on every master; the second round reads them straight from their
    // masters, over connections of their own.
    for _ in 0..2 {
        for id in 0..30 {
            assert_eq!(greeting(&cache, &runs, id).await, format!("hello {id}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 30, "the second round is all hits");
    assert!(!cache.status().degraded());
}

#[test]
fn pem_that_does_not_parse_is_a_config_error() {
    let url = "rediss://127.0.0.1:6380";
    let garbage = b"not a certificate".as_slice();
    let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".as_slice();
    for pem in [garbage, broken, b"".as_slice()] {
        let error = Cache::builder().redis(url).unwrap().tls_root_ca(pem).unwrap_err().to_string();
        assert!(error.contains("`tls_root_ca`") && error.contains("BEGIN CERTIFICATE"), "{error}");
        let error = Cache::builder().tls_client_cert(pem, pem).unwrap_err().to_string();
        assert!(error.contains("`tls_client_cert`"), "{error}");
    }
    if !cache_tests::certs::openssl_available() {
        return;
    }
    let certificates = TestCertificates::generate();
    let (cert, key) = (certificates.pem("client.crt"), certificates.pem("client.key"));
    let error = Cache::builder().tls_client_cert(&cert, b"no key").unwrap_err().to_string();
    assert!(error.contains("private key"), "{error}");
    let error =
        Cache::builder().tls_client_cert(&cert, &certificates.pem("server.key")).unwrap_err().to_string();
    assert!(error.contains("key of that certificate"), "{error}");
    let cluster = Cache::builder()
        .tls_client_cert(&cert, &key)
        .unwrap()
        .redis_cluster(&[url, "rediss://127.0.0.1:6381"]);
    assert!(cluster.is_ok(), "{:?}", cluster.err());

    // Certificates are for `rediss://`, whichever comes first.
    let ca = certificates.pem("ca.crt");
    let plain = "redis://127.0.0.1:6379";
    for error in [
        Cache::builder().tls_root_ca(&ca).unwrap().redis(plain).unwrap_err(),
        Cache::builder().redis_cluster(&[plain]).unwrap().tls_root_ca(&ca).unwrap_err(),
    ] {
        assert!(error.to_string().contains("use `rediss://`"), "{error}");
    }
}

/// Keeps the messages of WARN events (with their fields).
#[derive(Default)]
struct WarningLog {
    messages: Mutex<Vec<String>>,
}

impl WarningLog {
    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// An event's fields as `name=value` text.
#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl Subscriber for WarningLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            let mut fields = Fields::default();
            event.record(&mut fields);
            self.messages.lock().unwrap().push(fields.0);
        }
    }

    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
