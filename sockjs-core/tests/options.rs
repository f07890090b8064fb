//! The options that go beyond the protocol's defaults, one test per rule on a virtual
//! clock: the defaults themselves, the transport set (§2), the JSESSIONID cookie's forms
//! (§3.4) and `cookie_needed` (§4.2), the client URL check (§4.3), heartbeats off
//! (§7.1.3) and WebSocket dead-peer detection (§9.2). Test names cite the section.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{App, Harness, ms};
use http::HeaderValue;
use sockjs_core::{
    AbortPolicy, CloseReason, CookieAttributes, DEFAULT_SOCKJS_URL, Jsessionid, Options,
    OptionsError, OriginPolicy, PingOptions, ProtocolVersion, SameSite, SessionBinding, Transport,
    Transports,
};

fn info(h: &mut Harness) -> serde_json::Value {
    let id = h.get("/info");
    serde_json::from_str(&h.ex(id).body()).expect("json")
}

// ---- defaults -------------------------------------------------------------------------------

/// The defaults PROTOCOL.md states: §1's delays and response limit, and the sockjs-rs
/// notes' own: all seven transports (§2), `max_request_body` 256 KiB (§2), no cookie and
/// no binding (§3.4), node's client URL (§4.3), `AbortPolicy::CloseSession`,
/// `max_queued_bytes` 1 MiB and `max_sessions` 100 000 (§7.1), hixie-76 and
/// permessage-deflate off (§9.1), `max_message_size` 256 KiB and no `websocket_ping`
/// (§9.2), the current protocol (§12), and any origin (§3.3).
#[test]
fn s1_defaults_are_the_documented_ones() {
    let o = Options::default();
    assert_eq!(o.heartbeat_delay, Some(Duration::from_secs(25)));
    assert_eq!(o.disconnect_delay, Duration::from_secs(5));
    assert_eq!(o.response_limit, 131_072);
    assert_eq!(o.transports, Transports::ALL);
    assert_eq!(o.max_request_body, 256 * 1024);
    assert!(!o.jsessionid.is_on());
    assert_eq!(o.session_binding, SessionBinding::None);
    assert_eq!(o.sockjs_url, DEFAULT_SOCKJS_URL);
    assert_eq!(
        DEFAULT_SOCKJS_URL,
        "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"
    );
    assert_eq!(o.abort, AbortPolicy::CloseSession);
    assert_eq!(o.max_queued_bytes, 1024 * 1024);
    assert_eq!(o.max_sessions, 100_000);
    assert!(!o.hixie76);
    assert_eq!(o.permessage_deflate, None);
    assert_eq!(o.max_message_size, 256 * 1024);
    assert_eq!(o.websocket_ping, None);
    assert_eq!(o.protocol, ProtocolVersion::Current);
    assert!(matches!(o.origins, OriginPolicy::Any));
    assert_eq!(o.validate(), Ok(()));
    // node's dead-peer figures (§9.2) are `PingOptions::default()`.
    assert_eq!(
        PingOptions::default(),
        PingOptions {
            interval: Duration::from_secs(25),
            timeout: Duration::from_secs(10),
        }
    );
}

/// §4.3: the client URL must start with `/` or `http` and hold no `"`; the sockjs-rs note
/// adds `<`, `>`, CR and LF. `Engine::new` refuses what `validate` refuses.
#[test]
fn s4_3_sockjs_url_refuses_quotes_angle_brackets_and_line_breaks() {
    let with_url = |url: &str| Options {
        sockjs_url: url.into(),
        ..Options::default()
    };
    for url in [
        "/s.js\"",
        "/s.js<",
        "/s.js>",
        "http://x/</script>.js",
        "/s.js\r",
        "/s.js\n",
        "http://x/a\r\nSet-Cookie: a=b",
        "ftp://x/s.js",
        "s.js",
        "",
    ] {
        assert_eq!(
            with_url(url).validate(),
            Err(OptionsError::SockjsUrl),
            "{url:?}"
        );
        let start = sockjs_core::Start {
            now: std::time::Instant::now(),
            wall_clock: std::time::SystemTime::UNIX_EPOCH,
            seed: 1,
        };
        assert!(
            sockjs_core::Engine::new(with_url(url), start).is_err(),
            "{url:?}"
        );
    }
    for url in ["/s.js", "http://x/s.js", "https://x/s.js?v=1&a=%3C"] {
        assert_eq!(with_url(url).validate(), Ok(()), "{url:?}");
    }
}

// ---- §2 transports on and off --------------------------------------------------------------

/// The requests that reach each transport's own endpoints, with what an enabled endpoint
/// answers first (`o` for receivers, the 101 for WebSockets).
fn own_endpoints(t: Transport) -> Vec<(&'static str, &'static str)> {
    match t {
        Transport::WebSocket => vec![("GET", "/a/{}/websocket")],
        Transport::RawWebSocket => vec![("GET", "/websocket")],
        Transport::XhrPolling => vec![("POST", "/a/{}/xhr"), ("OPTIONS", "/a/{}/xhr")],
        Transport::XhrStreaming => vec![
            ("POST", "/a/{}/xhr_streaming"),
            ("OPTIONS", "/a/{}/xhr_streaming"),
        ],
        Transport::EventSource => vec![("GET", "/a/{}/eventsource")],
        Transport::HtmlFile => vec![("GET", "/a/{}/htmlfile?c=cb")],
        Transport::JsonpPolling => vec![("GET", "/a/{}/jsonp?c=cb"), ("POST", "/a/{}/jsonp_send")],
    }
}

fn hit(h: &mut Harness, method: &str, path: &str, sid: &str) -> u16 {
    let path = path.replace("{}", sid);
    let id = if path.ends_with("websocket") {
        h.ws_open(&path)
    } else if path.ends_with("jsonp_send") {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        h.request(method, &path, &form, "d=[]")
    } else {
        h.request(method, &path, &[], "")
    };
    h.ex(id).status()
}

#[test]
fn s2_each_transport_off_has_no_route_and_the_others_still_work() {
    for off in Transport::ALL {
        let options = Options {
            transports: Transports::ALL.without(off),
            ..Options::default()
        };
        let mut h = Harness::new(options, App::Echo);
        for (n, t) in Transport::ALL.into_iter().enumerate() {
            for (method, path) in own_endpoints(t) {
                let status = hit(&mut h, method, path, &format!("s{n}"));
                if t == off {
                    assert_eq!(status, 404, "{off:?} off: {method} {path}");
                } else if path.ends_with("jsonp_send") {
                    assert_eq!(status, 200, "{off:?} off: {method} {path}"); // session exists
                } else {
                    assert!(
                        [101, 200, 204].contains(&status),
                        "{off:?} off: {method} {path}"
                    );
                }
            }
        }
        assert_eq!(hit(&mut h, "GET", "/", ""), 200);
        assert_eq!(hit(&mut h, "GET", "/iframe.html", ""), 200);
        assert_eq!(info(&mut h)["websocket"], off != Transport::WebSocket);
    }
}

#[test]
fn s2_senders_follow_their_receivers() {
    let xhr_send_users = [
        Transport::XhrPolling,
        Transport::XhrStreaming,
        Transport::EventSource,
        Transport::HtmlFile,
    ];
    let without = |set: &[Transport]| set.iter().fold(Transports::ALL, |a, t| a.without(*t));
    // xhr_send lives while any receiver that sends through it does.
    for keep in xhr_send_users {
        let others: Vec<Transport> = xhr_send_users.into_iter().filter(|t| *t != keep).collect();
        let mut h = Harness::new(
            Options {
                transports: without(&others),
                ..Options::default()
            },
            App::Echo,
        );
        let (method, path) = own_endpoints(keep)[0];
        hit(&mut h, method, path, "k");
        let send = h.post("/a/k/xhr_send", "[\"x\"]");
        assert_eq!(h.ex(send).status(), 204, "only {keep:?} on");
    }
    let mut h = Harness::new(
        Options {
            transports: without(&xhr_send_users),
            ..Options::default()
        },
        App::Echo,
    );
    let jsonp = h.get("/a/j/jsonp?c=cb");
    assert_eq!(h.ex(jsonp).body(), "/**/cb(\"o\");\r\n");
    for method in ["POST", "OPTIONS"] {
        let send = h.request(method, "/a/j/xhr_send", &[], "[\"x\"]");
        assert_eq!(h.ex(send).status(), 404, "{method}");
    }
    let send = h.request(
        "POST",
        "/a/j/jsonp_send",
        &[("content-type", "application/x-www-form-urlencoded")],
        "d=[\"x\"]",
    );
    assert_eq!(h.ex(send).body(), "ok");
}

#[test]
fn s2_only_websockets() {
    let sockets: Transports = [Transport::WebSocket, Transport::RawWebSocket]
        .into_iter()
        .collect();
    let mut h = Harness::new(
        Options {
            transports: sockets,
            ..Options::default()
        },
        App::Echo,
    );
    for path in [
        "/a/b/xhr",
        "/a/b/xhr_streaming",
        "/a/b/xhr_send",
        "/a/b/jsonp_send",
    ] {
        let id = h.post(path, "");
        assert_eq!(h.ex(id).status(), 404, "{path}");
    }
    for path in ["/a/b/eventsource", "/a/b/htmlfile?c=x", "/a/b/jsonp?c=x"] {
        let id = h.get(path);
        assert_eq!(h.ex(id).status(), 404, "{path}");
    }
    assert_eq!(h.engine.session_count(), 0, "no session was created");
    let ws = h.ws_open("/a/b/websocket");
    assert_eq!(h.ex(ws).ws_texts, ["o"]);
    let raw = h.ws_open("/websocket");
    assert_eq!(h.ex(raw).status(), 101);
    assert_eq!(info(&mut h)["websocket"], true);
}

#[test]
fn s4_2_info_websocket_follows_the_transport_set() {
    let raw_off = Transports::ALL.without(Transport::RawWebSocket);
    let mut h = Harness::new(
        Options {
            transports: raw_off,
            ..Options::default()
        },
        App::Echo,
    );
    assert_eq!(
        info(&mut h)["websocket"],
        true,
        "only the SockJS WebSocket counts"
    );
    let ws = h.ws_open("/a/b/websocket");
    assert_eq!(h.ex(ws).ws_texts, ["o"]);
    let raw = h.ws_open("/websocket");
    assert_eq!(h.ex(raw).status(), 404);
}

#[test]
fn s7_1_2_attached_receiver_ignores_disabled_transports() {
    let mut h = Harness::new(
        Options {
            transports: Transports::ALL.without(Transport::XhrStreaming),
            ..Options::default()
        },
        App::Echo,
    );
    h.post("/a/r/xhr", "");
    h.post("/a/r/xhr", ""); // held
    let head = |uri: &str| {
        http::Request::post(uri)
            .body(())
            .expect("head")
            .into_parts()
            .0
    };
    assert!(h.engine.attached_receiver(&head("/a/r/xhr")).is_some());
    assert_eq!(
        h.engine.attached_receiver(&head("/a/r/xhr_streaming")),
        None
    );
}

// ---- §3.4 the JSESSIONID cookie ------------------------------------------------------------

/// Every response that carries the cookie (§3.4), on session `sid`, with extra headers.
fn cookie_responses(h: &mut Harness, sid: &str, headers: &[(&str, &str)]) -> Vec<Option<String>> {
    let form = [
        headers,
        &[("content-type", "application/x-www-form-urlencoded")],
    ]
    .concat();
    let mut ids = vec![
        h.request("POST", &format!("/a/{sid}/xhr"), headers, ""),
        h.request("POST", &format!("/a/{sid}/xhr_send"), headers, "[]"),
        h.request("OPTIONS", &format!("/a/{sid}/xhr"), headers, ""),
        h.request("POST", &format!("/a/{sid}s/xhr_streaming"), headers, ""),
        h.request("GET", &format!("/a/{sid}e/eventsource"), headers, ""),
        h.request("GET", &format!("/a/{sid}h/htmlfile?c=cb"), headers, ""),
        h.request("GET", &format!("/a/{sid}j/jsonp?c=cb"), headers, ""),
    ];
    ids.push(h.request("POST", &format!("/a/{sid}j/jsonp_send"), &form, "d=[]"));
    ids.iter()
        .map(|id| h.ex(*id).header("set-cookie"))
        .collect()
}

fn no_cookie_on_static_endpoints(h: &mut Harness) {
    for path in ["/info", "/", "/iframe.html"] {
        let id = h.get(path);
        assert_eq!(h.ex(id).header("set-cookie"), None, "{path}");
    }
}

#[test]
fn s3_4_jsessionid_echo_with_name_and_attributes() {
    let attributes = CookieAttributes::new()
        .with_name("SRV")
        .and_then(|a| a.with_domain("example.com"))
        .expect("valid")
        .with_same_site(SameSite::None)
        .with_http_only(true)
        .with_max_age(Duration::from_secs(600));
    let mut h = Harness::new(
        Options {
            jsessionid: Jsessionid::Echo(attributes),
            ..Options::default()
        },
        App::Echo,
    );
    let tail = "; path=/; Domain=example.com; Max-Age=600; Secure; HttpOnly; SameSite=None";
    for cookie in cookie_responses(&mut h, "d", &[]) {
        assert_eq!(cookie, Some(format!("SRV=dummy{tail}")));
    }
    // The client's cookie of that name is echoed; a JSESSIONID is not that cookie.
    let jar = [("cookie", "JSESSIONID=other; SRV=node7")];
    for cookie in cookie_responses(&mut h, "v", &jar) {
        assert_eq!(cookie, Some(format!("SRV=node7{tail}")));
    }
    no_cookie_on_static_endpoints(&mut h);
    assert_eq!(info(&mut h)["cookie_needed"], true);
}

#[test]
fn s3_4_jsessionid_default_echo_is_exactly_the_protocols() {
    for jsessionid in [Jsessionid::echo(), true.into()] {
        let mut h = Harness::new(
            Options {
                jsessionid,
                ..Options::default()
            },
            App::Echo,
        );
        for cookie in cookie_responses(&mut h, "d", &[]) {
            assert_eq!(cookie.as_deref(), Some("JSESSIONID=dummy; path=/"));
        }
        for cookie in cookie_responses(&mut h, "v", &[("cookie", "JSESSIONID=abcdef")]) {
            assert_eq!(cookie.as_deref(), Some("JSESSIONID=abcdef; path=/"));
        }
    }
}

#[test]
fn s3_4_jsessionid_custom_cookie_from_the_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let jsessionid = Jsessionid::custom(move |request| {
        counted.fetch_add(1, Ordering::Relaxed);
        let node = request.headers.get("x-node")?.to_str().ok()?;
        let path = request.uri.path();
        let value = format!("LB={node}; Path=/; Secure; SameSite=None; X={}", path.len());
        HeaderValue::from_str(&value).ok()
    });
    let mut h = Harness::new(
        Options {
            jsessionid,
            ..Options::default()
        },
        App::Echo,
    );
    for cookie in cookie_responses(&mut h, "c", &[("x-node", "n1")]) {
        let cookie = cookie.expect("the custom cookie");
        assert!(
            cookie.starts_with("LB=n1; Path=/; Secure; SameSite=None; X="),
            "{cookie}"
        );
    }
    let seen = calls.load(Ordering::Relaxed);
    assert_eq!(seen, 8, "once per cookie-carrying response");
    for cookie in cookie_responses(&mut h, "n", &[]) {
        assert_eq!(cookie, None, "the function chose no cookie");
    }
    no_cookie_on_static_endpoints(&mut h);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        16,
        "never called for static endpoints"
    );
    assert_eq!(info(&mut h)["cookie_needed"], true);
}

#[test]
fn s3_4_cookie_binding_uses_the_configured_cookie() {
    let attributes = CookieAttributes::new()
        .with_name("SRV")
        .expect("valid")
        .with_same_site(SameSite::None);
    let mut h = Harness::new(
        Options {
            jsessionid: Jsessionid::Echo(attributes),
            session_binding: SessionBinding::Cookie,
            ..Options::default()
        },
        App::Echo,
    );
    let open = h.post("/a/b/xhr", "");
    let cookie = h.ex(open).header("set-cookie").expect("a cookie");
    let value = cookie
        .strip_prefix("SRV=")
        .and_then(|c| c.strip_suffix("; path=/; Secure; SameSite=None"))
        .expect("format");
    assert!(value != "dummy" && value.len() >= 16, "{value}");
    let thief = h.request(
        "POST",
        "/a/b/xhr_send",
        &[("cookie", "JSESSIONID=x")],
        "[\"x\"]",
    );
    assert_eq!(h.ex(thief).status(), 404);
    let jar = format!("SRV={value}");
    let send = h.request("POST", "/a/b/xhr_send", &[("cookie", &jar)], "[\"x\"]");
    assert_eq!(h.ex(send).status(), 204);
    let poll = h.request("POST", "/a/b/xhr", &[("cookie", &jar)], "");
    assert_eq!(h.ex(poll).body(), "a[\"x\"]\n");
}

// ---- §4.2 cookie_needed ------------------------------------------------------------------

#[test]
fn s4_2_cookie_needed_for_every_binding() {
    let cases = [
        (Jsessionid::Off, SessionBinding::None, false),
        (Jsessionid::Off, SessionBinding::PeerIp, false),
        (Jsessionid::Off, SessionBinding::Cookie, true),
        (Jsessionid::echo(), SessionBinding::None, true),
        (Jsessionid::echo(), SessionBinding::Cookie, true),
        (Jsessionid::custom(|_| None), SessionBinding::PeerIp, true),
    ];
    for (jsessionid, session_binding, needed) in cases {
        let label = format!("{jsessionid:?} {session_binding:?}");
        let mut h = Harness::new(
            Options {
                jsessionid,
                session_binding,
                ..Options::default()
            },
            App::Echo,
        );
        assert_eq!(info(&mut h)["cookie_needed"], needed, "{label}");
        let id = h.get("/info");
        assert_eq!(h.ex(id).header("set-cookie"), None, "{label}");
    }
}

// ---- §7.1.3 heartbeats off ---------------------------------------------------------------

fn heartbeats_off() -> Harness {
    Harness::new(
        Options {
            heartbeat_delay: None,
            response_limit: 4096,
            ..Options::default()
        },
        App::Echo,
    )
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn s7_1_3_heartbeats_off_no_h_on_any_http_receiver() {
    let mut h = heartbeats_off();
    let mut held = Vec::new();
    for (method, path) in [("POST", "/a/1/xhr"), ("GET", "/a/2/jsonp?c=cb")] {
        h.request(method, path, &[], ""); // `o`
        held.push(h.request(method, path, &[], ""));
    }
    for (method, path) in [
        ("POST", "/a/3/xhr_streaming"),
        ("GET", "/a/4/eventsource"),
        ("GET", "/a/5/htmlfile?c=cb"),
    ] {
        held.push(h.request(method, path, &[], "")); // prelude and `o`, then nothing
    }
    let before: Vec<usize> = held.iter().map(|id| h.ex(*id).chunks.len()).collect();
    h.advance(HOUR);
    for (id, before) in held.iter().zip(before) {
        let ex = h.ex(*id);
        assert!(!ex.done(), "{id:?} still held");
        assert_eq!(ex.chunks.len(), before, "{id:?}: no h frame");
    }
    assert!(
        h.closed.is_empty(),
        "attached receivers keep their sessions"
    );
    assert_eq!(h.engine.poll_timeout(), None, "no timer at all");
}

#[test]
fn s7_1_3_heartbeats_off_polls_end_by_message_and_streams_by_limit() {
    let mut h = heartbeats_off();
    h.post("/a/p/xhr", "");
    let poll = h.post("/a/p/xhr", "");
    h.advance(HOUR);
    assert!(!h.ex(poll).done());
    h.post("/a/p/xhr_send", "[\"x\"]");
    assert_eq!(
        h.ex(poll).body(),
        "a[\"x\"]\n",
        "a poll still ends with one frame"
    );
    // Detached: the session expires after the disconnect delay, as ever.
    h.advance(Duration::from_secs(5) - ms(1));
    assert!(h.closed.is_empty());
    h.advance(ms(1));
    assert_eq!(h.closed[0].1, CloseReason::Timeout);

    let stream = h.post("/a/s/xhr_streaming", "");
    let message = format!("[\"{}\"]", "x".repeat(128));
    for _ in 0..30 {
        h.post("/a/s/xhr_send", &message);
    }
    h.advance(HOUR);
    assert!(!h.ex(stream).ended, "below the limit, the stream stays");
    h.post("/a/s/xhr_send", &message);
    assert!(h.ex(stream).ended, "the 31st frame reaches the limit (§8)");
    assert_eq!(h.ex(stream).chunks.len(), 1 + 1 + 31);
}

#[test]
fn s9_2_heartbeats_off_no_h_and_no_ping_on_websockets() {
    let mut h = heartbeats_off();
    let ws = h.ws_open("/a/b/websocket");
    let raw = h.ws_open("/websocket");
    h.advance(HOUR);
    assert_eq!(h.ex(ws).ws_texts, ["o"]);
    assert_eq!(h.ex(ws).ws_pings + h.ex(raw).ws_pings, 0);
    assert!(h.ex(raw).ws_texts.is_empty());
    h.ws_send(ws, "[\"still\"]");
    assert_eq!(h.ex(ws).ws_texts, ["o", "a[\"still\"]"]);
    assert!(h.closed.is_empty());
    assert_eq!(h.engine.poll_timeout(), None);
}

// ---- §9.2 WebSocket dead-peer detection -----------------------------------------------------

const INTERVAL: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(5);

fn pinging(hixie76: bool) -> Harness {
    Harness::new(
        Options {
            websocket_ping: Some(PingOptions {
                interval: INTERVAL,
                timeout: TIMEOUT,
            }),
            hixie76,
            ..Options::default()
        },
        App::Echo,
    )
}

const UNRESPONSIVE: (u16, &str) = (3000, "No response from heartbeat");

#[test]
fn s9_2_websocket_ping_off_by_default() {
    assert_eq!(Options::default().websocket_ping, None);
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/b/websocket");
    h.advance(HOUR);
    assert_eq!(h.ex(ws).ws_pings, 0);
    assert_eq!(h.ex(ws).ws_close, None);
    assert!(h.closed.is_empty());
}

#[test]
fn s9_2_websocket_ping_after_the_interval_and_close_after_the_timeout() {
    let mut h = pinging(false);
    let ws = h.ws_open("/a/b/websocket");
    h.advance(INTERVAL - ms(1));
    assert_eq!(h.ex(ws).ws_pings, 0);
    h.advance(ms(1));
    assert_eq!(h.ex(ws).ws_pings, 1, "a ping after an interval of silence");
    h.advance(TIMEOUT - ms(1));
    assert_eq!(h.ex(ws).ws_close, None);
    assert!(h.closed.is_empty());
    h.advance(ms(1));
    let (code, reason) = UNRESPONSIVE;
    assert_eq!(h.ex(ws).ws_close, Some((code, reason.to_owned())));
    assert_eq!(
        (PingOptions::CLOSE_CODE, PingOptions::CLOSE_REASON),
        UNRESPONSIVE
    );
    assert_eq!(h.ex(ws).ws_texts, ["o"], "no c frame, as sockjs-node");
    assert_eq!(h.closed[0].1, CloseReason::PeerUnresponsive);
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.pending_requests(), 0);
}

/// While the driver holds a socket's reads back (its application's queue full), the
/// peer's pongs wait unread: no ping goes out and nothing closes, whatever the time held,
/// a ping already out included; on resuming, the peer has a whole interval again.
#[test]
fn s9_2_websocket_ping_pauses_while_reads_are_held() {
    let mut h = pinging(false);
    let ws = h.ws_open("/a/b/websocket");
    h.advance(INTERVAL);
    assert_eq!(h.ex(ws).ws_pings, 1);
    h.ws_reads_held(ws, true);
    h.advance(INTERVAL * 10);
    assert_eq!(h.ex(ws).ws_pings, 1, "no ping while reads are held");
    assert!(h.closed.is_empty(), "{:?}", h.closed);
    h.ws_reads_held(ws, false);
    h.advance(INTERVAL - ms(1));
    assert_eq!(h.ex(ws).ws_pings, 1, "an interval after resuming");
    h.advance(ms(1));
    assert_eq!(h.ex(ws).ws_pings, 2);
    // Held again, and a message read before the hold delivered meanwhile: no news of the
    // peer that would restart its clock while reads are held.
    h.ws_reads_held(ws, true);
    h.ws_send(ws, "[\"x\"]");
    h.advance(INTERVAL * 3);
    assert_eq!(h.ex(ws).ws_pings, 2);
    assert!(h.closed.is_empty());
    // Resumed, a peer that stays silent is closed as before.
    h.ws_reads_held(ws, false);
    h.advance(INTERVAL + TIMEOUT);
    assert_eq!(h.ex(ws).ws_pings, 3);
    assert_eq!(h.closed[0].1, CloseReason::PeerUnresponsive);
}

#[test]
fn s9_2_websocket_pong_keeps_the_session_and_restarts_the_interval() {
    let mut h = pinging(false);
    let ws = h.ws_open("/a/b/websocket");
    h.advance(INTERVAL + ms(2_000));
    assert_eq!(h.ex(ws).ws_pings, 1);
    h.ws_pong(ws); // at 12 s
    h.advance(INTERVAL - ms(1)); // 22 s - 1 ms
    assert_eq!(
        h.ex(ws).ws_pings,
        1,
        "the next ping is an interval after the pong"
    );
    h.advance(ms(1));
    assert_eq!(h.ex(ws).ws_pings, 2);
    h.ws_pong(ws);
    for _ in 0..100 {
        h.advance(INTERVAL);
        h.ws_pong(ws);
    }
    assert_eq!(h.ex(ws).ws_pings, 102);
    assert!(h.closed.is_empty());
    // 1022 s in all: pings are not writes that would delay the `h` heartbeat.
    assert_eq!(h.ex(ws).ws_texts.iter().filter(|t| *t == "h").count(), 40);
}

#[test]
fn s9_2_websocket_any_message_counts_as_alive() {
    let mut h = pinging(false);
    let ws = h.ws_open("/a/b/websocket");
    for _ in 0..10 {
        h.advance(INTERVAL - ms(1));
        h.ws_send(ws, "[\"x\"]");
    }
    assert_eq!(h.ex(ws).ws_pings, 0, "a chatty peer is never pinged");
    h.advance(INTERVAL);
    assert_eq!(h.ex(ws).ws_pings, 1);
    h.advance(TIMEOUT - ms(1));
    h.engine.handle_ws_binary(h.now, ws, b"[\"late\"]");
    h.drain();
    h.advance(INTERVAL - ms(1));
    assert!(
        h.closed.is_empty(),
        "a message answers a ping as well as a pong"
    );
    assert_eq!(h.ex(ws).ws_pings, 1);
}

#[test]
fn s9_2_websocket_ping_runs_beside_the_h_heartbeat() {
    let mut h = Harness::new(
        Options {
            websocket_ping: Some(PingOptions::default()),
            ..Options::default()
        },
        App::Echo,
    );
    let ws = h.ws_open("/a/b/websocket");
    h.advance(Duration::from_secs(25));
    assert_eq!(h.ex(ws).ws_texts, ["o", "h"]);
    assert_eq!(h.ex(ws).ws_pings, 1, "both at 25 s: node's defaults");
    h.ws_pong(ws);
    h.advance(Duration::from_secs(25));
    assert_eq!(h.ex(ws).ws_texts, ["o", "h", "h"]);
    assert_eq!(h.ex(ws).ws_pings, 2);
    h.advance(Duration::from_secs(10) - ms(1));
    assert!(h.closed.is_empty());
    h.advance(ms(1));
    assert_eq!(h.closed[0].1, CloseReason::PeerUnresponsive);
}

#[test]
fn s9_3_raw_websocket_probe_and_heartbeat_share_one_ping() {
    let mut h = Harness::new(
        Options {
            websocket_ping: Some(PingOptions {
                interval: Duration::from_secs(25),
                timeout: TIMEOUT,
            }),
            ..Options::default()
        },
        App::Echo,
    );
    let raw = h.ws_open("/websocket");
    h.advance(Duration::from_secs(25));
    assert_eq!(
        h.ex(raw).ws_pings,
        1,
        "one ping is both the heartbeat and the probe"
    );
    h.advance(TIMEOUT);
    let (code, reason) = UNRESPONSIVE;
    assert_eq!(h.ex(raw).ws_close, Some((code, reason.to_owned())));
    assert_eq!(h.closed[0].1, CloseReason::PeerUnresponsive);
}

/// A hixie-76 upgrade's fields (§9.1).
const HIXIE76: [(&str, &str); 5] = [
    ("upgrade", "WebSocket"),
    ("connection", "Upgrade"),
    ("host", "localhost:8081"),
    ("sec-websocket-key1", "4 @1  46546xW%0l 1 5"),
    ("sec-websocket-key2", "12998 5 Y3 1  .P00"),
];

#[test]
fn s9_2_hixie76_sockets_are_never_pinged() {
    let mut h = pinging(true);
    let ws = h.request("GET", "/a/b/websocket", &HIXIE76, "");
    assert_eq!(h.ex(ws).status(), 101);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.ex(ws).ws_pings, 0, "hixie-76 has no ping");
    assert_eq!(
        h.ex(ws).ws_texts,
        ["o", "h", "h"],
        "its heartbeat stays the h frame"
    );
    assert!(h.closed.is_empty());
}

/// §9.3: a raw WebSocket's heartbeat is a ping, and hixie-76 has none: a raw hixie-76
/// socket gets no heartbeat at all, and none is counted (`Engine::heartbeats`), where one
/// was queued, counted and dropped by the driver every heartbeat delay.
#[test]
fn s9_3_raw_hixie76_socket_has_no_heartbeat() {
    let options = Options {
        hixie76: true,
        ..Options::default()
    };
    let mut h = Harness::new(options, App::Echo);
    let raw = h.request("GET", "/websocket", &HIXIE76, "");
    assert_eq!(h.ex(raw).status(), 101);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.ex(raw).ws_pings, 0, "hixie-76 has no ping");
    assert!(h.ex(raw).ws_texts.is_empty());
    assert_eq!(h.engine.heartbeats(), 0);
    assert!(h.closed.is_empty());
    // An RFC 6455 raw socket beside it still gets its ping, counted.
    let rfc6455 = h.ws_open("/websocket");
    h.advance(Duration::from_secs(25));
    assert_eq!(h.ex(rfc6455).ws_pings, 1);
    assert_eq!(h.engine.heartbeats(), 1);
}

#[test]
fn s9_2_pong_for_unknown_or_http_requests_is_ignored() {
    let mut h = pinging(false);
    let poll = h.post("/a/p/xhr", "");
    h.ws_pong(poll);
    h.ws_pong(sockjs_core::RequestId(999));
    let ws = h.ws_open("/a/b/websocket");
    h.ws_closed(ws);
    h.ws_pong(ws);
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::ClientClosed);
}

/// §9.2 (sockjs-rs note, `websocket_ping`), §7.1.4: a timer that fires late (its input
/// comes after its deadline) writes only when the input comes, so what waits on the
/// peer's answer to that write counts from then, not from the deadline: the ping's
/// timeout, and the disconnect delay of a poll that its heartbeat ended. The peer is never
/// blamed for the driver's lateness.
#[test]
fn s9_2_s7_1_4_what_a_late_timer_writes_starts_its_wait_when_it_goes_out() {
    // A ping due at INTERVAL goes out with an input at INTERVAL + TIMEOUT: a pong at once
    // answers it, where counting from its deadline would have closed the socket unasked.
    let mut h = pinging(false);
    let ws = h.ws_open("/a/chain/websocket");
    h.skip(INTERVAL + TIMEOUT);
    h.ws_pong(ws);
    assert_eq!(h.ex(ws).ws_pings, 1);
    assert_eq!(h.ex(ws).ws_close, None);
    assert!(h.closed.is_empty());
    // Unanswered, it times out a whole TIMEOUT after it went out, and not before.
    let mut h = pinging(false);
    let ws = h.ws_open("/a/silent/websocket");
    h.skip(INTERVAL + TIMEOUT);
    h.engine.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.ex(ws).ws_pings, 1);
    assert_eq!(h.ex(ws).ws_close, None);
    h.advance(TIMEOUT - Duration::from_millis(1));
    assert_eq!(h.ex(ws).ws_close, None);
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.ex(ws).ws_close,
        Some((UNRESPONSIVE.0, UNRESPONSIVE.1.into()))
    );
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::PeerUnresponsive);

    // A poll whose heartbeat was due at 25 s, answered by an input at 30 s: the client
    // has the answer only then, and its disconnect delay (5 s) runs from then.
    let mut h = Harness::echo();
    h.post("/a/hb/xhr", "");
    let poll = h.post("/a/hb/xhr", "");
    h.skip(Duration::from_secs(30));
    let send = h.post("/a/hb/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(poll).body(), "h\n");
    assert_eq!(
        h.ex(send).status(),
        204,
        "the session waits for the next poll"
    );
    h.skip(Duration::from_millis(4999));
    let next = h.post("/a/hb/xhr", "");
    assert_eq!(h.ex(next).body(), "a[\"x\"]\n");
    assert!(h.closed.is_empty());
    // A client that does not come back is gone 5 s after the late answer went out.
    let mut h = Harness::echo();
    h.post("/a/gone/xhr", "");
    let poll = h.post("/a/gone/xhr", "");
    h.skip(Duration::from_secs(30));
    h.engine.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.ex(poll).body(), "h\n");
    assert!(h.closed.is_empty());
    h.advance(Duration::from_millis(4999));
    assert!(h.closed.is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::Timeout);

    // Heartbeats re-arm from the input's own time: an input an hour late (a machine that
    // was suspended) makes one heartbeat on a socket and on a stream, not one for every
    // delay missed.
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/late/websocket");
    let stream = h.post("/a/late2/xhr_streaming", "");
    h.skip(HOUR);
    h.engine.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.ex(ws).ws_texts, ["o", "h"]);
    assert_eq!(h.ex(stream).chunk_strings()[2..], ["h\n"]);
}

/// §9.2 (sockjs-rs note, `websocket_ping`): the ping timeout is kept by the inputs' own
/// time too. A pong (or a message) that comes after it, before the driver's late timer
/// input, finds the socket closed as unresponsive, and is not taken for a sign of life.
#[test]
fn s9_2_a_pong_after_the_ping_timeout_finds_the_socket_closed_whatever_the_timer() {
    let mut h = pinging(false);
    let ws = h.ws_open("/a/late/websocket");
    h.advance(INTERVAL);
    assert_eq!(h.ex(ws).ws_pings, 1);
    h.skip(TIMEOUT);
    h.ws_pong(ws);
    assert_eq!(
        h.ex(ws).ws_close,
        Some((PingOptions::CLOSE_CODE, PingOptions::CLOSE_REASON.into()))
    );
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::PeerUnresponsive);
    // One millisecond before the timeout, the pong still counts.
    let ws = h.ws_open("/a/early/websocket");
    h.advance(INTERVAL);
    h.skip(TIMEOUT - Duration::from_millis(1));
    h.ws_pong(ws);
    assert_eq!(h.ex(ws).ws_close, None);
    assert_eq!(h.closed.len(), 1);
}
