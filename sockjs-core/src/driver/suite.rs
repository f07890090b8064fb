//! The protocol suite's test services (PROTOCOL.md §1): what a server must expose for the
//! official sockjs-protocol suite, our `conformance` suite and the browser tests.
//!
//! ```
//! use sockjs_core::Options;
//! use sockjs_core::driver::suite;
//!
//! let services = suite::services(&Options::default());
//! let prefixes: Vec<_> = services.iter().map(|s| s.prefix).collect();
//! assert_eq!(prefixes, ["/echo", "/close", "/disabled_websocket_echo", "/cookie_needed_echo"]);
//! assert_eq!(services[0].options.response_limit, 4096);
//! ```

use std::future::Future;

use crate::Options;
use crate::driver::Session;

/// What a test service's sessions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// Sends every message back.
    Echo,
    /// Closes each session with `3000 "Go away!"` as soon as it opens.
    Close,
}

impl App {
    /// Runs one session: the handler of a test service.
    pub async fn run(self, mut session: Session) {
        match self {
            App::Echo => {
                while let Some(message) = session.recv().await {
                    let _ = session.send(message).await;
                }
            }
            App::Close => {
                let _ = session.close(3000, "Go away!");
            }
        }
    }
}

impl App {
    /// The handler as a function value, for APIs that take `Fn(Session) -> impl Future`.
    pub fn runner(
        self,
    ) -> impl Fn(Session) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
    + Clone
    + Send
    + Sync
    + 'static {
        move |session| Box::pin(self.run(session))
    }
}

/// One test service: where it is mounted, its options and its application.
#[derive(Debug, Clone)]
pub struct TestService {
    /// The mount path, e.g. `/echo`.
    pub prefix: &'static str,
    /// The service's options; their `prefix` is `prefix`.
    pub options: Options,
    /// What its sessions do.
    pub app: App,
}

/// The four services, built on `base` (delays, hixie-76, the client URL...):
///
/// | prefix | app | options beyond `base` |
/// |---|---|---|
/// | `/echo` | echo | `response_limit` 4096 |
/// | `/close` | close with 3000 | |
/// | `/disabled_websocket_echo` | echo | the WebSocket transports (SockJS and raw) off |
/// | `/cookie_needed_echo` | echo | `jsessionid` on ([`Jsessionid::echo`](crate::Jsessionid::echo)) |
pub fn services(base: &Options) -> Vec<TestService> {
    let with = |prefix: &'static str, app: App, change: fn(&mut Options)| {
        let mut options = base.clone();
        options.prefix = prefix.to_owned();
        change(&mut options);
        TestService {
            prefix,
            options,
            app,
        }
    };
    vec![
        with("/echo", App::Echo, |o| o.response_limit = 4096),
        with("/close", App::Close, |_| {}),
        with("/disabled_websocket_echo", App::Echo, |o| {
            o.transports = o
                .transports
                .without(crate::Transport::WebSocket)
                .without(crate::Transport::RawWebSocket);
        }),
        with("/cookie_needed_echo", App::Echo, |o| {
            o.jsessionid = crate::Jsessionid::echo();
        }),
    ]
}

/// The command line of the adapters' test servers:
/// `[ADDR] [--sockjs-url URL] [--heartbeat-ms N] [--disconnect-ms N] [--permessage-deflate]
/// [--permessage-deflate-takeover] [--tls-cert PEM --tls-key PEM]` and any flags of the
/// adapter's own, which are passed through in [`Args::rest`].
///
/// `--permessage-deflate` offers permessage-deflate (RFC 7692) with
/// [`DeflateOptions::default`](crate::DeflateOptions) (no context takeover);
/// `--permessage-deflate-takeover` offers it with context takeover both ways.
/// `--tls-cert` and `--tls-key` (both or neither) serve HTTPS with that certificate chain
/// and private key (PEM files; the adapters' `tls` feature).
#[derive(Debug, Clone)]
pub struct Args {
    /// Where to listen (default `127.0.0.1:8081`; port 0 picks one).
    pub addr: std::net::SocketAddr,
    /// Options with the command line's client URL and delays (hixie-76 on, as the official
    /// suite's `test_haproxy` needs).
    pub base: Options,
    /// Flags this parser does not know, in order, for the adapter.
    pub rest: Vec<String>,
    /// `--tls-cert PEM --tls-key PEM`: the certificate chain and private key to serve
    /// HTTPS with.
    pub tls: Option<TlsFiles>,
}

/// The PEM files of `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's certificate first.
    pub cert: std::path::PathBuf,
    /// Its private key.
    pub key: std::path::PathBuf,
}

impl TlsFiles {
    /// The rustls server settings from the files
    /// ([`config_from_pem`](crate::driver::tls::config_from_pem)).
    #[cfg(feature = "tls")]
    pub fn load(
        &self,
    ) -> Result<std::sync::Arc<crate::driver::tls::ServerConfig>, crate::driver::tls::TlsError>
    {
        crate::driver::tls::config_from_pem(&self.cert, &self.key)
    }
}

/// What [`Args::parse`] accepts, for usage messages.
pub const USAGE: &str = "[ADDR] [--sockjs-url URL] [--heartbeat-ms N] [--disconnect-ms N] \
     [--permessage-deflate] [--permessage-deflate-takeover] [--tls-cert PEM --tls-key PEM]";

impl Args {
    /// Parses the arguments after the program name.
    ///
    /// ```
    /// use sockjs_core::driver::suite::Args;
    /// let args = Args::parse(["127.0.0.1:0", "--heartbeat-ms", "500", "--axum"].map(String::from))?;
    /// assert_eq!(args.addr.port(), 0);
    /// assert_eq!(args.base.heartbeat_delay, Some(std::time::Duration::from_millis(500)));
    /// assert_eq!(args.rest, ["--axum"]);
    /// assert_eq!(args.base.permessage_deflate, None);
    /// let args = Args::parse(["--permessage-deflate".to_owned()])?;
    /// assert_eq!(args.base.permessage_deflate, Some(sockjs_core::DeflateOptions::default()));
    /// let args = Args::parse(["--tls-cert", "c.pem", "--tls-key", "k.pem"].map(String::from))?;
    /// assert_eq!(args.tls.map(|files| files.key), Some("k.pem".into()));
    /// assert!(Args::parse(["--tls-cert", "c.pem"].map(String::from)).is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8081)),
            base: Options {
                hixie76: true,
                ..Options::default()
            },
            rest: Vec::new(),
            tls: None,
        };
        let (mut cert, mut key) = (None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            let millis = |v: String| {
                v.parse::<u64>()
                    .map(std::time::Duration::from_millis)
                    .map_err(|e| format!("bad number of milliseconds {v:?}: {e}"))
            };
            match arg.as_str() {
                "--sockjs-url" => parsed.base.sockjs_url = value("--sockjs-url")?,
                "--heartbeat-ms" => {
                    parsed.base.heartbeat_delay = Some(millis(value("--heartbeat-ms")?)?);
                }
                "--disconnect-ms" => {
                    parsed.base.disconnect_delay = millis(value("--disconnect-ms")?)?;
                }
                "--permessage-deflate" => {
                    parsed.base.permessage_deflate = Some(crate::DeflateOptions::default());
                }
                "--permessage-deflate-takeover" => {
                    parsed.base.permessage_deflate = Some(crate::DeflateOptions {
                        server_context_takeover: true,
                        client_context_takeover: true,
                        ..crate::DeflateOptions::default()
                    });
                }
                "--tls-cert" => cert = Some(value("--tls-cert")?.into()),
                "--tls-key" => key = Some(value("--tls-key")?.into()),
                addr if !addr.starts_with('-') => {
                    parsed.addr = addr
                        .parse()
                        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
                }
                _ => parsed.rest.push(arg),
            }
        }
        parsed.tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".to_owned()),
        };
        parsed.base.validate().map_err(|e| e.to_string())?;
        Ok(parsed)
    }
}
