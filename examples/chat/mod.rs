//! The chat example, written once for both adapters: the command line, the room's session
//! handler and the page (`page.html`). `sockjs-tokio/examples/chat.rs` and
//! `sockjs-smol/examples/chat.rs` include this file as their `chat` module and name their
//! adapter `adapter` at their root (`use sockjs_tokio as adapter;`); everything here uses
//! only what both adapters offer under the same names (`Session`, `Options`,
//! `broadcast::Broadcast`, `broadcast::redis`), and `cfg(feature = "redis")` is the
//! including adapter's feature. What is left to each example is serving: mounting the
//! service, the page and the metrics, the `X-Node` header, signals and graceful shutdown.
//!
//! Both serve `GET /metrics`: the service's counters in the Prometheus text format (the
//! series are documented in sockjs-core's `driver::metrics`).

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::adapter::broadcast::Broadcast;
use crate::adapter::{CloseReason, Options, Session};

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// sockjs-client from a CDN, one exact version, which the page checks against its
/// integrity hash (a script changed on the CDN does not run); the service's iframe page
/// loads the same.
const DEFAULT_SOCKJS_URL: &str =
    "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js";
/// The Subresource Integrity hash of [`DEFAULT_SOCKJS_URL`] (sockjs-client 1.6.1's
/// `dist/sockjs.min.js` as npm publishes it, which the CDN serves).
const DEFAULT_SOCKJS_INTEGRITY: &str =
    "sha384-svdnwiXBL+Js+yUneJSRFy24NgGiOfDM/vkQl/vCeVrcbYD6yW8EwPr1FnxTEZsR";
/// Where the service is mounted (the page connects there, and the balancer configurations
/// in `deploy/` route by the server id after it).
pub const PREFIX: &str = "/chat";
/// The one topic everybody joins.
const ROOM: &str = "room";
/// What sessions get when a node shuts down gracefully.
pub const SHUTDOWN_CODE: u16 = 1001;
pub const SHUTDOWN_REASON: &str = "Server shutting down";

/// Where the chat serves `--sockjs-file`.
pub const SCRIPT_PATH: &str = "/sockjs.min.js";
/// Where the chat serves its metrics.
pub const METRICS_PATH: &str = "/metrics";
/// The content type of the Prometheus text format.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The services' counters in the Prometheus text format, for [`METRICS_PATH`].
pub fn metrics_text(metrics: &[crate::adapter::metrics::Metrics]) -> String {
    let mut text = String::new();
    crate::adapter::metrics::write_prometheus(&mut text, metrics);
    text
}

/// The command line: `[ADDR] [--sockjs-url URL] [--sockjs-file PATH] [--node NAME]
/// [--redis URL]`.
pub struct Args {
    addr: String,
    sockjs_url: String,
    /// The contents of `--sockjs-file`, served at [`SCRIPT_PATH`].
    script: Option<Vec<u8>>,
    node: Option<String>,
    redis: Option<String>,
}

impl Args {
    /// Reads the command line; exits with a usage message if it is wrong.
    pub fn parse() -> Args {
        Args::parse_from(std::env::args().skip(1))
    }

    /// Reads these arguments (the command line without the program's name).
    pub fn parse_from(args: impl IntoIterator<Item = String>) -> Args {
        let mut parsed = Args {
            addr: DEFAULT_ADDR.to_owned(),
            sockjs_url: DEFAULT_SOCKJS_URL.to_owned(),
            script: None,
            node: None,
            redis: None,
        };
        let mut url_given = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .unwrap_or_else(|| usage(&format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--sockjs-url" => {
                    parsed.sockjs_url = value("--sockjs-url");
                    url_given = true;
                }
                "--sockjs-file" => {
                    let path = value("--sockjs-file");
                    let script = std::fs::read(&path)
                        .unwrap_or_else(|error| usage(&format!("cannot read {path}: {error}")));
                    parsed.script = Some(script);
                }
                "--node" => parsed.node = Some(value("--node")),
                "--redis" => parsed.redis = Some(value("--redis")),
                other if !other.starts_with('-') => other.clone_into(&mut parsed.addr),
                other => usage(&format!("unknown argument {other}")),
            }
        }
        if parsed.script.is_some() && !url_given {
            SCRIPT_PATH.clone_into(&mut parsed.sockjs_url);
        }
        parsed
    }

    /// The room's hub: in process, or shared with every node on the same Redis
    /// (`--redis`, with the adapter's `redis` feature).
    pub fn hub(&self) -> Broadcast {
        match &self.redis {
            None => Broadcast::new(),
            #[cfg(feature = "redis")]
            // The URL is not echoed: it may hold a password.
            Some(url) => crate::adapter::broadcast::redis(url)
                .unwrap_or_else(|error| usage(&format!("bad --redis URL: {error}"))),
            #[cfg(not(feature = "redis"))]
            Some(_) => usage("--redis needs the redis feature: cargo run --features redis ..."),
        }
    }

    /// The service's options: where the page and the service's iframe page load
    /// sockjs-client from.
    pub fn options(&self) -> Options {
        Options {
            sockjs_url: self.sockjs_url.clone(),
            ..Options::default()
        }
    }

    /// The page, loading sockjs-client from `--sockjs-url` (the default checked against
    /// its integrity hash; another URL is the user's to vouch for).
    pub fn page(&self) -> String {
        let integrity = if self.sockjs_url == DEFAULT_SOCKJS_URL {
            format!(r#" integrity="{DEFAULT_SOCKJS_INTEGRITY}" crossorigin="anonymous""#)
        } else {
            String::new()
        };
        include_str!("page.html")
            .replace("SOCKJS_INTEGRITY", &integrity)
            .replace("SOCKJS_URL", &self.sockjs_url)
    }

    /// sockjs-client from `--sockjs-file`, to serve at [`SCRIPT_PATH`].
    pub fn script(&self) -> Option<Vec<u8>> {
        self.script.clone()
    }

    /// Binds ADDR (exits if it cannot); returns the listener, non-blocking, and the node's
    /// name (`--node`, by default the bound address), checked to fit an `X-Node` header.
    pub fn listen(&self) -> (TcpListener, String) {
        let listener = TcpListener::bind(&self.addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .unwrap_or_else(|error| {
                eprintln!("cannot bind {}: {error}", self.addr);
                std::process::exit(1);
            });
        let local = listener
            .local_addr()
            .map_or_else(|_| self.addr.clone(), |a| a.to_string());
        let node = self.node.clone().unwrap_or_else(|| local.clone());
        if http::HeaderValue::from_str(&node).is_err() {
            usage("bad --node");
        }
        println!("chat on http://{local} (node {node})");
        (listener, node)
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "usage: chat [ADDR] [--sockjs-url URL] [--sockjs-file PATH] [--node NAME] [--redis URL] \
         ({problem})"
    );
    std::process::exit(2);
}

/// Session opens and closes, Redis outages and recoveries: to stderr.
pub fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .init();
}

/// A name without control characters nor the invisible ones that would let a name pass
/// for another (checked before trimming, so that they cannot hide blanks), variation
/// selectors kept (a registered name's glyph: 葛󠄀), at most `max` characters; empty if
/// nothing in it would show ([`visible`]).
fn clean_name(text: &str, max: usize) -> String {
    shown(text, max, |c| !invisible(c) || selector(c))
}

/// A message as [`clean_name`] cleans a name, but with the zero-width joiner and
/// non-joiner and the tags kept too: emoji sequences (👩‍💻, 🏴󠁧󠁢󠁳󠁣󠁴󠁿) and scripts such as
/// Persian need them, and they neither reorder text nor make it blank.
fn clean_text(text: &str, max: usize) -> String {
    shown(text, max, |c| {
        !invisible(c) || selector(c) || matches!(c, '\u{200c}' | '\u{200d}') || tag(c)
    })
}

/// `text` without control characters and without what `keep` refuses, trimmed, with
/// [`capped_marks`], at most `max` characters; empty if nothing in it would show.
fn shown(text: &str, max: usize, keep: impl Fn(char) -> bool) -> String {
    let kept: String = text
        .chars()
        .filter(|&c| !c.is_control() && keep(c))
        .collect();
    let shown: String = capped_marks(kept.trim().chars()).take(max).collect();
    if shown.chars().any(visible) {
        shown
    } else {
        String::new()
    }
}

/// Variation selectors: the emoji and text ones, the ideographic ones, the Mongolian
/// free ones (which choose a letter's shape).
fn selector(c: char) -> bool {
    matches!(c,
        '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}' | '\u{180b}'..='\u{180d}'
        | '\u{180f}')
}

/// Tags, which spell a subdivision's flag after 🏴 (England, Scotland, Wales).
fn tag(c: char) -> bool {
    matches!(c, '\u{e0020}'..='\u{e007f}')
}

/// At most [`MARKS`] combining marks on one character: no language needs more, and a
/// letter under a thousand of them draws over the messages around it. Joiners, selectors
/// and tags between the marks do not start a new character.
fn capped_marks(chars: impl Iterator<Item = char>) -> impl Iterator<Item = char> {
    let mut run = 0;
    chars.filter(move |&c| {
        if mark(c) {
            run += 1;
        } else if visible(c) || c.is_whitespace() {
            run = 0;
        }
        !mark(c) || run <= MARKS
    })
}

const MARKS: usize = 4;

/// Combining marks of the blocks made of nothing else (diacritics, their extensions and
/// supplement, the ones for symbols, the half marks).
fn mark(c: char) -> bool {
    matches!(c,
        '\u{300}'..='\u{36f}' | '\u{483}'..='\u{489}' | '\u{1ab0}'..='\u{1aff}'
        | '\u{1dc0}'..='\u{1dff}' | '\u{20d0}'..='\u{20ff}' | '\u{fe20}'..='\u{fe2f}')
}

/// A character that shows as something: not a space, a mark, a joiner, a selector or a
/// tag, nor a blank that is a letter or a symbol (the Braille blank).
fn visible(c: char) -> bool {
    !c.is_whitespace()
        && !mark(c)
        && !selector(c)
        && !tag(c)
        && !matches!(c, '\u{200c}' | '\u{200d}' | '\u{2800}')
}

/// The close of a session whose name has nothing visible left once cleaned: told, not
/// left waiting for a name it cannot give.
const NO_NAME: (u16, &str) = (4002, "A name needs a visible character");

/// Characters that hide or reorder text: format characters (Unicode's Cf: the soft
/// hyphen, zero-width spaces and joiners, direction marks, embeddings and overrides,
/// invisible operators, the byte order mark, interlinear annotation, tags), the rest of
/// the default-ignorable ones (the grapheme joiner, the Hangul fillers, which are letters
/// that draw nothing, the Khmer inherent vowels, the Mongolian and other variation
/// selectors, shorthand format controls, musical formatting).
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
        | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}' | '\u{180b}'..='\u{180f}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fff0}'..='\u{fffb}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

/// Messages a session may say at once, and how many more each second after that: beyond,
/// they are dropped and the user is told to slow down (a flood would fill every member's
/// queue, and the room's messages would then be dropped instead). Per session: a client
/// that opens many sessions has a pace in each; a public service bounds clients
/// themselves (SECURITY.md, "One client and the shared limits"), which a demo on one
/// machine, where every user is 127.0.0.1, cannot do by address.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 5.0;

/// A token bucket of [`BURST`] refilled at [`PER_SECOND`].
struct Pace {
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            tokens: BURST,
            at: Instant::now(),
        }
    }

    /// Whether one more message may go now.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// One chat session: a welcome naming the node, then `{"nick": ...}` to join the room
/// (answered with `{"type":"you"}`: the name as cleaned, and the `from` tag the server puts
/// on this user's messages, which no client can set, so a page knows its own messages even
/// when another user takes the same name), then `{"text": ...}` to say something to
/// everyone in it, on every node, at most [`BURST`] at once and [`PER_SECOND`] after that.
pub async fn session(hub: Broadcast, node: String, mut session: Session) {
    let transport = session.transport().name();
    let _ = session
        .send(json!({"type": "welcome", "node": node}).to_string())
        .await;
    // The first message names the user: {"nick": "..."}.
    let nick = loop {
        let Some(text) = session.recv().await else {
            return;
        };
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let Some(given) = parsed["nick"].as_str() else {
            continue;
        };
        let nick = clean_name(given, 24);
        if nick.is_empty() {
            let (code, reason) = NO_NAME;
            let _ = session.close(code, reason);
            return;
        }
        break nick;
    };
    // Unique across the cluster even if two nodes are given one name: the node's name, a
    // random number drawn once per process, a count.
    static RUN: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one("chat"));
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let from = format!(
        "{node}/{:x}/{}",
        *RUN & 0xffff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let _ = session
        .send(json!({"type": "you", "nick": nick, "from": from}).to_string())
        .await;
    // Everyone in the room, on this node and (with Redis) on every other one. The member
    // leaves the room when it is dropped, at the end of this function.
    let member = hub.member(session.sender());
    member.join(ROOM);
    let said = |message: Value| hub.publish(ROOM, &message.to_string());
    said(json!({"type": "join", "nick": nick, "from": from, "transport": transport, "node": node}));
    let mut pace = Pace::new();
    while let Some(text) = session.recv().await {
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let text = clean_text(parsed["text"].as_str().unwrap_or(""), 2000);
        if text.is_empty() {
            continue;
        }
        if !pace.take() {
            let _ = session.try_send(json!({"type": "slow"}).to_string());
            continue;
        }
        said(json!({
            "type": "say", "nick": nick, "from": from, "transport": transport, "node": node,
            "text": text
        }));
    }
    drop(member);
    // A node going away closes its sessions, and their users come back on another node,
    // where they join again: they did not leave the room, so no goodbye then. (Were one
    // sent, it could not reach a session of this node ahead of its close frame: the
    // driver closes them all before any handler learns of its own session's end.)
    let shutting_down = matches!(
        session.close_reason(),
        Some(CloseReason::Closed {
            code: SHUTDOWN_CODE,
            ..
        })
    );
    if !shutting_down {
        said(json!({"type": "leave", "nick": nick, "from": from, "node": node}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_nothing_visible_are_refused_and_hidden_characters_dropped() {
        for blank in [
            "\u{3164}",
            "\u{115f}\u{1160}",
            "\u{ffa0}",
            "\u{2800}",
            "\u{fe0f}\u{fe0f}",
            "\u{e0020}\u{e0041}",
            " \u{200b} ",
            "\u{301}\u{302}",
        ] {
            assert_eq!(clean_name(blank, 24), "", "{blank:?}");
        }
        assert_eq!(clean_name("ann\u{e0020}", 24), "ann");
        assert_eq!(clean_name("a\u{3164}nn", 24), "ann");
        assert_eq!(clean_name("  Zoë ", 24), "Zoë");
        assert_eq!(clean_name("❤\u{fe0f}", 24), "❤\u{fe0f}");
        assert_eq!(clean_name("👩\u{200d}💻", 24), "👩💻");
    }

    #[test]
    fn messages_keep_joiners_and_selectors_and_at_most_four_marks_a_character() {
        assert_eq!(
            clean_text("👩\u{200d}💻 ❤\u{fe0f}", 100),
            "👩\u{200d}💻 ❤\u{fe0f}"
        );
        let zalgo: String = std::iter::once('a')
            .chain(std::iter::repeat_n('\u{301}', 1000))
            .collect();
        assert_eq!(clean_text(&zalgo, 2000), "a\u{301}\u{301}\u{301}\u{301}");
        assert_eq!(clean_text("e\u{301}e\u{302}", 100), "e\u{301}e\u{302}");
        assert_eq!(clean_text("\u{3164}\u{fe0f}", 100), "");
        // Joiners between the marks do not start a new character.
        let hidden: String = std::iter::once('a')
            .chain(std::iter::repeat_n("\u{301}\u{301}\u{200d}", 100).flat_map(str::chars))
            .collect();
        assert_eq!(
            clean_text(&hidden, 2000)
                .chars()
                .filter(|&c| mark(c))
                .count(),
            4
        );
        // Scotland's flag, Mongolian with a free variation selector, Thai, Hindi, Arabic,
        // Korean, Vietnamese (decomposed) come through whole.
        for text in [
            "🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
            "\u{1820}\u{180b}\u{1821}",
            "สวัสดีครับ",
            "नमस्ते",
            "مرحبا",
            "안녕하세요",
            "Vie\u{323}\u{302}t Nam",
        ] {
            assert_eq!(clean_text(text, 100), text);
        }
    }
}
