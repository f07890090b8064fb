//! Admission over real loopback sockets, against both adapters (PROTOCOL.md §7.3): a
//! service's hook sees the request that would open a session (cookies, headers, query,
//! client address) and admits it with a value the handler reads, or refuses it: a status
//! on HTTP, a close on WebSocket, and no session either way.
//!
//! Every wait is bounded; lower time bounds are the configured delays.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conformance::http::Request;
use sockjs_core::driver::{Admission, AdmissionRequest, Config, Session};
use sockjs_core::{Options, OriginPolicy, OriginalUri, PeerAddr, Rejection};
use support::{ADAPTERS, Adapter, Mount, Target, handler, sleep, start_services, within, ws_text};

/// Bound of one test (both adapters).
const LIMIT: Duration = Duration::from_secs(60);
/// How long the `slow` hook takes.
const SLOW: Duration = Duration::from_millis(800);
/// The services' admission timeout.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// What the hook saw.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    finished: AtomicUsize,
    /// Hook futures dropped before they finished.
    cancelled: AtomicUsize,
    clients: Mutex<Vec<Option<IpAddr>>>,
    /// The path of each request the hook saw, and its `OriginalUri`'s if it had one.
    paths: Mutex<Vec<(String, Option<String>)>>,
}

/// What the hook admits a session with.
struct User {
    name: String,
    client: Option<IpAddr>,
    app: String,
}

/// Counts a hook future dropped before it finished.
struct Watch(Arc<Seen>, bool);

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Decides by the `sid` cookie, or the `sid` query parameter: `good` and `slow` (after
/// [`SLOW`]) are admitted, `hang` never decides, `panic` panics, any other value is
/// forbidden, none is unauthorized.
fn hook(seen: Arc<Seen>) -> Admission {
    Admission::new(move |request: AdmissionRequest| {
        let seen = seen.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            seen.clients.lock().unwrap().push(request.client_addr());
            let original = request.head().extensions.get::<OriginalUri>();
            seen.paths.lock().unwrap().push((
                request.uri().path().to_owned(),
                original.map(|uri| uri.0.path().to_owned()),
            ));
            let mut watch = Watch(seen.clone(), false);
            let sid = request
                .cookie("sid")
                .map(str::to_owned)
                .or_else(|| request.query("sid"));
            let user = |name: &str| User {
                name: name.to_owned(),
                client: request.client_addr(),
                app: request
                    .headers()
                    .get("x-app")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned(),
            };
            let verdict = match sid.as_deref() {
                Some("good") => Ok(user("ada")),
                Some("slow") => {
                    sleep(SLOW).await;
                    Ok(user("slow"))
                }
                Some("hang") => std::future::pending().await,
                Some("panic") => panic!("the admission hook panics (on purpose)"),
                Some(_) => Err(Rejection::forbidden().with_body("Bad session.\n")),
                None => Err(Rejection::unauthorized()),
            };
            watch.1 = true;
            seen.finished.fetch_add(1, Ordering::SeqCst);
            verdict
        }
    })
}

/// Greets with what admission attached, then echoes.
fn greeter() -> support::Handler {
    handler(|mut session: Session| async move {
        let greeting = match session.admitted::<User>() {
            Some(user) => format!(
                "user:{}:{}:{}",
                user.name,
                user.client.map_or("-".to_owned(), |ip| ip.to_string()),
                user.app
            ),
            None => "nobody".to_owned(),
        };
        // The session's own address agrees with the hook's.
        let client = session
            .client_addr()
            .map_or("-".to_owned(), |ip| ip.to_string());
        let _ = session.send(format!("{greeting}|{client}")).await;
        while let Some(text) = session.recv().await {
            let _ = session.send(text).await;
        }
    })
}

fn start(adapter: Adapter, options: Options) -> (Target, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let config = Config {
        shards: 2,
        admission_timeout: TIMEOUT,
        ..Config::default()
    };
    let mount = Mount::new("/guarded", options, greeter()).admission(hook(seen.clone()));
    (start_services(adapter, config, vec![mount]), seen)
}

/// A session id no other test uses.
fn sid(kind: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("/guarded/000/{kind}{n}x{}", std::process::id())
}

fn post(target: &Target, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let response = target.request(&Request::new("POST", path).headers(headers));
    (response.status(), response.text())
}

/// Waits until the server holds no session and no request.
fn settles_empty(target: &Target) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while (target.session_count(), target.open_requests()) != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "{:?}: sessions or requests left",
            target.adapter
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn s7_3_2_refused_http_receivers_get_the_status_and_no_session() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, seen) = start(adapter, Options::default());
            let receivers = [
                ("POST", "xhr", ""),
                ("POST", "xhr_streaming", ""),
                ("GET", "eventsource", ""),
                ("GET", "htmlfile", "?c=f"),
                ("GET", "jsonp", "?c=f"),
            ];
            for (method, kind, query) in receivers {
                let path = format!("{}/{kind}{query}", sid("refused"));
                let response = target.request(&Request::new(method, &path));
                assert_eq!(response.status(), 401, "{adapter:?} {kind}");
                assert_eq!(response.text(), "Unauthorized\n", "{adapter:?} {kind}");
                let request = Request::new(method, &path).header("Cookie", "a=1; sid=nope");
                let response = target.request(&request);
                assert_eq!(response.status(), 403, "{adapter:?} {kind}");
                assert_eq!(response.text(), "Bad session.\n", "{adapter:?} {kind}");
            }
            assert_eq!(seen.calls.load(Ordering::SeqCst), 10, "{adapter:?}");
            settles_empty(&target);
        }
    });
}

#[test]
fn s7_3_3_refused_websockets_are_closed_with_the_code() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, _seen) = start(adapter, Options::default());
            let mut ws = target.raw_ws(&format!("{}/websocket", sid("ws")), &[]);
            assert_eq!(
                ws_text(&mut ws).as_deref(),
                Some(r#"c[4401,"Unauthorized"]"#),
                "{adapter:?}"
            );
            assert_eq!(
                ws_text(&mut ws).as_deref(),
                Some("close 1000 Normal closure"),
                "{adapter:?}"
            );
            let mut raw = target.raw_ws("/guarded/websocket", &[("Cookie", "sid=nope")]);
            assert_eq!(
                ws_text(&mut raw).as_deref(),
                Some("close 4403 Forbidden"),
                "{adapter:?}"
            );
            settles_empty(&target);
        }
    });
}

#[test]
fn s7_3_1_admitted_sessions_carry_the_value_the_hook_saw_cookies_headers_and_address() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let options = Options {
                trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
                ..Options::default()
            };
            let (target, seen) = start(adapter, options);
            let path = sid("xhr");
            let headers = [
                ("Cookie", "theme=dark; sid=good"),
                ("X-App", "demo"),
                ("X-Forwarded-For", "203.0.113.9"),
            ];
            assert_eq!(
                post(&target, &format!("{path}/xhr"), &headers),
                (200, "o\n".to_owned())
            );
            assert_eq!(
                post(&target, &format!("{path}/xhr"), &[]),
                (
                    200,
                    "a[\"user:ada:203.0.113.9:demo|203.0.113.9\"]\n".to_owned()
                ),
                "{adapter:?}"
            );
            assert_eq!(
                seen.clients.lock().unwrap().as_slice(),
                &[Some("203.0.113.9".parse().unwrap())],
                "{adapter:?}"
            );
            // The request as the application finds it: under sockjs-tokio's `Routes` its
            // mount prefix stripped (the whole URI beside it), as a nesting router hands
            // it on; sockjs-smol serves the prefix itself and hands it over whole.
            let asked = format!("{path}/xhr");
            let expected = match adapter {
                Adapter::Tokio => (
                    asked.strip_prefix("/guarded").unwrap().to_owned(),
                    Some(asked.clone()),
                ),
                Adapter::Smol => (asked.clone(), None),
            };
            assert_eq!(seen.paths.lock().unwrap()[0], expected, "{adapter:?}");
            // A token in the query string, over a WebSocket.
            let mut ws = target.raw_ws(&format!("{}/websocket?sid=good", sid("ws")), &[]);
            assert_eq!(ws_text(&mut ws).as_deref(), Some("o"), "{adapter:?}");
            assert_eq!(
                ws_text(&mut ws).as_deref(),
                Some("a[\"user:ada:127.0.0.1:-|127.0.0.1\"]"),
                "{adapter:?}"
            );
        }
    });
}

#[test]
fn s7_3_1_requests_for_an_existing_session_skip_the_hook() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, seen) = start(adapter, Options::default());
            let path = sid("existing");
            let cookie = [("Cookie", "sid=good")];
            assert_eq!(post(&target, &format!("{path}/xhr"), &cookie).1, "o\n");
            assert_eq!(
                post(&target, &format!("{path}/xhr"), &[]).1,
                "a[\"user:ada:127.0.0.1:-|127.0.0.1\"]\n"
            );
            // No cookie from here on: sends and polls of the open session never ask.
            let send = Request::new("POST", &format!("{path}/xhr_send")).body(r#"["hi"]"#);
            assert_eq!(target.request(&send).status(), 204, "{adapter:?}");
            assert_eq!(post(&target, &format!("{path}/xhr"), &[]).1, "a[\"hi\"]\n");
            assert_eq!(seen.calls.load(Ordering::SeqCst), 1, "{adapter:?}");
            // A send to a session that does not exist is a 404, not a question.
            let stray = Request::new("POST", &format!("{}/xhr_send", sid("stray"))).body("[]");
            assert_eq!(target.request(&stray).status(), 404, "{adapter:?}");
            assert_eq!(seen.calls.load(Ordering::SeqCst), 1, "{adapter:?}");
        }
    });
}

/// A service at `max_sessions` refuses a request that would open one more with 503
/// without asking the hook (a database or an authentication round trip, for each
/// request a full service cannot take); once a place is free, the hook is asked again.
#[test]
fn s7_3_4_a_full_service_answers_503_without_asking_the_hook() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let options = Options {
                max_sessions: 1,
                // Long enough for the refusals below to come while the session lives, on
                // a loaded machine too; within `settles_empty`'s wait.
                disconnect_delay: Duration::from_secs(2),
                ..Options::default()
            };
            let (target, seen) = start(adapter, options);
            let cookie = [("Cookie", "sid=good")];
            let first = sid("full");
            assert_eq!(post(&target, &format!("{first}/xhr"), &cookie).1, "o\n");
            assert_eq!(seen.calls.load(Ordering::SeqCst), 1, "{adapter:?}");
            for receiver in ["xhr", "xhr_streaming"] {
                let path = format!("{}/{receiver}", sid("full"));
                let refused = post(&target, &path, &cookie);
                assert_eq!(refused, (503, "Too many sessions.\n".into()), "{adapter:?}");
            }
            assert_eq!(
                seen.calls.load(Ordering::SeqCst),
                1,
                "{adapter:?}: hook asked"
            );
            // The first session expires (no receiver for its disconnect delay): a place.
            settles_empty(&target);
            assert_eq!(
                post(&target, &format!("{}/xhr", sid("full")), &cookie).1,
                "o\n"
            );
            assert_eq!(seen.calls.load(Ordering::SeqCst), 2, "{adapter:?}");
        }
    });
}

#[test]
fn s7_3_1_a_receiver_replacing_a_gone_one_asks_if_it_would_open_a_session() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, seen) = start(adapter, Options::default());
            let path = sid("replaced");
            let xhr = format!("{path}/xhr");
            assert_eq!(post(&target, &xhr, &[("Cookie", "sid=good")]).1, "o\n");
            assert!(post(&target, &xhr, &[]).1.starts_with("a["), "{adapter:?}");
            // A held poll whose client vanishes: the next poll finds it attached, and
            // either the adapter or the liveness probe aborts it first (§7.1.6), which
            // closes the session. The newcomer would open a new one: it must ask.
            let mut held = target.conn();
            held.send(&Request::new("POST", &xhr)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while target.open_requests() == 0 {
                assert!(Instant::now() < deadline, "{adapter:?}: never attached");
                std::thread::sleep(Duration::from_millis(5));
            }
            held.reset();
            assert_eq!(
                post(&target, &xhr, &[]),
                (401, "Unauthorized\n".to_owned()),
                "{adapter:?}"
            );
            assert_eq!(seen.calls.load(Ordering::SeqCst), 2, "{adapter:?}");
            settles_empty(&target);
        }
    });
}

#[test]
fn s7_3_4_a_slow_hook_holds_back_only_its_own_request() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, _seen) = start(adapter, Options::default());
            let target = Arc::new(target);
            let slow_path = sid("slow");
            let started = Instant::now();
            let slow = {
                let target = target.clone();
                std::thread::spawn(move || {
                    post(
                        &target,
                        &format!("{slow_path}/xhr"),
                        &[("Cookie", "sid=slow")],
                    )
                })
            };
            std::thread::sleep(Duration::from_millis(100));
            // Other sessions open meanwhile, at once.
            for _ in 0..3 {
                let asked = Instant::now();
                let path = format!("{}/xhr", sid("fast"));
                assert_eq!(post(&target, &path, &[("Cookie", "sid=good")]).1, "o\n");
                assert!(asked.elapsed() < SLOW / 2, "{adapter:?}: held back");
            }
            assert_eq!(slow.join().unwrap(), (200, "o\n".to_owned()), "{adapter:?}");
            assert!(started.elapsed() >= SLOW, "{adapter:?}");
        }
    });
}

#[test]
fn s7_3_4_a_hook_past_the_timeout_refuses_with_503() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, seen) = start(adapter, Options::default());
            let asked = Instant::now();
            let (status, body) = post(
                &target,
                &format!("{}/xhr", sid("hang")),
                &[("Cookie", "sid=hang")],
            );
            assert_eq!((status, body.as_str()), (503, "Service Unavailable\n"));
            assert!(asked.elapsed() >= TIMEOUT, "{adapter:?}");
            let mut ws = target.raw_ws(&format!("{}/websocket?sid=hang", sid("ws")), &[]);
            assert_eq!(
                ws_text(&mut ws).as_deref(),
                Some(r#"c[4503,"Service Unavailable"]"#),
                "{adapter:?}"
            );
            assert_eq!(seen.cancelled.load(Ordering::SeqCst), 2, "{adapter:?}");
            settles_empty(&target);
        }
    });
}

#[test]
fn s7_3_4_a_panicking_hook_refuses_with_500_and_the_connection_goes_on() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, _seen) = start(adapter, Options::default());
            let mut conn = target.conn();
            let panics = Request::new("POST", &format!("{}/xhr", sid("panic")))
                .header("Cookie", "sid=panic");
            let response = conn.roundtrip(&panics).unwrap();
            assert_eq!(response.status(), 500, "{adapter:?}");
            assert_eq!(response.text(), "Internal Server Error\n", "{adapter:?}");
            // The same connection serves the next request.
            let good =
                Request::new("POST", &format!("{}/xhr", sid("after"))).header("Cookie", "sid=good");
            assert_eq!(conn.roundtrip(&good).unwrap().text(), "o\n", "{adapter:?}");
        }
    });
}

#[test]
fn s7_3_5_a_client_gone_while_the_hook_runs_opens_nothing() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, seen) = start(adapter, Options::default());
            let mut conn = target.conn();
            let request =
                Request::new("POST", &format!("{}/xhr", sid("gone"))).header("Cookie", "sid=slow");
            conn.send(&request).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            conn.close();
            let deadline = Instant::now() + SLOW + Duration::from_secs(5);
            while seen.cancelled.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "{adapter:?}: hook not dropped");
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(SLOW);
            assert_eq!(seen.finished.load(Ordering::SeqCst), 0, "{adapter:?}");
            settles_empty(&target);
        }
    });
}

#[test]
fn s7_3_5_two_admitted_receivers_for_one_new_id_open_one_session() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, _seen) = start(adapter, Options::default());
            let target = Arc::new(target);
            let path = format!("{}/xhr", sid("twice"));
            let go = Arc::new(AtomicBool::new(false));
            let clients: Vec<_> = (0..2)
                .map(|_| {
                    let (target, path, go) = (target.clone(), path.clone(), go.clone());
                    std::thread::spawn(move || {
                        while !go.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                        post(&target, &path, &[("Cookie", "sid=slow")])
                    })
                })
                .collect();
            go.store(true, Ordering::SeqCst);
            let mut bodies: Vec<String> =
                clients.into_iter().map(|c| c.join().unwrap().1).collect();
            bodies.sort();
            // One opens the session (§7.1.1); the other finds it: attached to it if the
            // first poll has ended (it ends with `o`), else refused with 2010 (§7.1.2).
            assert_eq!(bodies[1], "o\n", "{adapter:?}");
            assert!(
                bodies[0] == "a[\"user:slow:127.0.0.1:-|127.0.0.1\"]\n"
                    || bodies[0] == "c[2010,\"Another connection still open\"]\n",
                "{adapter:?}: {bodies:?}"
            );
            assert_eq!(target.session_count(), 1, "{adapter:?}");
        }
    });
}

#[test]
fn s2_the_origin_predicate_sees_the_request_head() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let options = Options {
                origins: OriginPolicy::predicate(|origin, request| {
                    origin == "https://app"
                        || request
                            .headers
                            .get("x-partner-key")
                            .is_some_and(|key| key == "k1")
                }),
                ..Options::default()
            };
            let (target, _seen) = start(adapter, options);
            let cookie = ("Cookie", "sid=good");
            let stranger = [("Origin", "https://partner"), cookie];
            let path = format!("{}/xhr", sid("origin"));
            assert_eq!(
                post(&target, &path, &stranger),
                (403, "Origin not allowed.\n".to_owned()),
                "{adapter:?}"
            );
            let partner = [stranger[0], stranger[1], ("X-Partner-Key", "k1")];
            assert_eq!(post(&target, &path, &partner).1, "o\n", "{adapter:?}");
            // WebSocket upgrades too: refused before the handshake, or accepted.
            let (status, _) = support::raw_status(
                target.addr,
                b"GET /guarded/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nOrigin: https://partner\r\n\
                  Cookie: sid=good\r\n\r\n",
            );
            assert_eq!(status, 403, "{adapter:?}");
            let mut ws = target.raw_ws("/guarded/websocket", &partner);
            ws.send(tungstenite::Message::text("ping")).unwrap();
            assert_eq!(
                ws_text(&mut ws).as_deref(),
                Some("user:ada:127.0.0.1:-|127.0.0.1"),
                "{adapter:?}"
            );
        }
    });
}

/// The origin predicate is asked whether a request would open a session before the hook
/// runs: it must see the request as the engine will, with its peer address, or a predicate
/// that reads it answers "refused" there, the hook is skipped, and the engine, asking
/// again, opens a session nobody admitted.
#[test]
fn s7_3_1_the_origin_predicate_reads_the_peer_before_the_hook_as_after() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let unstamped = Arc::new(AtomicUsize::new(0));
            let options = Options {
                origins: OriginPolicy::predicate({
                    let unstamped = unstamped.clone();
                    move |_origin, request| {
                        let peer = request.extensions.get::<PeerAddr>();
                        if peer.is_none() {
                            unstamped.fetch_add(1, Ordering::SeqCst);
                        }
                        peer.is_some_and(|peer| peer.0.ip().is_loopback())
                    }
                }),
                ..Options::default()
            };
            let (target, seen) = start(adapter, options);
            let origin = ("Origin", "https://anywhere");
            let path = format!("{}/xhr", sid("peer"));
            assert_eq!(
                post(&target, &path, &[origin]),
                (401, "Unauthorized\n".to_owned()),
                "{adapter:?}: opened without the hook"
            );
            assert_eq!(seen.calls.load(Ordering::SeqCst), 1, "{adapter:?}");
            let admitted = [origin, ("Cookie", "sid=good")];
            assert_eq!(post(&target, &path, &admitted).1, "o\n", "{adapter:?}");
            let mut ws = target.raw_ws(&format!("{}/websocket", sid("peer")), &[origin]);
            assert_eq!(
                ws_text(&mut ws).as_deref(),
                Some(r#"c[4401,"Unauthorized"]"#),
                "{adapter:?}"
            );
            assert_eq!(seen.calls.load(Ordering::SeqCst), 3, "{adapter:?}");
            assert_eq!(unstamped.load(Ordering::SeqCst), 0, "{adapter:?}");
        }
    });
}
