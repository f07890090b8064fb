//! TLS server settings for the adapters' `tls` features (cargo feature `tls`): a rustls
//! [`ServerConfig`] from a certificate chain and a private key in PEM files, written once
//! for both adapters.
//!
//! The settings use rustls's `ring` provider (TLS 1.3 and 1.2, its default cipher suites)
//! and offer ALPN `http/1.1`, the only protocol the adapters speak. Requests that arrive
//! over TLS carry the [`Tls`](crate::Tls) extension, so hixie-76 answers with a `wss://`
//! location.
//!
//! ```no_run
//! # fn main() -> Result<(), sockjs_core::driver::tls::TlsError> {
//! let config = sockjs_core::driver::tls::config_from_pem("cert.pem", "key.pem")?;
//! assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls;
pub use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why [`config_from_pem`] or [`server_config`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: io::Error,
    },
    /// A file is not valid PEM.
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    NoCertificate(PathBuf),
    /// The key file holds no private key (PKCS #8, PKCS #1 or SEC1).
    NoKey(PathBuf),
    /// rustls refused the pair (e.g. the key does not match the certificate, or its kind
    /// is not supported).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => write!(f, "reading {}: {source}", path.display()),
            TlsError::Pem { path, source } => {
                write!(f, "{} is not valid PEM: {source}", path.display())
            }
            TlsError::NoCertificate(path) => write!(f, "no certificate in {}", path.display()),
            TlsError::NoKey(path) => write!(f, "no private key in {}", path.display()),
            TlsError::Rustls(error) => write!(f, "TLS settings refused: {error}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            TlsError::Pem { source, .. } => Some(source),
            TlsError::Rustls(error) => Some(error),
            TlsError::NoCertificate(_) | TlsError::NoKey(_) => None,
        }
    }
}

/// Server settings from a PEM file holding the certificate chain (the server's certificate
/// first) and a PEM file holding its private key (both may be the same file).
pub fn config_from_pem(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
    let certs = read(cert_path)?;
    let key = read(key_path)?;
    let chain = CertificateDer::pem_slice_iter(&certs)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: cert_path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = match PrivateKeyDer::from_pem_slice(&key) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => return Err(TlsError::NoKey(key_path.to_owned())),
        Err(source) => {
            return Err(TlsError::Pem {
                path: key_path.to_owned(),
                source,
            });
        }
    };
    server_config(chain, key)
}

/// Server settings from a certificate chain and its private key in DER, as
/// [`config_from_pem`] makes them.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `config` as an HTTP/1.1 server can use it: its ALPN list holding no protocol but
/// `http/1.1`, and no TLS 1.3 early data. Both standalone servers apply it to
/// [`Config::tls`](crate::driver::Config::tls) when they start.
///
/// Settings built for another server often offer `h2` first; a browser offered it picks
/// HTTP/2 and then reads HTTP/1.1 bytes it cannot parse (RFC 7301 §3.2: a server speaks the
/// protocol it selects), and every request over TLS fails. Settings that accept 0-RTT early
/// data (`max_early_data_size` above zero) would let a resuming client send its request
/// before the handshake ends, where the server's TLS stream never reads it (the client then
/// waits for an answer until the header read timeout), and early data can be replayed
/// (RFC 8446 §8), which an `xhr_send` must not be. The same `Arc` comes back when there is
/// nothing to change; else a copy without the other protocols (no ALPN at all if
/// `http/1.1` was not offered, which clients take as HTTP/1.1) and without early data, and
/// a warning (the first time only). A server that calls it for each connection
/// (sockjs-tokio's `serve_connection` with such settings) copies the settings each time:
/// apply it once to the `Config` it hands over instead.
///
/// ```
/// # fn demo(config: std::sync::Arc<sockjs_core::driver::tls::ServerConfig>) {
/// let config = sockjs_core::driver::tls::http1_only(config);
/// assert!(config.alpn_protocols.iter().all(|p| p == b"http/1.1"));
/// assert_eq!(config.max_early_data_size, 0);
/// # }
/// ```
pub fn http1_only(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    let other_protocols = !config.alpn_protocols.iter().all(|p| p == b"http/1.1");
    let early_data = config.max_early_data_size > 0;
    if !other_protocols && !early_data {
        return config;
    }
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            offered = ?config.alpn_protocols.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
            max_early_data_size = config.max_early_data_size,
            "TLS settings offer ALPN protocols other than http/1.1 or accept early data: \
             only http/1.1 is offered, and no early data taken"
        );
    }
    let mut only = ServerConfig::clone(&config);
    only.alpn_protocols.retain(|p| p == b"http/1.1");
    only.max_early_data_size = 0;
    Arc::new(only)
}

/// Bytes of TLS records an accepted connection buffers before its writes wait: rustls's
/// default is 64 KiB.
pub const SEND_BUFFER: usize = 16 * 1024;

/// Sets up a connection the adapters accepted: its buffer of records not yet sent is
/// [`SEND_BUFFER`]. A client on a slow link takes those records bit by bit, and the
/// write timeout counts from progress, which the server sees only as room the buffer
/// makes for more ([`Socket::progressed`](crate::driver::Socket::progressed)) or once all
/// of it is out: with rustls's default, a client reading less than 64 KiB per
/// `write_timeout` could be cut although it reads; with this, less than 16 KiB. An
/// application that accepts TLS itself and hands the stream over (sockjs-tokio's
/// `serve_connection`, say) calls it on its own connections.
pub fn tune(connection: &mut rustls::ServerConnection) {
    connection.set_buffer_limit(Some(SEND_BUFFER));
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_typed_errors() {
        let dir = std::env::temp_dir().join(format!("sockjs-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(
            config_from_pem(dir.join("absent.pem"), &empty),
            Err(TlsError::Read { .. })
        ));
        assert!(matches!(
            config_from_pem(&empty, &empty),
            Err(TlsError::NoCertificate(_))
        ));
        // A PEM section that never ends: the parser's error is the source, in words.
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, b"-----BEGIN CERTIFICATE-----\nMIIB\n").expect("write");
        let error = config_from_pem(&broken, &broken).expect_err("broken PEM");
        assert!(matches!(error, TlsError::Pem { .. }), "{error:?}");
        let source = std::error::Error::source(&error).expect("the parser's error");
        assert!(error.to_string().ends_with(&source.to_string()), "{error}");
        assert!(!error.to_string().contains("MissingSectionEnd"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
