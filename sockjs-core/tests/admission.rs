//! Admission (PROTOCOL.md §7.3): which requests would open a session, and what a refusal
//! looks like, on a virtual clock. Test names cite the rule.

mod common;

use bytes::Bytes;
use common::{App, Harness, WS_HEADERS as WS};
use http::StatusCode;
use sockjs_core::{Options, OriginPolicy, Rejection, RequestId, Transport, Transports};

fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("request").into_parts().0
}

fn opens(h: &Harness, method: &str, uri: &str, headers: &[(&str, &str)]) -> bool {
    h.opens(method, uri, headers)
}

/// Refuses a request on the harness's engine, as a driver would.
fn reject(h: &mut Harness, id: u64, parts: &http::request::Parts, rejection: &Rejection) {
    h.exchanges.entry(RequestId(id)).or_default();
    h.engine
        .handle_rejected(h.now, RequestId(id), parts, rejection);
    h.drain();
}

#[test]
fn s7_3_1_new_receivers_and_every_websocket_open_sessions() {
    let mut h = Harness::echo();
    for kind in ["xhr", "xhr_streaming"] {
        assert!(opens(&h, "POST", &format!("/a/new/{kind}"), &[]), "{kind}");
    }
    for kind in ["eventsource", "htmlfile?c=f", "jsonp?c=f"] {
        assert!(opens(&h, "GET", &format!("/a/new/{kind}"), &[]), "{kind}");
    }
    assert!(opens(&h, "GET", "/a/new/websocket", &WS));
    assert!(opens(&h, "GET", "/websocket", &WS));

    // An open session: its receivers join it, its sends are sends.
    let open = h.post("/a/old/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    for kind in ["xhr", "xhr_streaming"] {
        assert!(!opens(&h, "POST", &format!("/a/old/{kind}"), &[]), "{kind}");
    }
    assert!(!opens(&h, "GET", "/a/old/eventsource", &[]));
    assert!(!opens(&h, "POST", "/a/old/xhr_send", &[]));
    assert!(!opens(&h, "POST", "/a/new/xhr_send", &[]));
    assert!(!opens(&h, "POST", "/a/new/jsonp_send", &[]));
    // §7.2: a WebSocket is a session of its own, whatever `I` holds.
    assert!(opens(&h, "GET", "/a/old/websocket", &WS));
    assert_eq!(h.engine.session_count(), 1);
}

/// §7.3.1: an upgrade asks exactly when the handshake would accept it. `Upgrade` spread
/// over several lines is accepted (101), so it asks, or a session would open unasked and
/// outside the session limit; an HTTP/1.0 upgrade is refused (400), so it does not.
#[test]
fn s7_3_1_upgrades_ask_exactly_when_the_handshake_would_accept_them() {
    let h = Harness::echo();
    let split = [("upgrade", "h2c"), WS[0], WS[1], WS[2], WS[3]];
    assert!(opens(&h, "GET", "/a/split/websocket", &split));
    assert!(opens(&h, "GET", "/websocket", &split));
    let listed = [("upgrade", "h2c, websocket"), WS[1], WS[2], WS[3]];
    assert!(opens(&h, "GET", "/a/listed/websocket", &listed));
    for uri in ["/a/old/websocket", "/websocket"] {
        let mut http10 = head("GET", uri, &WS);
        http10.version = http::Version::HTTP_10;
        assert!(!h.engine.opens_session(&http10), "{uri}");
    }
    let other = [("upgrade", "h2c"), WS[1], WS[2], WS[3]];
    assert!(!opens(&h, "GET", "/a/other/websocket", &other));
}

#[test]
fn s7_3_1_static_endpoints_and_refused_requests_do_not_ask() {
    let h = Harness::echo();
    for path in ["/", "/info", "/iframe.html", "/nope", "/a/b/c/xhr"] {
        assert!(!opens(&h, "GET", path, &[]), "{path}");
    }
    // Methods the endpoint refuses, and CORS preflights.
    assert!(!opens(&h, "GET", "/a/new/xhr", &[]));
    assert!(!opens(&h, "OPTIONS", "/a/new/xhr", &[]));
    assert!(!opens(&h, "POST", "/a/new/websocket", &WS));
    // Not an upgrade: the engine answers 400 without a session.
    assert!(!opens(&h, "GET", "/a/new/websocket", &[]));
    assert!(!opens(&h, "GET", "/websocket", &[("upgrade", "h2c")]));
}

#[test]
fn s7_3_1_disabled_transports_and_other_prefixes_do_not_ask() {
    let h = Harness::new(
        Options {
            prefix: "/echo".into(),
            transports: Transports::NONE.with(Transport::XhrPolling),
            ..Options::default()
        },
        App::Echo,
    );
    assert!(opens(&h, "POST", "/echo/a/b/xhr", &[]));
    assert!(!opens(&h, "POST", "/a/b/xhr", &[]));
    assert!(!opens(&h, "POST", "/echo/a/b/xhr_streaming", &[]));
    assert!(!opens(&h, "GET", "/echo/a/b/websocket", &WS));
    assert!(!opens(&h, "GET", "/echo/websocket", &WS));
}

#[test]
fn s7_3_1_a_refused_origin_does_not_ask() {
    let h = Harness::new(
        Options {
            origins: OriginPolicy::List(vec!["https://good".into()]),
            ..Options::default()
        },
        App::Echo,
    );
    assert!(opens(&h, "POST", "/a/b/xhr", &[("origin", "https://good")]));
    assert!(opens(&h, "POST", "/a/b/xhr", &[]));
    assert!(!opens(
        &h,
        "POST",
        "/a/b/xhr",
        &[("origin", "https://evil")]
    ));
}

#[test]
fn s7_3_1_an_expired_session_id_asks_again() {
    let mut h = Harness::echo();
    let open = h.post("/a/b/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    assert!(!opens(&h, "POST", "/a/b/xhr", &[]));
    h.advance(common::ms(5_100)); // §7.1.5
    assert_eq!(h.engine.session_count(), 0);
    assert!(opens(&h, "POST", "/a/b/xhr", &[]));
}

#[test]
fn s7_3_2_a_refused_http_receiver_gets_the_status_and_nothing_opens() {
    let mut h = Harness::echo();
    let parts = head("POST", "/a/b/xhr", &[("origin", "https://app")]);
    reject(
        &mut h,
        100,
        &parts,
        &Rejection::unauthorized().with_body("who are you?\n"),
    );
    let ex = h.ex(RequestId(100));
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.body(), "who are you?\n");
    assert_eq!(
        ex.header("content-type").as_deref(),
        Some("text/plain; charset=UTF-8")
    );
    // §3.3: a cross-origin script may read the status.
    assert_eq!(
        ex.header("access-control-allow-origin").as_deref(),
        Some("https://app")
    );
    assert!(h.opened.is_empty());
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.pending_requests(), 0);
    // Nothing remembers the refusal: the id still opens a session.
    assert!(h.engine.opens_session(&parts));

    for (n, path) in ["/a/c/eventsource", "/a/c/htmlfile?c=f", "/a/c/jsonp?c=f"]
        .into_iter()
        .enumerate()
    {
        let id = 200 + n as u64;
        reject(&mut h, id, &head("GET", path, &[]), &Rejection::forbidden());
        assert_eq!(h.ex(RequestId(id)).status(), 403, "{path}");
        assert_eq!(h.ex(RequestId(id)).body(), "Forbidden\n", "{path}");
    }
    assert!(h.opened.is_empty());
}

#[test]
fn s7_3_3_a_refused_sockjs_websocket_is_accepted_then_closed_with_the_frame() {
    let mut h = Harness::echo();
    reject(
        &mut h,
        100,
        &head("GET", "/a/b/websocket", &WS),
        &Rejection::forbidden(),
    );
    let ex = h.ex(RequestId(100));
    assert!(ex.upgrade.is_some());
    assert_eq!(ex.ws_texts, vec![r#"c[4403,"Forbidden"]"#.to_owned()]);
    assert_eq!(ex.ws_close, Some((1000, "Normal closure".to_owned())));
    assert!(h.opened.is_empty());
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.pending_requests(), 0);
    // Inputs for the refused socket are ignored.
    h.ws_send(RequestId(100), r#"["hi"]"#);
    h.ws_closed(RequestId(100));
    assert!(h.messages.is_empty() && h.opened.is_empty());
}

#[test]
fn s7_3_3_a_refused_raw_websocket_closes_with_the_code() {
    let mut h = Harness::echo();
    let rejection = Rejection::new(StatusCode::UNAUTHORIZED).with_close(4001, "log in first");
    reject(&mut h, 100, &head("GET", "/websocket", &WS), &rejection);
    let ex = h.ex(RequestId(100));
    assert!(ex.upgrade.is_some());
    assert!(ex.ws_texts.is_empty());
    assert_eq!(ex.ws_close, Some((4001, "log in first".to_owned())));
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn s7_3_3_a_refused_malformed_upgrade_gets_the_usual_400() {
    let mut h = Harness::echo();
    let parts = head("GET", "/a/b/websocket", &[("upgrade", "websocket")]);
    reject(&mut h, 100, &parts, &Rejection::forbidden());
    assert_eq!(h.ex(RequestId(100)).status(), 400);
    assert!(h.ex(RequestId(100)).upgrade.is_none());
}

#[test]
fn s7_3_2_rejection_defaults() {
    let rejection = Rejection::new(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejection.body(), &Bytes::from("Service Unavailable\n"));
    assert_eq!(rejection.close_code(), 4503);
    assert_eq!(rejection.close_reason(), "Service Unavailable");
}

/// §7.3.2: a refusal is a final answer. An informational status, which would leave the
/// request without one (a `101` would even switch protocols), is refused with a 500.
#[test]
fn s7_3_2_an_informational_status_refuses_with_a_500() {
    let mut h = Harness::echo();
    for (n, status) in [StatusCode::CONTINUE, StatusCode::SWITCHING_PROTOCOLS]
        .into_iter()
        .enumerate()
    {
        let id = 300 + n as u64;
        let parts = head("POST", &format!("/a/i{n}/xhr"), &[]);
        reject(&mut h, id, &parts, &Rejection::new(status));
        let ex = h.ex(RequestId(id));
        assert_eq!(ex.status(), 500, "{status}");
        assert_eq!(ex.body(), "Internal Server Error\n");
        assert!(ex.upgrade.is_none());
    }
    assert!(h.opened.is_empty());
}

/// What a hook's failures refuse with: past `admission_timeout` 503 (close 4503), a
/// panic 500 (close 4500), each with its reason phrase.
#[test]
fn s7_3_4_refusals_for_a_late_or_failed_hook() {
    for (status, code, reason) in [
        (StatusCode::SERVICE_UNAVAILABLE, 4503, "Service Unavailable"),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            4500,
            "Internal Server Error",
        ),
    ] {
        let rejection = Rejection::new(status);
        assert_eq!(rejection.close_code(), code);
        assert_eq!(rejection.close_reason(), reason);
        assert_eq!(rejection.body(), &Bytes::from(format!("{reason}\n")));
    }
}

/// Two requests admitted for the same new id meet in the engine as they always would:
/// the first opens the session, and the second, which no longer asks, gets `c[2010,…]`
/// while the first is attached.
#[test]
fn s7_3_5_the_second_request_admitted_for_a_new_id_meets_2010() {
    let mut h = Harness::echo();
    let uri = "/a/race/xhr_streaming";
    assert!(
        opens(&h, "POST", uri, &[]),
        "both asked while the id was new"
    );
    let first = h.post(uri, "");
    assert_eq!(
        h.ex(first).chunk_strings().get(1).map(String::as_str),
        Some("o\n")
    );
    assert!(
        !opens(&h, "POST", uri, &[]),
        "an open session is not asked about"
    );
    let second = h.post(uri, "");
    assert_eq!(
        h.ex(second).chunk_strings().get(1).map(String::as_str),
        Some("c[2010,\"Another connection still open\"]\n")
    );
    assert_eq!(h.engine.session_count(), 1);
}

#[test]
fn s2_the_origin_predicate_sees_the_request_head() {
    let mut h = Harness::new(
        Options {
            origins: OriginPolicy::predicate(|origin, request| {
                origin == "https://app"
                    || request
                        .headers
                        .get("x-partner-key")
                        .is_some_and(|k| k == "k1")
            }),
            ..Options::default()
        },
        App::Echo,
    );
    let own = h.request("POST", "/a/own/xhr", &[("origin", "https://app")], "");
    assert_eq!(h.ex(own).status(), 200);
    let stranger = h.request("POST", "/a/b/xhr", &[("origin", "https://partner")], "");
    assert_eq!(h.ex(stranger).status(), 403);
    assert_eq!(h.ex(stranger).body(), "Origin not allowed.\n");
    let partner = [("origin", "https://partner"), ("x-partner-key", "k1")];
    let admitted = h.request("POST", "/a/b/xhr", &partner, "");
    assert_eq!(h.ex(admitted).body(), "o\n");
    // §7.3.1: a refused origin never reaches admission.
    assert!(!opens(
        &h,
        "GET",
        "/websocket",
        &[WS[0], ("origin", "https://partner")]
    ));
    assert!(opens(
        &h,
        "GET",
        "/websocket",
        &[WS[0], partner[0], partner[1]]
    ));
}
