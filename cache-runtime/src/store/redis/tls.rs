//! TLS to Redis (`rediss://` URLs, the `tls` feature).
//!
//! - The certificates of [`CacheBuilder::tls_root_ca`](crate::CacheBuilder::tls_root_ca)
//!   and [`CacheBuilder::tls_client_cert`](crate::CacheBuilder::tls_client_cert)
//!   are parsed when given, so a bad PEM is a configuration error, never a
//!   failure of every connection; every client of the store is made by
//!   [`TlsOptions::client`] (or takes [`TlsOptions::certificates`]).
//! - rustls needs a process-wide crypto provider: before the first connection
//!   [`install_crypto_provider`] installs `ring`'s, unless the application
//!   installed one first.
//! - A handshake that fails (a certificate refused either way, a server that
//!   does not speak TLS) is a [`CacheError::Tls`](super::CacheError::Tls);
//!   [`fix_for`] says what to change.

use std::fmt;

/// The certificates given to the builder, checked when given.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// The CA certificates trusted for the server's certificate, in PEM (none:
    /// the webpki roots, as a browser trusts).
    #[cfg(feature = "tls")]
    root_ca: Option<Vec<u8>>,
    /// The client certificate chain and key presented to the server, in PEM.
    #[cfg(feature = "tls")]
    client: Option<redis::ClientTlsConfig>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut options = f.debug_struct("TlsOptions");
        #[cfg(feature = "tls")]
        options.field("root_ca", &self.root_ca.is_some()).field("client_cert", &self.client.is_some());
        options.finish()
    }
}

/// What a `tls_*` builder method answers without the `tls` feature.
#[cfg(not(feature = "tls"))]
fn needs_feature(method: &str) -> String {
    format!(
        "`{method}` needs TLS: enable the `tls` feature of cache-runtime \
         (`cache-runtime = {{ version = \"0.1\", features = [\"tls\"] }}`)"
    )
}

/// Whether `url` asks for TLS.
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.get(..9).is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
}

#[cfg(feature = "tls")]
impl TlsOptions {
    /// Trusts the CA certificates of `pem` (one or more) for the server's certificate.
    pub(crate) fn set_root_ca(&mut self, pem: &[u8]) -> Result<(), String> {
        check::root_ca(pem)?;
        self.root_ca = Some(pem.to_vec());
        Ok(())
    }

    /// Presents the certificate chain `cert_pem` with its private key `key_pem`.
    pub(crate) fn set_client_cert(&mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
        check::client_cert(cert_pem, key_pem)?;
        self.client =
            Some(redis::ClientTlsConfig { client_cert: cert_pem.to_vec(), client_key: key_pem.to_vec() });
        Ok(())
    }

    /// The certificates for the Redis client, when any were given.
    pub(crate) fn certificates(&self) -> Option<redis::TlsCertificates> {
        (self.root_ca.is_some() || self.client.is_some()).then(|| redis::TlsCertificates {
            client_tls: self.client.clone(),
            root_cert: self.root_ca.clone(),
        })
    }
}

#[cfg(not(feature = "tls"))]
impl TlsOptions {
    /// Without the `tls` feature: an error saying how to enable it.
    pub(crate) fn set_root_ca(&mut self, _pem: &[u8]) -> Result<(), String> {
        Err(needs_feature("tls_root_ca"))
    }

    /// Without the `tls` feature: an error saying how to enable it.
    pub(crate) fn set_client_cert(&mut self, _cert_pem: &[u8], _key_pem: &[u8]) -> Result<(), String> {
        Err(needs_feature("tls_client_cert"))
    }

    /// Never any without the `tls` feature.
    pub(crate) fn certificates(&self) -> Option<std::convert::Infallible> {
        None
    }
}

impl TlsOptions {
    /// Checks that `urls` can be reached as asked: TLS needs the feature, and
    /// certificates need TLS. With TLS, installs the crypto provider.
    pub(crate) fn check_urls(&self, urls: &[String]) -> Result<(), String> {
        for url in urls {
            if is_tls_url(url) && !cfg!(feature = "tls") {
                return Err(format!("{url:?} asks for TLS: enable the `tls` feature of cache-runtime"));
            }
            if !is_tls_url(url) && self.certificates().is_some() {
                return Err(format!(
                    "{url:?} is not a TLS URL, but `tls_root_ca` or `tls_client_cert` gave certificates: \
                     use `rediss://` (the server's `tls-port`)"
                ));
            }
        }
        if urls.iter().any(|url| is_tls_url(url)) {
            install_crypto_provider();
        }
        Ok(())
    }

    /// A client for `url`, with the certificates given, if any.
    pub(crate) fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        match self.certificates() {
            #[cfg(feature = "tls")]
            Some(certificates) => redis::Client::build_with_tls(url, certificates),
            _ => redis::Client::open(url),
        }
    }
}

/// Makes `ring` the process's rustls crypto provider, unless one is already
/// installed (the application's own choice wins).
pub(crate) fn install_crypto_provider() {
    #[cfg(feature = "tls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one meanwhile: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// When `error` is a failed TLS handshake: what to change.
pub(crate) fn fix_for(error: &redis::RedisError) -> Option<&'static str> {
    let text = error.to_string();
    let has = |needle: &str| text.contains(needle);
    if has("not valid for name") {
        Some(
            "the server's certificate does not name the host connected to: connect with a host name \
             or address its subjectAltName lists",
        )
    } else if has("invalid peer certificate") {
        Some(
            "the server's certificate is not trusted: give the CA that signed it with \
             `CacheBuilder::tls_root_ca`",
        )
    } else if has("received fatal alert") || has("peer sent no certificates") {
        Some(
            "the server refused the TLS handshake: when it requires client certificates \
             (`tls-auth-clients yes`), give one its `tls-ca-cert-file` trusts with `CacheBuilder::tls_client_cert`",
        )
    } else if has("received corrupt message") {
        Some("the server does not speak TLS on this port: use `redis://`, or the port of its `tls-port`")
    } else if has("peer is incompatible") || has("peer misbehaved") || has("with TLS parameters") {
        Some("the server's TLS settings do not match the client's: check its certificate and `tls-protocols`")
    } else {
        None
    }
}

/// Parsing of the builder's PEM.
#[cfg(feature = "tls")]
mod check {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    const PEM_HELP: &str =
        "a PEM file, the text from `-----BEGIN CERTIFICATE-----` to `-----END CERTIFICATE-----`";

    fn certificates(method: &str, what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("`{method}`: the {what} does not parse ({error}): pass {PEM_HELP}"))?;
        if certificates.is_empty() {
            return Err(format!("`{method}`: no certificate found in the {what}: pass {PEM_HELP}"));
        }
        Ok(certificates)
    }

    pub(super) fn root_ca(pem: &[u8]) -> Result<(), String> {
        let mut store = rustls::RootCertStore::empty();
        for certificate in certificates("tls_root_ca", "CA certificate PEM", pem)? {
            store.add(certificate).map_err(|error| {
                format!("`tls_root_ca`: a certificate of the PEM is not a usable CA ({error}): pass the CA's certificate")
            })?;
        }
        Ok(())
    }

    pub(super) fn client_cert(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
        let chain = certificates("tls_client_cert", "client certificate PEM", cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| {
            format!(
                "`tls_client_cert`: no private key found in the key PEM ({error}): pass the key file, \
                 from `-----BEGIN PRIVATE KEY-----` (or `RSA PRIVATE KEY`, `EC PRIVATE KEY`) to its `END` line"
            )
        })?;
        // What the connection will do with them: a key of a kind rustls signs
        // with, and the one of the certificate.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_client_auth_cert(chain, key)
            .map_err(|error| {
                format!("`tls_client_cert`: the key and certificate cannot be used together ({error}): pass the key of that certificate")
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error(text: &str) -> redis::RedisError {
        std::io::Error::other(text.to_owned()).into()
    }

    #[test]
    fn failed_handshakes_say_what_to_change() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", "tls_root_ca"),
            ("invalid peer certificate: certificate not valid for name \"10.0.0.1\"", "subjectAltName"),
            ("received fatal alert: CertificateRequired", "tls_client_cert"),
            ("received corrupt message of type InvalidContentType", "`redis://`"),
        ];
        for (text, fix) in cases {
            assert!(fix_for(&io_error(text)).is_some_and(|hint| hint.contains(fix)), "{text}");
        }
        assert_eq!(fix_for(&io_error("Connection refused (os error 111)")), None);
    }

    #[test]
    fn tls_urls_are_told_by_their_scheme() {
        assert!(is_tls_url("rediss://h:6380") && is_tls_url("REDISS://h"));
        assert!(!is_tls_url("redis://h:6379") && !is_tls_url("redis"));
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_the_feature_certificates_say_how_to_enable_it() {
        let mut options = TlsOptions::default();
        let error = options.set_root_ca(b"pem").unwrap_err();
        assert!(error.contains("`tls_root_ca`") && error.contains("features = [\"tls\"]"), "{error}");
        let error = options.set_client_cert(b"pem", b"key").unwrap_err();
        assert!(error.contains("`tls_client_cert`"), "{error}");
    }
}
