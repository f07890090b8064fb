//! Command line of `sockjs-load`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::report::Compare;

/// Usage text.
pub const USAGE: &str = "\
usage: sockjs-load URL [options]
       sockjs-load summarize [--vs SERVER]... [--best-vs SERVER]... [--pair S/BASE]... FILE...

Runs N concurrent sessions against a SockJS echo service and verifies every echo
(content and order). URL is a service base on a loopback address, e.g.
http://127.0.0.1:8081/echo.

options:
  --transport T            websocket (default), xhr-streaming, xhr-polling, eventsource,
                           or raw-websocket (plain WebSocket echo at URL/websocket,
                           no SockJS framing)
  --sessions N             concurrent sessions (default 1)
  --size BYTES             message size (default 32)
  --window W               messages in flight per session (default 1)
  --duration SECS          measured interval (default 10)
  --warmup SECS            unmeasured traffic before it (default 1)
  --pid PID                the server's process: report its CPU time, messages per
                           server CPU-second and resident memory
  --payload P              letters (default: digits, a dash, letters a-z) or json
                           (JSON-like records, compressible as real JSON is)
  --permessage-deflate     WebSocket transports: use the load generator's own client,
                           offer permessage-deflate (as Chromium does), compress every
                           message if the server agrees, and report bytes on the wire
                           per echo (whether or not the server agrees)
  --idle                   open N sessions, hold them for the duration (WebSocket: the
                           socket; xhr-streaming, eventsource: the stream; xhr-polling:
                           a poll, re-opened when it ends) and report the server's
                           resident memory per session
  --echo-first             idle mode: each session first echoes one --size message, so
                           the figure includes what a server keeps of a session's
                           traffic (implied by --permessage-deflate, so that any
                           compression state is there)
  --setup-timeout SECS     bound on opening all sessions (default 60)
  --connect-concurrency N  handshakes in progress at once (default 100)
  --tag KEY=VALUE          label copied into the RESULT line (repeatable)

Prints a human-readable report and one line `RESULT {json}`. Exits 0 when every
session opened and no error was counted, 1 otherwise, 2 on a usage error.

summarize reads RESULT lines tagged server=... and cell=... from the files and prints
Markdown tables of medians, with ratios against each --vs server (default: node, raw).
Each --best-vs server gets one ratio column rather than one per server,
\"best of ours / SERVER\": the highest median among the servers named by neither
option, divided by that server's; the idle table gets a \"vs SERVER\" column.
Each --pair S/BASE adds the one column \"S / BASE\" (BASE is not one of ours): a
server against its own floor, such as smol against raw tungstenite on smol's runtime.
";

/// Largest accepted values, to keep every run bounded.
const MAX_SESSIONS: usize = 100_000;
const MAX_SIZE: usize = 1 << 20;
const MAX_WINDOW: usize = 10_000;
const MAX_SECS: f64 = 3600.0;

/// How sessions talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SockJS over WebSocket (`/server/session/websocket`).
    WebSocket,
    /// One xhr_streaming receiver plus xhr_send POSTs.
    XhrStreaming,
    /// An xhr polling loop plus xhr_send POSTs.
    XhrPolling,
    /// An eventsource GET stream plus xhr_send POSTs.
    EventSource,
    /// A plain WebSocket echo at `URL/websocket`: messages as text frames, no SockJS.
    RawWebSocket,
}

impl Transport {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::XhrStreaming => "xhr-streaming",
            Transport::XhrPolling => "xhr-polling",
            Transport::EventSource => "eventsource",
            Transport::RawWebSocket => "raw-websocket",
        }
    }

    fn parse(s: &str) -> Result<Transport, String> {
        Ok(match s {
            "websocket" => Transport::WebSocket,
            "xhr-streaming" => Transport::XhrStreaming,
            "xhr-polling" => Transport::XhrPolling,
            "eventsource" => Transport::EventSource,
            "raw-websocket" => Transport::RawWebSocket,
            _ => return Err(format!("unknown transport {s:?}")),
        })
    }

    /// Whether this is one of the WebSocket transports.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::WebSocket | Transport::RawWebSocket)
    }

    /// File descriptors one session holds on the client.
    pub fn fds_per_session(self) -> u64 {
        if self.is_websocket() { 1 } else { 2 }
    }
}

/// A load run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL as given.
    pub url: String,
    /// Server address (loopback).
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Service prefix path, without a trailing slash (may be empty).
    pub prefix: String,
    /// Transport.
    pub transport: Transport,
    /// Concurrent sessions.
    pub sessions: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Messages in flight per session.
    pub window: usize,
    /// Measured interval (idle mode: how long the sessions are held).
    pub duration: Duration,
    /// Unmeasured traffic before the measured interval.
    pub warmup: Duration,
    /// The server's process id.
    pub pid: Option<u32>,
    /// Idle mode.
    pub idle: bool,
    /// Idle mode: each session echoes one message before it idles.
    pub echo_first: bool,
    /// JSON-like payloads instead of letters.
    pub json: bool,
    /// Offer permessage-deflate with the own client, and count bytes on the wire.
    pub permessage_deflate: bool,
    /// Bound on opening all sessions.
    pub setup_timeout: Duration,
    /// Handshakes in progress at once.
    pub connect_concurrency: usize,
    /// Labels for the RESULT line.
    pub tags: Vec<(String, String)>,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Print the usage.
    Help,
    /// Run a load test.
    Run(Box<Config>),
    /// Summarize RESULT lines from files.
    Summarize {
        /// Result files.
        files: Vec<String>,
        /// The ratio columns.
        compare: Compare,
    },
}

/// Splits a service base URL into address, `Host` value and prefix; loopback only.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| format!("URL must start with http:// (or ws://): {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| format!("bad IPv6 address in {url}"))?;
        (h, p.strip_prefix(':').unwrap_or(""))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, ""),
        }
    };
    let port: u16 = if port.is_empty() {
        80
    } else {
        port.parse().map_err(|_| format!("bad port in {url}"))?
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("host must be an IP address or localhost: {host}"))?
    };
    if !ip.is_loopback() {
        return Err(format!("refusing a non-loopback target: {ip}"));
    }
    if path.contains(['?', '#']) {
        return Err("URL must be a service base without query or fragment".into());
    }
    let prefix = path.trim_end_matches('/').to_owned();
    Ok((SocketAddr::new(ip, port), authority.to_owned(), prefix))
}

fn secs(v: &str, opt: &str) -> Result<Duration, String> {
    let s: f64 = v
        .parse()
        .map_err(|_| format!("{opt}: not a number of seconds: {v}"))?;
    if !(0.0..=MAX_SECS).contains(&s) {
        return Err(format!("{opt}: must be within 0..={MAX_SECS} s"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn count(v: &str, opt: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = v.parse().map_err(|_| format!("{opt}: not a number: {v}"))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{opt}: must be within {min}..={max}"));
    }
    Ok(n)
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut it = args.into_iter().peekable();
    if it.peek().is_some_and(|a| a == "summarize") {
        it.next();
        let mut files = Vec::new();
        let mut vs = Vec::new();
        let mut best_vs = Vec::new();
        let mut pairs = Vec::new();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--vs" => vs.push(it.next().ok_or("--vs needs a server name")?),
                "--best-vs" => best_vs.push(it.next().ok_or("--best-vs needs a server name")?),
                "--pair" => {
                    let pair = it.next().ok_or("--pair needs SERVER/BASE")?;
                    match pair.split_once('/') {
                        Some((s, base)) if !s.is_empty() && !base.is_empty() && s != base => {
                            pairs.push((s.to_owned(), base.to_owned()));
                        }
                        _ => return Err(format!("--pair needs SERVER/BASE, not {pair:?}")),
                    }
                }
                "-h" | "--help" => return Ok(Command::Help),
                _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
                _ => files.push(a),
            }
        }
        if files.is_empty() {
            return Err("summarize needs at least one file".into());
        }
        if vs.is_empty() {
            vs = vec!["node".into(), "raw".into()];
        }
        let compare = Compare { vs, best_vs, pairs };
        return Ok(Command::Summarize { files, compare });
    }

    let mut url = None;
    let mut transport = Transport::WebSocket;
    let mut sessions = 1;
    let mut size = 32;
    let mut window = 1;
    let mut duration = Duration::from_secs(10);
    let mut warmup = Duration::from_secs(1);
    let mut pid = None;
    let mut idle = false;
    let mut echo_first = false;
    let mut json = false;
    let mut permessage_deflate = false;
    let mut setup_timeout = Duration::from_secs(60);
    let mut connect_concurrency = 100;
    let mut tags = Vec::new();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--transport" => transport = Transport::parse(&value()?)?,
            "--sessions" => sessions = count(&value()?, &a, 1, MAX_SESSIONS)?,
            "--size" => size = count(&value()?, &a, 1, MAX_SIZE)?,
            "--window" => window = count(&value()?, &a, 1, MAX_WINDOW)?,
            "--duration" => duration = secs(&value()?, &a)?,
            "--warmup" => warmup = secs(&value()?, &a)?,
            "--setup-timeout" => setup_timeout = secs(&value()?, &a)?,
            "--connect-concurrency" => connect_concurrency = count(&value()?, &a, 1, MAX_SESSIONS)?,
            "--pid" => {
                let v = value()?;
                pid = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("--pid: bad pid {v}"))?,
                );
            }
            "--idle" => idle = true,
            "--echo-first" => echo_first = true,
            "--permessage-deflate" => permessage_deflate = true,
            "--payload" => {
                json = match value()?.as_str() {
                    "letters" => false,
                    "json" => true,
                    other => return Err(format!("--payload: letters or json, not {other:?}")),
                }
            }
            "--tag" => {
                let v = value()?;
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--tag: expected KEY=VALUE, got {v}"))?;
                tags.push((k.to_owned(), val.to_owned()));
            }
            _ if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ if url.is_none() => url = Some(a),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    let url = url.ok_or("missing URL")?;
    let (addr, host, prefix) = parse_url(&url)?;
    if echo_first && !idle {
        return Err("--echo-first is for --idle (every other mode echoes anyway)".into());
    }
    if permessage_deflate && !transport.is_websocket() {
        return Err("--permessage-deflate needs --transport websocket or raw-websocket".into());
    }
    if duration.is_zero() {
        return Err("--duration must be above 0".into());
    }
    Ok(Command::Run(Box::new(Config {
        url,
        addr,
        host,
        prefix,
        transport,
        sessions,
        size,
        window,
        duration,
        warmup,
        pid,
        idle,
        echo_first: echo_first || (idle && permessage_deflate),
        json,
        permessage_deflate,
        setup_timeout,
        connect_concurrency,
        tags,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn urls() {
        let (a, h, p) = parse_url("http://127.0.0.1:8081/echo/").expect("valid");
        assert_eq!(a, "127.0.0.1:8081".parse().expect("addr"));
        assert_eq!(h, "127.0.0.1:8081");
        assert_eq!(p, "/echo");
        let (a, _, p) = parse_url("http://localhost:9").expect("valid");
        assert_eq!(a.port(), 9);
        assert_eq!(p, "");
        let (a, _, _) = parse_url("ws://[::1]:7/x").expect("valid");
        assert!(a.ip().is_loopback());
        assert!(parse_url("http://10.0.0.1:80/echo").is_err());
        assert!(parse_url("http://example.com/echo").is_err());
        assert!(parse_url("https://127.0.0.1/echo").is_err());
        assert!(parse_url("http://127.0.0.1:x/echo").is_err());
        assert!(parse_url("http://127.0.0.1:1/echo?x").is_err());
    }

    #[test]
    fn run_options() {
        let c = parse(args(
            "http://127.0.0.1:1/echo --transport xhr-streaming --sessions 100 --size 1024 \
             --window 32 --duration 2.5 --pid 42 --tag server=node --tag cell=a",
        ));
        let Ok(Command::Run(c)) = c else {
            panic!("expected a run: {c:?}");
        };
        assert_eq!(c.transport, Transport::XhrStreaming);
        assert_eq!((c.sessions, c.size, c.window), (100, 1024, 32));
        assert_eq!(c.duration, Duration::from_millis(2500));
        assert_eq!(c.pid, Some(42));
        assert_eq!(c.tags.len(), 2);
        assert!(!c.idle && !c.json && !c.permessage_deflate);
        let Ok(Command::Run(c)) = parse(args(
            "http://127.0.0.1:1/echo --payload json --permessage-deflate --size 1024",
        )) else {
            panic!("expected a run");
        };
        assert!(c.json && c.permessage_deflate && !c.echo_first);
        for (line, echo_first) in [
            ("--idle", false),
            ("--idle --echo-first", true),
            ("--idle --permessage-deflate", true),
        ] {
            let Ok(Command::Run(c)) = parse(args(&format!("http://127.0.0.1:1/echo {line}")))
            else {
                panic!("expected a run: {line}");
            };
            assert_eq!(c.echo_first, echo_first, "{line}");
        }
    }

    #[test]
    fn bad_options() {
        for bad in [
            "",
            "http://127.0.0.1:1/echo --sessions 0",
            "http://127.0.0.1:1/echo --sessions 1000000",
            "http://127.0.0.1:1/echo --duration -1",
            "http://127.0.0.1:1/echo --duration 0",
            "http://127.0.0.1:1/echo --transport carrier-pigeon",
            "http://127.0.0.1:1/echo --echo-first",
            "http://127.0.0.1:1/echo --permessage-deflate --transport xhr-polling",
            "http://127.0.0.1:1/echo --payload yaml",
            "http://127.0.0.1:1/echo --bogus",
            "http://127.0.0.1:1/echo --window",
            "http://127.0.0.1:1/echo --tag novalue",
            "summarize",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn summarize_and_help() {
        match parse(args("summarize a.txt --vs node")) {
            Ok(Command::Summarize { files, compare }) => {
                assert_eq!(files, ["a.txt"]);
                assert_eq!(compare.vs, ["node"]);
                assert!(compare.best_vs.is_empty() && compare.pairs.is_empty());
            }
            other => panic!("expected summarize: {other:?}"),
        }
        match parse(args("summarize --best-vs go --pair smol/raw-smol a.txt")) {
            Ok(Command::Summarize { compare, .. }) => {
                assert_eq!(compare.vs, ["node", "raw"]);
                assert_eq!(compare.best_vs, ["go"]);
                assert_eq!(compare.pairs, [("smol".to_owned(), "raw-smol".to_owned())]);
            }
            other => panic!("expected summarize: {other:?}"),
        }
        assert!(parse(args("summarize a.txt --best-vs")).is_err());
        for bad in ["smol", "/raw", "smol/", "smol/smol"] {
            assert!(
                parse(args(&format!("summarize a.txt --pair {bad}"))).is_err(),
                "{bad}"
            );
        }
        assert!(matches!(parse(args("--help")), Ok(Command::Help)));
    }
}
