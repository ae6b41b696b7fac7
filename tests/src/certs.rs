//! Certificates for TLS tests, made with the `openssl` command line tool in a
//! temporary directory of their own (removed on drop): a CA, a server
//! certificate it signs for `localhost` and 127.0.0.1 (a client certificate
//! too, as cluster nodes present it to each other), one for another host
//! name, a client certificate it signs, and a second, unrelated CA. Keys are
//! ECDSA P-256, valid two days.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::redis_server::ServerTls;

/// Whether `openssl` is on `PATH`.
#[must_use]
pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether TLS tests may run: they need `redis-server` (see
/// [`require_redis`](crate::redis_server::require_redis)) and `openssl`.
/// Without either they are skipped with a message, unless
/// `CACHE_REQUIRE_REDIS=1`, when this panics instead.
///
/// # Panics
/// When one of them is missing and `CACHE_REQUIRE_REDIS=1`.
#[must_use]
pub fn require_tls_tools() -> bool {
    if !crate::redis_server::require_redis() {
        return false;
    }
    if openssl_available() {
        return true;
    }
    assert!(
        std::env::var("CACHE_REQUIRE_REDIS").as_deref() != Ok("1"),
        "openssl not found on PATH and CACHE_REQUIRE_REDIS=1"
    );
    eprintln!("SKIPPED: openssl not on PATH (set CACHE_REQUIRE_REDIS=1 to fail instead)");
    false
}

/// A directory of test certificates and keys, in PEM.
pub struct TestCertificates {
    dir: PathBuf,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

impl TestCertificates {
    /// Makes the certificates: `ca.crt`; `server.crt`, `elsewhere.crt` (for
    /// `elsewhere.example` only) and `client.crt`, signed by `ca.crt`; their
    /// keys; and `other-ca.crt`.
    ///
    /// # Panics
    /// When `openssl` fails (the message has its output).
    #[must_use]
    pub fn generate() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cache-tests-certs-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let certificates = Self { dir };
        certificates.authority("ca", "cache-tests CA");
        certificates.authority("other-ca", "cache-tests unrelated CA");
        certificates.signed(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
        );
        certificates.signed(
            "elsewhere",
            "elsewhere.example",
            "subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        certificates.signed(
            "client",
            "cache-tests client",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        );
        certificates
    }

    /// The path of `name` (such as `"ca.crt"` or `"client.key"`).
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The contents of `name`.
    ///
    /// # Panics
    /// When it cannot be read.
    #[must_use]
    pub fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|error| panic!("read {name}: {error}"))
    }

    /// A self-signed CA `name.crt` with its key `name.key`.
    fn authority(&self, name: &str, common_name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={common_name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ]);
    }

    /// `name.crt` signed by `ca.crt`, with its key `name.key` and the `extensions`.
    fn signed(&self, name: &str, common_name: &str, extensions: &str) {
        let (key, request, cert, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        std::fs::write(self.path(&ext), extensions).expect("write the extensions");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={common_name}"),
            "-keyout",
            &key,
            "-out",
            &request,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl").args(args).current_dir(&self.dir).output().expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A server speaking TLS with `server.crt`, trusting `ca.crt` for client
    /// certificates (required or not), `redis-cli` presenting `client.crt`.
    #[must_use]
    pub fn server_tls(&self, require_client_cert: bool) -> ServerTls {
        ServerTls {
            cert: self.path("server.crt"),
            key: self.path("server.key"),
            ca: self.path("ca.crt"),
            require_client_cert,
            client: Some((self.path("client.crt"), self.path("client.key"))),
        }
    }

    /// The directory holding the files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
