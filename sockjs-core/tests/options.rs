//! The options that go beyond the protocol's defaults, one test per rule on a virtual
//! clock: the transport set (§2). Test names cite the section.

mod common;

use common::{App, Harness};
use sockjs_core::{Options, Transport, Transports};

fn info(h: &mut Harness) -> serde_json::Value {
    let id = h.get("/info");
    serde_json::from_str(&h.ex(id).body()).expect("json")
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
