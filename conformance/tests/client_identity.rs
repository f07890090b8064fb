//! Who the client is, over real loopback sockets against both adapters: the client's
//! address behind trusted proxies only (`Options::trusted_proxies`, `Session::client_addr`,
//! and `SessionBinding::PeerIp`: sockjs-rs's own, which PROTOCOL.md has no rule for), and
//! the server-assigned session key that stays unique when clients choose the same session
//! id (WebSockets are sessions of their own, §7.2) or none (raw WebSocket, §9.3).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use conformance::http::Request;
use sockjs_core::driver::{Config, Session};
use sockjs_core::{ForwardingHeader, Options, SessionBinding, SessionKey, Transport};
use support::{ADAPTERS, Mount, Target, handler, start_services, within, ws_text};

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

/// What a handler saw of its session when it opened.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    id: String,
    key: SessionKey,
    transport: Transport,
    client: Option<IpAddr>,
}

/// Four services: `/trusting` believes proxies on loopback in `X-Forwarded-For` (the
/// default header), `/forwarded` in `Forwarded` and `/real-ip` in `X-Real-IP`; `/plain`
/// believes no one. All echo and report each session as it opens.
fn serve(adapter: support::Adapter, binding: SessionBinding) -> (Target, Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let mount = |prefix: &str, trusted: Vec<sockjs_core::IpRange>, header| {
        let tx = tx.clone();
        let options = Options {
            trusted_proxies: trusted,
            forwarding_header: header,
            session_binding: binding,
            disconnect_delay: Duration::from_secs(5),
            ..Options::default()
        };
        Mount::new(
            prefix,
            options,
            handler(move |mut session: Session| {
                let _ = tx.send(Seen {
                    id: session.id().to_owned(),
                    key: session.key(),
                    transport: session.transport(),
                    client: session.client_addr(),
                });
                async move {
                    while let Some(text) = session.recv().await {
                        let _ = session.send(text).await;
                    }
                }
            }),
        )
    };
    let loopback = || vec!["127.0.0.0/8".parse().unwrap()];
    let mounts = vec![
        mount("/trusting", loopback(), ForwardingHeader::default()),
        mount("/forwarded", loopback(), ForwardingHeader::Forwarded),
        mount("/real-ip", loopback(), ForwardingHeader::XRealIp),
        mount("/plain", Vec::new(), ForwardingHeader::default()),
    ];
    let config = Config {
        shards: 2,
        ..Config::default()
    };
    (start_services(adapter, config, mounts), rx)
}

fn sid(kind: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{kind}{n}x{}", std::process::id())
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

/// Opens an xhr-polling session with these header fields; what its handler saw.
fn open_xhr(
    target: &Target,
    rx: &Receiver<Seen>,
    prefix: &str,
    id: &str,
    headers: &[(&str, &str)],
) -> Seen {
    let request = Request::new("POST", &format!("{prefix}/000/{id}/xhr")).headers(headers);
    assert_eq!(target.request(&request).text(), "o\n");
    rx.recv_timeout(WAIT).unwrap()
}

/// A service prefix, the request's header fields, the client address expected.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<IpAddr>,
);

#[test]
fn client_addr_honours_trusted_proxies_and_ignores_the_rest() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, rx) = serve(adapter, SessionBinding::None);
            let cases: [Case; 12] = [
                // From a trusted proxy: its forwarding header names the client.
                (
                    "/trusting",
                    &[("X-Forwarded-For", "203.0.113.7")],
                    ip("203.0.113.7"),
                ),
                (
                    "/forwarded",
                    &[("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https")],
                    ip("2001:db8::1"),
                ),
                (
                    "/real-ip",
                    &[("X-Real-IP", "198.51.100.9")],
                    ip("198.51.100.9"),
                ),
                // The headers the proxy does not set are the client's own word: a
                // proxy passes them through, so they are never read.
                (
                    "/trusting",
                    &[
                        ("Forwarded", "for=192.0.2.66"),
                        ("X-Real-IP", "192.0.2.67"),
                        ("X-Forwarded-For", "203.0.113.7"),
                    ],
                    ip("203.0.113.7"),
                ),
                ("/trusting", &[("X-Real-IP", "192.0.2.67")], ip("127.0.0.1")),
                (
                    "/forwarded",
                    &[("X-Forwarded-For", "192.0.2.66")],
                    ip("127.0.0.1"),
                ),
                // A trusted proxy's element without `for=` is a hop of unknown address:
                // the client's element before it is not taken for the nearest hop.
                (
                    "/forwarded",
                    &[
                        ("Forwarded", "for=192.0.2.66"),
                        ("Forwarded", "proto=https"),
                    ],
                    ip("127.0.0.1"),
                ),
                // Hop by hop from the right: the first untrusted hop is the client, what
                // it claims before itself is not believed.
                (
                    "/trusting",
                    &[("X-Forwarded-For", "192.0.2.66, 203.0.113.7, 127.0.0.5")],
                    ip("203.0.113.7"),
                ),
                // Garbage in the header: the proxy itself is the best answer.
                (
                    "/trusting",
                    &[("X-Forwarded-For", "not an address")],
                    ip("127.0.0.1"),
                ),
                ("/trusting", &[], ip("127.0.0.1")),
                // From a peer that is not trusted: the headers are ignored.
                (
                    "/plain",
                    &[("X-Forwarded-For", "203.0.113.7")],
                    ip("127.0.0.1"),
                ),
                (
                    "/plain",
                    &[("Forwarded", "for=203.0.113.7")],
                    ip("127.0.0.1"),
                ),
            ];
            for (prefix, headers, expected) in cases {
                let seen = open_xhr(&target, &rx, prefix, &sid("addr"), headers);
                assert_eq!(seen.client, expected, "{adapter:?} {prefix} {headers:?}");
            }

            // A WebSocket through a trusted proxy.
            let id = sid("addr");
            let mut socket = target.raw_ws(
                &format!("/trusting/000/{id}/websocket"),
                &[("X-Forwarded-For", "203.0.113.8")],
            );
            assert_eq!(ws_text(&mut socket).as_deref(), Some("o"));
            let seen = rx.recv_timeout(WAIT).unwrap();
            assert_eq!(seen.client, ip("203.0.113.8"), "{adapter:?}");
        }
    });
}

#[test]
fn peer_ip_binding_follows_the_client_behind_a_trusted_proxy() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, rx) = serve(adapter, SessionBinding::PeerIp);
            let send = |prefix: &str, id: &str, client: &str| {
                let request = Request::new("POST", &format!("{prefix}/000/{id}/xhr_send"))
                    .header("X-Forwarded-For", client)
                    .body(r#"["x"]"#);
                target.request(&request).status()
            };
            // Through the trusted proxy, two clients are told apart by their addresses.
            let id = sid("bound");
            let seen = open_xhr(
                &target,
                &rx,
                "/trusting",
                &id,
                &[("X-Forwarded-For", "203.0.113.7")],
            );
            assert_eq!(seen.client, ip("203.0.113.7"));
            assert_eq!(send("/trusting", &id, "198.51.100.1"), 404, "{adapter:?}");
            assert_eq!(send("/trusting", &id, "203.0.113.7"), 204, "{adapter:?}");
            // A thief naming the client in a header the proxy passes through untouched.
            for claim in [
                ("Forwarded", "for=203.0.113.7"),
                ("X-Real-IP", "203.0.113.7"),
            ] {
                let request = Request::new("POST", &format!("/trusting/000/{id}/xhr_send"))
                    .header(claim.0, claim.1)
                    .header("X-Forwarded-For", "198.51.100.1")
                    .body(r#"["x"]"#);
                let status = target.request(&request).status();
                assert_eq!(status, 404, "{adapter:?} {claim:?}");
            }

            // Without trust, the header is noise: the session is bound to the peer.
            let id = sid("bound");
            let seen = open_xhr(
                &target,
                &rx,
                "/plain",
                &id,
                &[("X-Forwarded-For", "203.0.113.7")],
            );
            assert_eq!(seen.client, ip("127.0.0.1"));
            assert_eq!(send("/plain", &id, "198.51.100.1"), 204, "{adapter:?}");
        }
    });
}

#[test]
fn s7_2_every_session_gets_its_own_key_whatever_id_the_client_chose() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, rx) = serve(adapter, SessionBinding::None);
            // Two WebSockets naming the same session id at once, and two raw WebSockets
            // (no id at all): four sessions, four keys.
            let id = sid("same");
            let path = format!("/trusting/000/{id}/websocket");
            let mut sockets = vec![target.ws(&path), target.ws(&path)];
            sockets.push(target.raw_ws("/trusting/websocket", &[]));
            sockets.push(target.raw_ws("/plain/websocket", &[]));
            let seen: Vec<Seen> = (0..4).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
            let keys: HashSet<u64> = seen.iter().map(|s| s.key.as_u64()).collect();
            assert_eq!(keys.len(), 4, "{adapter:?}: {seen:?}");
            let ids: Vec<&str> = seen.iter().map(|s| s.id.as_str()).collect();
            assert_eq!(ids.iter().filter(|i| **i == id).count(), 2, "{ids:?}");
            assert_eq!(ids.iter().filter(|i| i.is_empty()).count(), 2, "{ids:?}");
            let raw = seen
                .iter()
                .filter(|s| s.transport == Transport::RawWebSocket)
                .count();
            assert_eq!(raw, 2);
            drop(sockets);
        }
    });
}

/// The adapters hand the client's address beside each request, not in it; wherever the
/// application reads a request it is there all the same: in its callbacks (an origin
/// predicate, for every request it is asked about, opening or not) and in the session's
/// opening request.
#[test]
fn the_application_reads_the_peer_address_on_every_request_it_sees() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (asked_tx, asked) = mpsc::channel();
            let (opened_tx, opened) = mpsc::channel();
            let origins = sockjs_core::OriginPolicy::predicate(move |_origin, request| {
                let peer = request.extensions.get::<sockjs_core::PeerAddr>();
                let _ = asked_tx.send((request.uri.path().to_owned(), peer.map(|p| p.0.ip())));
                true
            });
            let options = Options {
                origins,
                ..Options::default()
            };
            let mount = Mount::new(
                "/seen",
                options,
                handler(move |mut session: Session| {
                    let request = session.request();
                    let peer = request.extensions.get::<sockjs_core::PeerAddr>();
                    let tls = request.extensions.get::<sockjs_core::Tls>().is_some();
                    let _ = opened_tx.send((peer.map(|p| p.0.ip()), tls));
                    async move { while session.recv().await.is_some() {} }
                }),
            );
            let target = start_services(adapter, Config::default(), vec![mount]);
            let id = sid("seen");
            let origin = [("Origin", "http://example.test")];
            let open = Request::new("POST", &format!("/seen/000/{id}/xhr")).headers(&origin);
            assert_eq!(target.request(&open).text(), "o\n", "{adapter:?}");
            let send = Request::new("POST", &format!("/seen/000/{id}/xhr_send"))
                .headers(&origin)
                .body(r#"["x"]"#);
            assert_eq!(target.request(&send).status(), 204, "{adapter:?}");

            let loopback = ip("127.0.0.1");
            assert_eq!(
                opened.recv_timeout(WAIT).unwrap(),
                (loopback, false),
                "{adapter:?}"
            );
            let open_path = format!("/seen/000/{id}/xhr");
            let send_path = format!("/seen/000/{id}/xhr_send");
            let seen: Vec<_> = asked.try_iter().collect();
            for path in [open_path, send_path] {
                assert!(
                    seen.iter()
                        .any(|(p, peer)| p.ends_with(&path[5..]) && *peer == loopback),
                    "{adapter:?}: {path} not seen with the peer address: {seen:?}"
                );
            }
            assert!(
                seen.iter().all(|(_, peer)| *peer == loopback),
                "{adapter:?}: {seen:?}"
            );
        }
    });
}
