//! One test per rule of PROTOCOL.md, driven on a virtual clock. Test names cite the section.

mod common;

use std::time::Duration;

use common::{App, Harness, ms};
use sockjs_core::{
    CloseReason, Handshake, Jsessionid, Options, OriginPolicy, ProtocolVersion, RequestId,
    SessionState, Transport, Transports,
};

const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";
const JS: &str = "application/javascript; charset=UTF-8";
const TEXT: &str = "text/plain; charset=UTF-8";

/// The request was answered `status` with exactly `body` as `text/plain; charset=UTF-8`
/// (§3.1: every error that has a body), and nothing was upgraded.
#[track_caller]
fn assert_text(h: &Harness, id: RequestId, status: u16, body: &str) {
    let ex = h.ex(id);
    assert_eq!(ex.status(), status, "{body:?}");
    assert_eq!(ex.header("content-type").as_deref(), Some(TEXT), "{body:?}");
    assert_eq!(ex.body(), body);
    assert!(ex.upgrade.is_none(), "{body:?}");
}

fn prefixed(prefix: &str) -> Harness {
    Harness::new(
        Options {
            prefix: prefix.into(),
            response_limit: 4096,
            ..Options::default()
        },
        App::Echo,
    )
}

// ---- §2 routing -------------------------------------------------------------------------

#[test]
fn s2_prefix_is_required_and_stripped() {
    let mut h = prefixed("/echo");
    let ok = h.get("/echo");
    assert_eq!(h.ex(ok).status(), 200);
    let slash = h.get("/echo/");
    assert_eq!(h.ex(slash).status(), 200);
    for path in ["/", "/ech", "/echoo", "/other/info"] {
        let id = h.get(path);
        assert_eq!(h.ex(id).status(), 404, "{path}");
    }
    let info = h.get("/echo/info?t=1");
    assert_eq!(h.ex(info).status(), 200);
}

#[test]
fn s2_greeting_near_misses_are_404() {
    let mut h = Harness::echo();
    for path in ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"] {
        let id = h.get(path);
        assert_eq!(h.ex(id).status(), 404, "{path}");
    }
}

/// A target with no path (authority form, which only `CONNECT` may use, RFC 9112 §3.2.3;
/// a server such as hyper hands it on as an empty path) is no service's greeting, not even
/// a root-mounted one's; nor is `*`.
#[test]
fn s2_a_target_without_a_path_is_404() {
    let mut h = Harness::echo();
    for (method, target) in [
        ("GET", "example.com:80"),
        ("POST", "example.com:80"),
        ("CONNECT", "example.com:443"),
        ("OPTIONS", "*"),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri(target)
            .body(bytes::Bytes::new())
            .expect("request");
        assert_eq!(request.uri().path(), if target == "*" { "*" } else { "" });
        let id = h.raw_request(request);
        assert_eq!(h.ex(id).status(), 404, "{method} {target}");
    }
}

#[test]
fn s2_invalid_session_paths_are_404_for_get_and_post() {
    let mut h = Harness::echo();
    for path in [
        "//xhr",
        "/a./a/xhr",
        "/a/a./xhr",
        "/././xhr",
        "///xhr",
        "////xhr",
    ] {
        let get = h.get(path);
        let post = h.post(path, "");
        assert_eq!(h.ex(get).status(), 404, "GET {path}");
        assert_eq!(h.ex(post).status(), 404, "POST {path}");
    }
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn s2_any_segment_value_opens_a_session() {
    let mut h = Harness::echo();
    for id in [
        "a",
        "_",
        "1",
        "000",
        "abcdefgh_i-j%20",
        "6b4bc6a8-4a6e-4e3b-9c9b-2bd6e8c4c0f1",
    ] {
        let r = h.post(&format!("/{id}/{id}/xhr"), "");
        assert_eq!(h.ex(r).body(), "o\n", "{id}");
    }
}

/// Routes match the raw path: an escape is not decoded, so `I%41` is not `IA`, and an
/// escaped slash stays inside its segment.
#[test]
fn s2_session_paths_are_not_percent_decoded() {
    let mut h = Harness::echo();
    let escaped = h.post("/000/I%41/xhr", "");
    assert_eq!(h.ex(escaped).body(), "o\n");
    let send = h.post("/000/IA/xhr_send", r#"["x"]"#);
    assert_eq!(h.ex(send).status(), 404, "IA is another session");
    let slash = h.post("/000/a%2Fb/xhr", "");
    assert_eq!(h.ex(slash).body(), "o\n", "one segment");
    assert_eq!(h.engine.session_count(), 2);
}

/// §7.1.1: a receiver with an unknown id creates the session and opens it in its own
/// framing; a sender with an unknown id creates nothing (404).
#[test]
fn s7_1_1_every_receiver_creates_and_no_sender_does() {
    let mut h = Harness::echo();
    let receivers = [
        ("POST", "/000/a/xhr", "o\n"),
        ("POST", "/000/b/xhr_streaming", "o\n"),
        ("GET", "/000/c/eventsource", "data: o\r\n\r\n"),
        (
            "GET",
            "/000/d/htmlfile?c=cb",
            "<script>\np(\"o\");\n</script>\r\n",
        ),
        ("GET", "/000/e/jsonp?c=cb", "/**/cb(\"o\");\r\n"),
    ];
    for (n, (method, uri, open)) in receivers.into_iter().enumerate() {
        let r = h.request(method, uri, &[], "");
        let ex = h.ex(r);
        let first = match &ex.response {
            Some(_) => ex.body(),
            // After the prelude.
            None => ex.chunk_strings().get(1).cloned().unwrap_or_default(),
        };
        assert_eq!(first, open, "{uri}");
        assert_eq!(h.engine.session_count(), n + 1, "{uri}");
    }
    let xhr_send = h.post("/000/f/xhr_send", r#"["x"]"#);
    let jsonp_send = h.request(
        "POST",
        "/000/g/jsonp_send",
        &[("content-type", "application/x-www-form-urlencoded")],
        "d=%5B%22x%22%5D",
    );
    for send in [xhr_send, jsonp_send] {
        assert_eq!(h.ex(send).status(), 404);
    }
    assert_eq!(h.engine.session_count(), 5, "senders created nothing");
}

#[test]
fn s2_server_id_is_ignored() {
    let mut h = Harness::echo();
    let open = h.post("/000/X/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    let send = h.post("/999/X/xhr_send", r#"["a"]"#);
    assert_eq!(h.ex(send).status(), 204);
    let poll = h.post("/abc/X/xhr", "");
    assert_eq!(h.ex(poll).body(), "a[\"a\"]\n");
}

#[test]
fn s2_wrong_method_is_405_with_allow_and_empty_body() {
    let mut h = Harness::echo();
    let ws = h.post("/a/b/websocket", "");
    let ex = h.ex(ws);
    assert_eq!(ex.status(), 405);
    assert_eq!(ex.header("allow").as_deref(), Some("GET"));
    assert_eq!(ex.header("content-type"), None);
    assert_eq!(ex.body(), "");
    let xhr = h.get("/a/b/xhr");
    assert_eq!(h.ex(xhr).header("allow").as_deref(), Some("POST, OPTIONS"));
    let info = h.post("/info", "");
    assert_eq!(h.ex(info).header("allow").as_deref(), Some("GET, OPTIONS"));
    let greeting = h.post("/", "");
    assert_eq!(h.ex(greeting).status(), 405);
    let jsonp_send = h.get("/a/b/jsonp_send");
    assert_eq!(h.ex(jsonp_send).header("allow").as_deref(), Some("POST"));
}

/// §2 (sockjs-rs note): the gates in order, the first that fails answering: route (404),
/// transport enabled (404), method (405), body size (413), origin (403). A request that
/// fails several gets the first one's answer.
#[test]
fn s2_gates_answer_in_order_404_405_413_403() {
    let mut h = Harness::new(
        Options {
            max_request_body: 16,
            origins: OriginPolicy::list(["https://good"]),
            transports: Transports::ALL.without(Transport::JsonpPolling),
            ..Options::default()
        },
        App::Echo,
    );
    let big = "[\"0123456789abcdef\"]";
    let evil = [("origin", "https://evil")];
    let no_route = h.request("POST", "/a/b/c/xhr_send", &evil, big);
    assert_text(&h, no_route, 404, "404 Error: Page not found\n");
    let disabled = h.request("POST", "/a/b/jsonp_send", &evil, big);
    assert_text(&h, disabled, 404, "404 Error: Page not found\n");
    let method = h.request("GET", "/a/b/xhr_send", &evil, big);
    let ex = h.ex(method);
    assert_eq!(ex.status(), 405);
    assert_eq!(ex.header("allow").as_deref(), Some("POST, OPTIONS"));
    assert_eq!(ex.header("content-type"), None);
    assert_eq!(ex.body(), "");
    let too_large = h.request("POST", "/a/b/xhr_send", &evil, big);
    assert_text(&h, too_large, 413, "Payload too large.\n");
    let refused = h.request("POST", "/a/b/xhr_send", &evil, "[]");
    assert_text(&h, refused, 403, "Origin not allowed.\n");
    let passed = h.request("POST", "/a/b/xhr_send", &[("origin", "https://good")], "[]");
    assert_eq!(h.ex(passed).status(), 404, "every gate passed: §6 step 5");
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn s2_disabled_transports_have_no_route() {
    let mut h = Harness::new(
        Options {
            transports: Transports::ALL
                .without(Transport::WebSocket)
                .without(Transport::RawWebSocket),
            ..Options::default()
        },
        App::Echo,
    );
    let ws = h.ws_open("/a/b/websocket");
    assert_eq!(h.ex(ws).status(), 404);
    let raw = h.ws_open("/websocket");
    assert_eq!(h.ex(raw).status(), 404);
    let mut h = Harness::new(
        Options {
            transports: Transports::ALL.without(Transport::RawWebSocket),
            ..Options::default()
        },
        App::Echo,
    );
    let raw = h.ws_open("/websocket");
    assert_eq!(h.ex(raw).status(), 404);
}

// ---- §3 headers -------------------------------------------------------------------------

#[test]
fn s3_2_no_cache_on_info_and_session_endpoints() {
    let mut h = Harness::echo();
    let info = h.get("/info");
    assert_eq!(
        h.ex(info).header("cache-control").as_deref(),
        Some(NO_CACHE)
    );
    assert_eq!(h.ex(info).header("expires"), None);
    let xhr = h.post("/a/s/xhr", "");
    assert_eq!(h.ex(xhr).header("cache-control").as_deref(), Some(NO_CACHE));
    let send = h.post("/a/s/xhr_send", "[]");
    assert_eq!(
        h.ex(send).header("cache-control").as_deref(),
        Some(NO_CACHE)
    );
    let es = h.get("/a/t/eventsource");
    assert_eq!(h.ex(es).header("cache-control").as_deref(), Some(NO_CACHE));
    assert_eq!(h.ex(es).header("last-modified"), None);
}

#[test]
fn s3_2_no_cache_0_3_3_has_no_no_transform() {
    let mut h = Harness::new(
        Options {
            protocol: ProtocolVersion::V0_3_3,
            ..Options::default()
        },
        App::Echo,
    );
    let info = h.get("/info");
    assert_eq!(
        h.ex(info).header("cache-control").as_deref(),
        Some("no-store, no-cache, must-revalidate, max-age=0")
    );
}

#[test]
fn s3_3_cors_echoes_origin_with_credentials() {
    let mut h = Harness::echo();
    for origin in ["test", "null", "https://example.com"] {
        let id = h.request("GET", "/info", &[("origin", origin)], "");
        let ex = h.ex(id);
        assert_eq!(
            ex.header("access-control-allow-origin").as_deref(),
            Some(origin)
        );
        assert_eq!(
            ex.header("access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(ex.header("vary").as_deref(), Some("Origin"), "{origin}");
    }
    let none = h.get("/info");
    assert_eq!(
        h.ex(none).header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(h.ex(none).header("access-control-allow-credentials"), None);
    assert_eq!(h.ex(none).header("vary").as_deref(), Some("Origin"));
}

#[test]
fn s3_3_allow_headers_echoed_or_omitted() {
    let mut h = Harness::echo();
    let id = h.request(
        "POST",
        "/a/b/xhr",
        &[("access-control-request-headers", "a, b, c")],
        "",
    );
    assert_eq!(
        h.ex(id).header("access-control-allow-headers").as_deref(),
        Some("a, b, c")
    );
    let id = h.request(
        "POST",
        "/a/c/xhr",
        &[("access-control-request-headers", "")],
        "",
    );
    assert_eq!(h.ex(id).header("access-control-allow-headers"), None);
    let id = h.post("/a/d/xhr", "");
    assert_eq!(h.ex(id).header("access-control-allow-headers"), None);
}

#[test]
fn s3_3_preflights() {
    let mut h = Harness::echo();
    for (path, methods) in [
        ("/info", "OPTIONS, GET"),
        ("/a/b/xhr", "OPTIONS, POST"),
        ("/a/b/xhr_streaming", "OPTIONS, POST"),
        ("/a/b/xhr_send", "OPTIONS, POST"),
    ] {
        for origin in ["test", "null"] {
            let id = h.request(
                "OPTIONS",
                path,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "OPTIONS, POST"),
                ],
                "",
            );
            let ex = h.ex(id);
            assert_eq!(ex.status(), 204, "{path}");
            assert_eq!(ex.body(), "");
            assert_eq!(
                ex.header("cache-control").as_deref(),
                Some("public, max-age=31536000")
            );
            assert!(ex.header("expires").is_some());
            assert_eq!(
                ex.header("access-control-max-age").as_deref(),
                Some("31536000")
            );
            assert_eq!(
                ex.header("access-control-allow-methods").as_deref(),
                Some(methods)
            );
            assert_eq!(
                ex.header("access-control-allow-origin").as_deref(),
                Some(origin)
            );
            assert_eq!(
                ex.header("access-control-allow-credentials").as_deref(),
                Some("true")
            );
            assert_eq!(ex.header("vary").as_deref(), Some("Origin"), "{path}");
            assert_eq!(ex.header("content-type"), None, "{path}");
        }
    }
    assert_eq!(h.engine.session_count(), 0, "preflights create no session");
}

#[test]
fn s3_2_expires_is_one_year_after_the_wall_clock() {
    let mut h = Harness::echo();
    h.advance(Duration::from_secs(10));
    let id = h.request("OPTIONS", "/info", &[], "");
    // Harness wall clock starts at 1_700_000_000 (2023-11-14T22:13:20Z); 2024 is a leap year.
    assert_eq!(
        h.ex(id).header("expires").as_deref(),
        Some("Wed, 13 Nov 2024 22:13:30 GMT")
    );
}

#[test]
fn s3_4_jsessionid_on_every_session_endpoint_never_on_info() {
    let mut h = Harness::new(
        Options {
            jsessionid: Jsessionid::echo(),
            ..Options::default()
        },
        App::Echo,
    );
    let info = h.get("/info");
    assert_eq!(h.ex(info).header("set-cookie"), None);
    assert!(h.ex(info).body().contains("\"cookie_needed\":true"));
    let greeting = h.get("/");
    assert_eq!(h.ex(greeting).header("set-cookie"), None);
    let iframe = h.get("/iframe.html");
    assert_eq!(h.ex(iframe).header("set-cookie"), None);
    for (method, path) in [
        ("POST", "/a/1/xhr"),
        ("POST", "/a/1/xhr_send"),
        ("POST", "/a/2/xhr_streaming"),
        ("GET", "/a/3/eventsource"),
        ("GET", "/a/4/htmlfile?c=cb"),
        ("GET", "/a/5/jsonp?c=cb"),
        ("POST", "/a/5/jsonp_send"),
        ("OPTIONS", "/a/6/xhr"),
    ] {
        let body = if path.ends_with("send") { "d=[]" } else { "" };
        let headers: &[(&str, &str)] = if path.ends_with("jsonp_send") {
            &[("content-type", "application/x-www-form-urlencoded")]
        } else {
            &[]
        };
        let id = h.request(method, path, headers, body);
        assert_eq!(
            h.ex(id).header("set-cookie").as_deref(),
            Some("JSESSIONID=dummy; path=/"),
            "{method} {path}"
        );
    }
    let id = h.request("POST", "/a/7/xhr", &[("cookie", "JSESSIONID=abcdef")], "");
    assert_eq!(
        h.ex(id).header("set-cookie").as_deref(),
        Some("JSESSIONID=abcdef; path=/")
    );
}

#[test]
fn s3_4_no_cookie_without_the_option() {
    let mut h = Harness::echo();
    let id = h.request("POST", "/a/1/xhr", &[("cookie", "JSESSIONID=abcdef")], "");
    assert_eq!(h.ex(id).header("set-cookie"), None);
}

// ---- §4 static endpoints ----------------------------------------------------------------

#[test]
fn s4_1_greeting() {
    let mut h = prefixed("/echo");
    for path in ["/echo", "/echo/"] {
        let id = h.get(path);
        let ex = h.ex(id);
        assert_eq!(ex.status(), 200);
        assert_eq!(ex.header("content-type").as_deref(), Some(TEXT));
        assert_eq!(ex.body(), "Welcome to SockJS!\n");
        assert_eq!(ex.header("set-cookie"), None);
    }
}

#[test]
fn s4_2_info_fields_and_entropy() {
    let mut h = Harness::echo();
    let a = h.get("/info");
    let b = h.get("/info");
    let parse = |h: &Harness, id| -> serde_json::Value {
        serde_json::from_str(&h.ex(id).body()).expect("json")
    };
    let (ja, jb) = (parse(&h, a), parse(&h, b));
    assert_eq!(ja["websocket"], true);
    assert_eq!(ja["cookie_needed"], false);
    assert_eq!(ja["origins"], serde_json::json!(["*:*"]));
    let (ea, eb) = (
        ja["entropy"].as_u64().expect("int"),
        jb["entropy"].as_u64().expect("int"),
    );
    assert!(ea <= u64::from(u32::MAX) && ea != eb);
    assert_eq!(
        h.ex(a).header("content-type").as_deref(),
        Some("application/json; charset=UTF-8")
    );
    let mut off = Harness::new(
        Options {
            transports: Transports::ALL.without(Transport::WebSocket),
            ..Options::default()
        },
        App::Echo,
    );
    let id = off.get("/info");
    assert_eq!(parse(&off, id)["websocket"], false);
}

#[test]
fn s4_3_iframe_page_etag_and_304() {
    let mut h = Harness::new(
        Options {
            sockjs_url: "http://localhost:8080/sockjs.js".into(),
            ..Options::default()
        },
        App::Echo,
    );
    let mut bodies = Vec::new();
    for path in [
        "/iframe.html",
        "/iframe-.html",
        "/iframe-a.html",
        "/iframe-0.1.2abc-dirty.2144.html",
        "/iframe-a.html?t=1234",
    ] {
        let id = h.get(path);
        let ex = h.ex(id);
        assert_eq!(ex.status(), 200, "{path}");
        assert_eq!(
            ex.header("content-type").as_deref(),
            Some("text/html; charset=UTF-8")
        );
        assert_eq!(
            ex.header("cache-control").as_deref(),
            Some("public, max-age=31536000")
        );
        assert!(ex.header("expires").is_some() && ex.header("last-modified").is_none());
        assert!(ex.header("etag").is_some());
        bodies.push(ex.body());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let expected = "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  <script src=\"http://localhost:8080/sockjs.js\"></script>\n  <script>\n    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>";
    // sockjs-rs: the page ends at `</html>`, no final newline: the body is the page exactly.
    assert_eq!(bodies[0], expected);
    let first = h.get("/iframe.html");
    let etag = h.ex(first).header("etag").expect("etag");
    // node's scheme: the md5 hex digest of the page in double quotes.
    let digest = <md5::Md5 as md5::Digest>::digest(expected.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(etag, format!("\"{hex}\""));
    let cached = h.request("GET", "/iframe.html", &[("if-none-match", &etag)], "");
    let ex = h.ex(cached);
    assert_eq!(ex.status(), 304);
    assert_eq!(ex.header("content-type"), None);
    assert_eq!(ex.body(), "");
    // sockjs-rs: the 304 repeats the ETag; §3.2: a 304 has no caching headers.
    assert_eq!(ex.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(ex.header("cache-control"), None);
    assert_eq!(ex.header("expires"), None);
    assert_eq!(ex.header("last-modified"), None);
    assert_eq!(ex.header("set-cookie"), None);
    // RFC 9110 §13.1.2: a list, a weak tag, `*`; another tag alone is no match.
    for (value, status) in [
        (format!("\"other\", {etag}"), 304),
        (format!("W/{etag}"), 304),
        ("*".to_owned(), 304),
        ("\"other\"".to_owned(), 200),
    ] {
        let id = h.request("GET", "/iframe.html", &[("if-none-match", &value)], "");
        assert_eq!(h.ex(id).status(), status, "{value}");
    }
    for path in [
        "/iframe.htm",
        "/iframe",
        "/IFRAME.HTML",
        "/iframe.HTML",
        "/iframe.xml",
        "/iframe-/.html",
        "/iframeXhtml",
    ] {
        let id = h.get(path);
        assert_eq!(h.ex(id).status(), 404, "{path}");
    }
}

// ---- §5 frames and encoding --------------------------------------------------------------

#[test]
fn s5_1_server_encodes_required_code_points_lowercase() {
    let mut h = Harness::echo();
    let open = h.post("/a/enc/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    let mut text = String::new();
    for range in [
        0x200c..=0x200f,
        0x2028..=0x202f,
        0x2060..=0x206f,
        0xfff0..=0xffff,
    ] {
        text.extend(range.map(|c| char::from_u32(c).expect("char")));
    }
    let payload = serde_json::to_string(&[&text]).expect("json");
    let send = h.post("/a/enc/xhr_send", &payload);
    assert_eq!(h.ex(send).status(), 204);
    let poll = h.post("/a/enc/xhr", "");
    let mut expected = String::from("a[\"");
    for range in [
        0x200c..=0x200f,
        0x2028..=0x202f,
        0x2060..=0x206f,
        0xfff0..=0xffff,
    ] {
        for c in range {
            expected.push_str(&format!("\\u{c:04x}"));
        }
    }
    expected.push_str("\"]\n");
    assert_eq!(h.ex(poll).body(), expected);
}

#[test]
fn s5_2_server_decodes_client_escapes() {
    let mut h = Harness::echo();
    h.post("/a/dec/xhr", "");
    let send = h.post(
        "/a/dec/xhr_send",
        r#"["\u0000\u001f\u00ad\u0600\u200b\u2028\ufeff\ufff9\ud83d\ude00"]"#,
    );
    assert_eq!(h.ex(send).status(), 204);
    assert_eq!(
        h.messages.last().expect("msg").1,
        "\u{0}\u{1f}\u{ad}\u{600}\u{200b}\u{2028}\u{feff}\u{fff9}😀"
    );
}

#[test]
fn s5_all_queued_messages_go_in_one_frame() {
    let mut h = Harness::echo();
    h.post("/a/batch/xhr", "");
    for ct in [
        "text/plain",
        "T",
        "application/json",
        "application/xml",
        "",
        "text/xml",
        "text/plain; charset=utf-8",
        "application/json; charset=utf-8",
    ] {
        let id = h.request(
            "POST",
            "/a/batch/xhr_send",
            &[("content-type", ct)],
            r#"["a"]"#,
        );
        assert_eq!(h.ex(id).status(), 204, "{ct}");
    }
    let poll = h.post("/a/batch/xhr", "");
    assert_eq!(
        h.ex(poll).body(),
        "a[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]\n"
    );
}

// ---- §6 sending endpoints ------------------------------------------------------------------

#[test]
fn s6_xhr_send_error_order() {
    let mut h = Harness::echo();
    let cases = [
        ("", 500, "Payload expected."),
        ("[\"x", 500, "Broken JSON encoding."),
        ("null", 500, "Payload expected."),
        ("{}", 500, "Payload expected."),
        ("\"a\"", 500, "Payload expected."),
        ("[\"a\"]", 404, ""),
    ];
    for (body, status, text) in cases {
        let id = h.post("/a/unknown/xhr_send", body);
        assert_eq!(h.ex(id).status(), status, "{body:?}");
        assert!(h.ex(id).body().contains(text), "{body:?}");
    }
    assert_eq!(h.engine.session_count(), 0, "senders never create sessions");
}

#[test]
fn s6_xhr_send_success_headers() {
    let mut h = Harness::echo();
    h.post("/a/ok/xhr", "");
    let id = h.request(
        "POST",
        "/a/ok/xhr_send",
        &[("origin", "test")],
        "[\"x\",\"y\"]",
    );
    let ex = h.ex(id);
    assert_eq!(ex.status(), 204);
    assert_eq!(ex.body(), "");
    assert_eq!(ex.header("content-type").as_deref(), Some(TEXT));
    assert_eq!(
        ex.header("access-control-allow-origin").as_deref(),
        Some("test")
    );
    let texts: Vec<&str> = h.messages.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["x", "y"]);
    let empty = h.post("/a/ok/xhr_send", "[]");
    assert_eq!(h.ex(empty).status(), 204);
    assert_eq!(h.messages.len(), 2);
}

#[test]
fn s6_jsonp_send_form_and_raw() {
    let mut h = Harness::echo();
    let open = h.get("/a/j/jsonp?c=cb");
    assert_eq!(h.ex(open).body(), "/**/cb(\"o\");\r\n");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let id = h.request("POST", "/a/j/jsonp_send", &form, "d=%5B%22x%22%5D");
    assert_eq!(h.ex(id).status(), 200);
    assert_eq!(h.ex(id).body(), "ok");
    assert_eq!(h.ex(id).header("content-type").as_deref(), Some(TEXT));
    let raw = h.request(
        "POST",
        "/a/j/jsonp_send",
        &[("content-type", "text/plain")],
        "[\"%61bc\"]",
    );
    assert_eq!(h.ex(raw).body(), "ok");
    let texts: Vec<&str> = h.messages.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["x", "%61bc"]);
    for body in ["", "d=", "x=1"] {
        let id = h.request("POST", "/a/j/jsonp_send", &form, body);
        assert_eq!(h.ex(id).status(), 500);
        assert!(h.ex(id).body().contains("Payload expected."), "{body}");
    }
    let id = h.request("POST", "/a/j/jsonp_send", &form, "d=%5B%22x");
    assert!(h.ex(id).body().contains("Broken JSON encoding."));
    let ok = h.request("POST", "/a/j/jsonp_send", &form, "d=%5B%5D");
    assert_eq!(h.ex(ok).body(), "ok");
}

/// §6 (sockjs-rs note): `+` is a space and a malformed `%` escape stays literal, also when
/// a sign follows the `%` (`%+1` is not the byte 1).
#[test]
fn s6_jsonp_send_malformed_escapes_stay_literal() {
    let mut h = Harness::echo();
    h.get("/a/m/jsonp?c=cb");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for (body, expected) in [
        ("d=%5B%22%+1%22%5D", "% 1"),
        ("d=%5B%22%+a%22%5D", "% a"),
        ("d=%5B%22%zz%4%22%5D", "%zz%4"),
    ] {
        let id = h.request("POST", "/a/m/jsonp_send", &form, body);
        assert_eq!(h.ex(id).body(), "ok", "{body}");
        assert_eq!(
            h.messages.last().map(|(_, t)| t.as_str()),
            Some(expected),
            "{body}"
        );
    }
}

/// §6: a send to a closing session is acknowledged (xhr_send 204, jsonp_send 200 `ok`)
/// and its messages dropped; the session stays closing, replaying its close frame.
#[test]
fn s6_sends_to_a_closing_session_are_acknowledged_and_dropped() {
    let mut h = Harness::new(Options::default(), App::Close);
    h.post("/a/c/xhr", "");
    let key = h.last_session();
    assert_eq!(h.engine.session_state(key), SessionState::Closing);
    let send = h.post("/a/c/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(send).status(), 204);
    assert_eq!(h.ex(send).body(), "");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let jsonp = h.request("POST", "/a/c/jsonp_send", &form, "d=%5B%22y%22%5D");
    assert_eq!(h.ex(jsonp).status(), 200);
    assert_eq!(h.ex(jsonp).body(), "ok");
    assert_eq!(h.ex(jsonp).header("content-type").as_deref(), Some(TEXT));
    let raw = h.request("POST", "/a/c/jsonp_send", &[], "[\"z\"]");
    assert_eq!(h.ex(raw).body(), "ok");
    assert!(h.messages.is_empty());
    let poll = h.get("/a/c/jsonp?c=cb");
    assert_eq!(
        h.ex(poll).body(),
        "/**/cb(\"c[3000,\\\"Go away!\\\"]\");\r\n"
    );
}

/// §6 (sockjs-rs note): a body over `max_request_body` is 413 `Payload too large.␤`
/// before any of the steps: not 500 for broken JSON, not 404 for an unknown session, and
/// nothing is delivered. A body of exactly the limit passes.
#[test]
fn s6_oversized_body_is_413() {
    let mut h = Harness::new(
        Options {
            max_request_body: 16,
            ..Options::default()
        },
        App::Echo,
    );
    h.post("/a/big/xhr", "");
    h.get("/a/big/jsonp?c=cb");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let ids = [
        h.post("/a/big/xhr_send", "[\"0123456789abcdef\"]"),
        h.post("/a/big/xhr_send", "[\"0123456789abcdef"),
        h.post("/a/none/xhr_send", "[\"0123456789abcdef\"]"),
        h.request(
            "POST",
            "/a/big/jsonp_send",
            &form,
            "d=%5B%220123456789%22%5D",
        ),
    ];
    for id in ids {
        assert_text(&h, id, 413, "Payload too large.\n");
    }
    assert!(h.messages.is_empty());
    let exact = h.post("/a/big/xhr_send", "[\"0123456789ab\"]");
    assert_eq!(h.ex(exact).status(), 204, "16 bytes is not over 16");
    assert_eq!(h.messages.len(), 1);
}

// ---- §7 sessions ----------------------------------------------------------------------------

#[test]
fn s7_1_simple_session() {
    let mut h = Harness::echo();
    let open = h.post("/000/sess/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    assert_eq!(h.ex(open).header("content-type").as_deref(), Some(JS));
    let send = h.post("/000/sess/xhr_send", "[\"a\"]");
    assert_eq!(h.ex(send).status(), 204);
    let poll = h.post("/000/sess/xhr", "");
    assert_eq!(h.ex(poll).body(), "a[\"a\"]\n");
    let unknown = h.post("/000/other/xhr_send", "[\"a\"]");
    assert_eq!(h.ex(unknown).status(), 404);
}

#[test]
fn s7_1_2_open_frame_comes_before_the_app_hears_of_the_session() {
    let mut h = Harness::echo();
    let id = h.post("/a/order/xhr_streaming", "");
    let chunk = h
        .log
        .iter()
        .position(|l| l == &format!("chunk {}", id.0))
        .expect("chunk");
    let opened = h
        .log
        .iter()
        .position(|l| l.starts_with("opened"))
        .expect("opened");
    assert!(chunk < opened);
    assert_eq!(h.opened[0].1.transport, Transport::XhrStreaming);
    assert_eq!(&*h.opened[0].1.id, "order");
}

#[test]
fn s7_1_2_app_reacting_to_opened_before_writing_still_follows_the_open_frame() {
    // A driver may hand events to the application before it writes the transmits queued
    // with them: whatever the application does then must still go out after `o`.
    use sockjs_core::{Content, Event, RequestId};
    for path in ["/a/react/xhr_streaming", "/a/react/websocket"] {
        let mut h = Harness::new(Options::default(), App::Passive);
        let request = http::Request::get(path)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw==")
            .body(bytes::Bytes::new())
            .expect("request");
        let method = if path.ends_with("websocket") {
            "GET"
        } else {
            "POST"
        };
        let (mut parts, body) = request.into_parts();
        parts.method = method.parse().expect("method");
        let id = RequestId(1);
        h.engine
            .handle_request(h.now, id, http::Request::from_parts(parts, body));
        let Some(Event::Opened { session, .. }) = h.engine.poll_event() else {
            panic!("opened first");
        };
        h.engine.send(h.now, session, "hi").expect("send");
        h.engine.close(h.now, session, 3000, "bye").expect("close");
        let mut frames = Vec::new();
        while let Some(t) = h.engine.poll_transmit() {
            assert_eq!(t.request, id);
            match t.content {
                Content::Chunk(data) => frames.push(String::from_utf8_lossy(&data).into_owned()),
                Content::WsText(text) => frames.push(text),
                _ => {}
            }
        }
        let frames: Vec<&str> = frames.iter().map(|f| f.trim_end()).collect();
        let frames: Vec<&str> = frames
            .into_iter()
            .filter(|f| !f.starts_with("hhhh"))
            .collect();
        assert_eq!(frames, ["o", "a[\"hi\"]", "c[3000,\"bye\"]"], "{path}");
    }
}

#[test]
fn s7_1_2_second_receiver_gets_2010_and_first_is_untouched() {
    let mut h = Harness::echo();
    h.post("/a/busy/xhr", "");
    let first = h.post("/a/busy/xhr", "");
    assert!(!h.ex(first).done(), "poll is held");
    let second = h.post("/a/busy/xhr", "");
    assert_eq!(
        h.ex(second).body(),
        "c[2010,\"Another connection still open\"]\n"
    );
    assert_eq!(h.ex(second).status(), 200);
    assert!(!h.ex(first).done());
    h.post("/a/busy/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(first).body(), "a[\"x\"]\n");
    assert!(h.closed.is_empty());
}

fn head(method: &str, uri: &str) -> http::request::Parts {
    let request = http::Request::builder().method(method).uri(uri).body(());
    request.expect("request").into_parts().0
}

#[test]
fn s7_1_2_attached_receiver_names_the_receiver_a_newcomer_would_collide_with() {
    let mut h = prefixed("/echo");
    h.post("/echo/a/busy/xhr", "");
    let held = h.post("/echo/a/busy/xhr", "");
    assert!(!h.ex(held).done());
    for (method, uri) in [
        ("POST", "/echo/a/busy/xhr"),
        ("POST", "/echo/b/busy/xhr_streaming"),
        ("GET", "/echo/a/busy/eventsource"),
        ("GET", "/echo/a/busy/htmlfile?c=cb"),
        ("GET", "/echo/a/busy/jsonp?c=cb"),
    ] {
        assert_eq!(
            h.engine.attached_receiver(&head(method, uri)),
            Some(held),
            "{uri}"
        );
    }
    for (method, uri) in [
        ("POST", "/echo/a/busy/xhr_send"),
        ("POST", "/echo/a/busy/jsonp_send"),
        ("GET", "/echo/a/busy/websocket"),
        ("OPTIONS", "/echo/a/busy/xhr"),
        ("GET", "/echo/a/busy/xhr"),
        ("POST", "/echo/a/other/xhr"),
        ("POST", "/a/busy/xhr"),
        ("POST", "/echoes/a/busy/xhr"),
        ("GET", "/echo/info"),
    ] {
        assert_eq!(
            h.engine.attached_receiver(&head(method, uri)),
            None,
            "{method} {uri}"
        );
    }
    // Asking changes nothing: a newcomer still gets 2010 and the held poll stays.
    let second = h.post("/echo/a/busy/xhr", "");
    assert_eq!(
        h.ex(second).body(),
        "c[2010,\"Another connection still open\"]\n"
    );
    assert!(!h.ex(held).done());
    // Once the held poll is answered, nothing is attached.
    let send = h.post("/echo/a/busy/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(send).status(), 204);
    assert!(h.ex(held).done());
    assert_eq!(
        h.engine
            .attached_receiver(&head("POST", "/echo/a/busy/xhr")),
        None
    );
    // Nor after the attached receiver is aborted.
    let stream = h.post("/echo/a/gone/xhr_streaming", "");
    let probe = head("GET", "/echo/a/gone/eventsource");
    assert_eq!(h.engine.attached_receiver(&probe), Some(stream));
    h.abort(stream);
    assert_eq!(h.engine.attached_receiver(&probe), None);
}

#[test]
fn s7_1_2_second_streaming_receiver_gets_prelude_then_2010() {
    let mut h = Harness::echo();
    let first = h.post("/a/busy2/xhr_streaming", "");
    let second = h.post("/a/busy2/xhr_streaming", "");
    let chunks = h.ex(second).chunk_strings();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].len(), 2049);
    assert_eq!(chunks[1], "c[2010,\"Another connection still open\"]\n");
    assert!(h.ex(second).ended);
    assert!(!h.ex(first).ended);
}

/// §7.1 rule 2 on the other streaming receivers: the 2010 frame comes after each one's
/// prelude, in its own framing (eventsource's `data:`, htmlfile's script, JSONP's
/// callback).
#[test]
fn s7_1_2_second_eventsource_htmlfile_and_jsonp_receivers_get_2010_in_their_framing() {
    let mut h = Harness::echo();
    h.post("/a/busy3/xhr_streaming", "");
    let frame = "c[2010,\"Another connection still open\"]";
    let es = h.get("/a/busy3/eventsource");
    let chunks = h.ex(es).chunk_strings();
    assert_eq!(
        chunks,
        ["\r\n".to_string(), format!("data: {frame}\r\n\r\n")]
    );
    assert!(h.ex(es).ended);
    let html = h.get("/a/busy3/htmlfile?c=cb");
    let chunks = h.ex(html).chunk_strings();
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert!(chunks[0].len() >= 1024, "the padded head first");
    // The head defines `p`, which hands the frame to the callback.
    assert!(chunks[0].contains("parent.cb;"), "{}", chunks[0]);
    assert_eq!(chunks[1], format!("<script>\np({frame:?});\n</script>\r\n"));
    assert!(h.ex(html).ended);
    let jsonp = h.get("/a/busy3/jsonp?c=cb");
    assert_eq!(h.ex(jsonp).body(), format!("/**/cb({frame:?});\r\n"));
}

/// §7.1 rule 2, a closing session whose application queued messages before it closed: a
/// streaming receiver gets the `a` frame, then the `c` frame, then the response ends.
#[test]
fn s7_1_2_closing_session_with_queued_messages_on_a_stream() {
    let mut h = Harness::new(Options::default(), App::Passive);
    h.post("/a/qs/xhr", "");
    let key = h.last_session();
    h.app_send(key, "last words");
    h.app_close(key, 3001, "bye");
    let stream = h.post("/a/qs/xhr_streaming", "");
    let chunks = h.ex(stream).chunk_strings();
    assert_eq!(
        chunks[1..],
        [
            "a[\"last words\"]\n".to_string(),
            "c[3001,\"bye\"]\n".to_string()
        ]
    );
    assert!(h.ex(stream).ended);
}

#[test]
fn s7_1_2_closing_session_replays_close_frame() {
    let mut h = Harness::new(Options::default(), App::Close);
    let open = h.post("/a/closed/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    for _ in 0..3 {
        let id = h.post("/a/closed/xhr", "");
        assert_eq!(h.ex(id).body(), "c[3000,\"Go away!\"]\n");
        h.advance(Duration::from_secs(4));
    }
    assert!(h.closed.is_empty(), "replays restart the disconnect timer");
    h.advance(Duration::from_secs(5));
    assert_eq!(h.closed.len(), 1);
    assert_eq!(
        h.closed[0].1,
        CloseReason::Closed {
            code: 3000,
            reason: "Go away!".into()
        }
    );
    let reopened = h.post("/a/closed/xhr", "");
    assert_eq!(h.ex(reopened).body(), "o\n");
}

#[test]
fn s7_1_2_open_flushes_queue_on_attach() {
    let mut h = Harness::new(Options::default(), App::Passive);
    h.post("/a/q/xhr", "");
    let key = h.last_session();
    h.app_send(key, "one");
    h.app_send(key, "two");
    let stream = h.post("/a/q/xhr_streaming", "");
    assert_eq!(h.ex(stream).chunk_strings()[1], "a[\"one\",\"two\"]\n");
}

#[test]
fn s7_1_3_heartbeat_at_exactly_the_delay_on_a_poll() {
    let mut h = Harness::echo();
    h.post("/a/hb/xhr", "");
    let poll = h.post("/a/hb/xhr", "");
    h.advance(Duration::from_secs(25) - ms(1));
    assert!(!h.ex(poll).done());
    h.advance(ms(1));
    assert_eq!(h.ex(poll).body(), "h\n");
}

/// §7.1.3: a heartbeat is for a receiver with nothing to say. Messages the application
/// sent before a heartbeat's timer input and not drained yet (an embedder may feed the
/// timeout before it drains) end the poll instead of `h`, which would leave them for the
/// next poll.
#[test]
fn s7_1_3_messages_not_drained_before_a_heartbeat_go_instead_of_it() {
    let mut h = Harness::new(Options::default(), App::Passive);
    let open = h.post("/a/hbm/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    let poll = h.post("/a/hbm/xhr", "");
    h.advance(Duration::from_secs(25) - ms(1));
    let key = h.last_session();
    h.engine.send(h.now, key, "x").expect("send");
    h.skip(ms(1));
    h.engine.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.ex(poll).body(), "a[\"x\"]\n");
    let next = h.post("/a/hbm/xhr", "");
    assert!(!h.ex(next).done(), "nothing was left behind");
}

#[test]
fn s7_1_3_heartbeat_on_a_stream_repeats_after_idle() {
    let mut h = Harness::echo();
    let stream = h.post("/a/hbs/xhr_streaming", "");
    h.advance(Duration::from_secs(10));
    h.post("/a/hbs/xhr_send", "[\"x\"]");
    assert_eq!(
        h.ex(stream).chunk_strings().last().map(String::as_str),
        Some("a[\"x\"]\n")
    );
    h.advance(Duration::from_secs(25) - ms(1));
    assert_eq!(h.ex(stream).chunks.len(), 3, "a write resets the heartbeat");
    h.advance(ms(1));
    assert_eq!(
        h.ex(stream).chunk_strings().last().map(String::as_str),
        Some("h\n")
    );
    h.advance(Duration::from_secs(25));
    assert_eq!(h.ex(stream).chunks.len(), 5);
    assert!(h.closed.is_empty());
}

#[test]
fn s7_1_5_session_expires_exactly_after_the_disconnect_delay() {
    let mut h = Harness::echo();
    h.post("/a/exp/xhr", "");
    h.advance(Duration::from_secs(4));
    let early = h.post("/a/exp/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(early).status(), 204);
    h.advance(Duration::from_secs(1) - ms(1));
    assert!(h.closed.is_empty());
    h.advance(ms(1));
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::Timeout);
    let late = h.post("/a/exp/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(late).status(), 404);
    let reopen = h.post("/a/exp/xhr", "");
    assert_eq!(h.ex(reopen).body(), "o\n");
}

/// The disconnect delay is kept by the requests' own time too: a request that comes after
/// it, before the (late) timer input, finds the session gone.
#[test]
fn s7_1_5_a_request_after_the_delay_finds_the_session_gone_whatever_the_timer() {
    let mut h = Harness::echo();
    h.post("/a/late/xhr", "");
    h.skip(Duration::from_millis(5500));
    let late = h.post("/a/late/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(late).status(), 404);
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::Timeout);
    h.skip(Duration::from_secs(6));
    let reopen = h.post("/a/late/xhr", "");
    assert_eq!(h.ex(reopen).body(), "o\n");
}

/// So too for the application: a send to a session past its disconnect delay, before the
/// (late) timer input, finds it gone, rather than queueing a message no one will read.
#[test]
fn s7_1_5_an_application_send_after_the_delay_finds_the_session_gone_whatever_the_timer() {
    let mut h = Harness::echo();
    h.post("/a/gone/xhr", "");
    let key = h.last_session();
    h.skip(Duration::from_millis(5000));
    assert_eq!(
        h.engine.send(h.now, key, "late"),
        Err(sockjs_core::SendError::UnknownSession)
    );
    h.drain();
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::Timeout);
}

#[test]
fn s7_1_5_no_expiry_while_a_receiver_is_attached() {
    let mut h = Harness::echo();
    let stream = h.post("/a/att/xhr_streaming", "");
    h.advance(Duration::from_secs(60));
    assert!(h.closed.is_empty());
    assert!(!h.ex(stream).ended);
}

#[test]
fn s7_1_6_abort_closes_the_session_by_default() {
    let mut h = Harness::echo();
    let stream = h.post("/a/ab/xhr_streaming", "");
    h.abort(stream);
    assert_eq!(h.closed[0].1, CloseReason::Aborted);
    let next = h.post("/a/ab/xhr", "");
    assert_eq!(h.ex(next).body(), "o\n");
    let mut h = Harness::echo();
    h.post("/a/ab2/xhr", "");
    let poll = h.post("/a/ab2/xhr", "");
    h.abort(poll);
    let next = h.post("/a/ab2/xhr", "");
    assert_eq!(h.ex(next).body(), "o\n");
}

/// Sessions that end at once leave no timer entries behind in proportion to how many came
/// and went: the engine's timer heap stays within a constant factor of the sessions it
/// holds (plus a small floor), however fast a peer opens and drops them.
#[test]
fn s7_1_6_sessions_opened_and_dropped_leave_bounded_timer_entries() {
    let mut h = Harness::echo();
    let keep = h.post("/a/kept/xhr_streaming", "");
    for i in 0..10_000 {
        if i % 2 == 0 {
            let stream = h.post(&format!("/a/s{i}/xhr_streaming"), "");
            h.abort(stream);
        } else {
            let ws = h.ws_open(&format!("/a/w{i}/websocket"));
            h.ws_closed(ws);
        }
        let bound = 4 * h.engine.session_count() + 1024;
        assert!(
            h.engine.timer_entries() <= bound,
            "{} timer entries for {} sessions after {i}",
            h.engine.timer_entries(),
            h.engine.session_count()
        );
    }
    assert_eq!(h.engine.session_count(), 1);
    // The session kept still gets its heartbeat.
    h.advance(Duration::from_secs(25));
    assert_eq!(
        h.ex(keep).chunk_strings().last().map(String::as_str),
        Some("h\n")
    );
}

#[test]
fn s7_1_6_abort_interrupt_policy_replays_1002() {
    let opts = Options {
        abort: sockjs_core::AbortPolicy::Interrupt,
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let stream = h.post("/a/int/xhr_streaming", "");
    h.abort(stream);
    let next = h.post("/a/int/xhr", "");
    assert_eq!(h.ex(next).body(), "c[1002,\"Connection interrupted\"]\n");
    h.advance(Duration::from_secs(5));
    assert_eq!(h.closed[0].1, CloseReason::Aborted);
}

#[test]
fn s7_1_6_abort_detach_policy_keeps_the_session() {
    let opts = Options {
        abort: sockjs_core::AbortPolicy::Detach,
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    h.post("/a/det/xhr", "");
    let poll = h.post("/a/det/xhr", "");
    h.abort(poll);
    let send = h.post("/a/det/xhr_send", "[\"kept\"]");
    assert_eq!(h.ex(send).status(), 204);
    let next = h.post("/a/det/xhr", "");
    assert_eq!(h.ex(next).body(), "a[\"kept\"]\n");
}

#[test]
fn s7_1_7_app_close_unlinks_the_receiver() {
    let mut h = Harness::new(Options::default(), App::Close);
    let stream = h.post("/a/cl/xhr_streaming", "");
    let chunks = h.ex(stream).chunk_strings();
    assert_eq!(
        chunks[1..],
        ["o\n".to_string(), "c[3000,\"Go away!\"]\n".to_string()]
    );
    assert!(h.ex(stream).ended);
    let next = h.post("/a/cl/xhr_streaming", "");
    let chunks = h.ex(next).chunk_strings();
    assert_eq!(chunks[1], "c[3000,\"Go away!\"]\n", "close frame, not 2010");
    assert!(h.ex(next).ended);
}

#[test]
fn s7_1_7_close_after_queued_messages_sends_them_first() {
    let mut h = Harness::new(Options::default(), App::Passive);
    h.post("/a/qc/xhr", "");
    let key = h.last_session();
    h.app_send(key, "last words");
    h.app_close(key, 3001, "bye");
    let poll = h.post("/a/qc/xhr", "");
    assert_eq!(
        h.ex(poll).body(),
        "a[\"last words\"]\n",
        "a poll takes one frame"
    );
    let poll = h.post("/a/qc/xhr", "");
    assert_eq!(h.ex(poll).body(), "c[3001,\"bye\"]\n");
}

#[test]
fn s7_1_8_sends_refused_once_closing() {
    let mut h = Harness::new(Options::default(), App::Passive);
    h.post("/a/r/xhr", "");
    let key = h.last_session();
    h.app_close(key, 3000, "x");
    assert_eq!(
        h.engine.send(h.now, key, "late"),
        Err(sockjs_core::SendError::NotOpen)
    );
    h.advance(Duration::from_secs(5));
    assert_eq!(
        h.engine.send(h.now, key, "late"),
        Err(sockjs_core::SendError::UnknownSession)
    );
}

#[test]
fn s7_session_state_goes_open_closing_closed() {
    let mut h = Harness::new(Options::default(), App::Passive);
    h.post("/a/st/xhr", "");
    let key = h.last_session();
    assert_eq!(h.engine.session_state(key), SessionState::Open);
    h.app_close(key, 3000, "x");
    assert_eq!(h.engine.session_state(key), SessionState::Closing);
    h.advance(Duration::from_secs(5));
    assert_eq!(h.engine.session_state(key), SessionState::Closed);
    // A new session under the same URL id has a new key; the old one stays closed.
    h.post("/a/st/xhr", "");
    assert_ne!(h.last_session(), key);
    assert_eq!(h.engine.session_state(key), SessionState::Closed);
}

#[test]
fn s7_queue_bound_refuses_sends_past_max_queued_bytes() {
    let mut h = Harness::new(
        Options {
            max_queued_bytes: 32,
            ..Options::default()
        },
        App::Passive,
    );
    h.post("/a/full/xhr", "");
    let key = h.last_session();
    assert!(h.engine.send(h.now, key, "0123456789").is_ok());
    assert!(h.engine.send(h.now, key, "0123456789").is_ok());
    assert_eq!(
        h.engine.send(h.now, key, "0123456789"),
        Err(sockjs_core::SendError::QueueFull)
    );
    assert!(h.engine.queued_bytes(key).expect("live") <= 32);
    // Escaping can grow a message past the bound even when its raw length fits.
    assert_eq!(
        h.engine.send(h.now, key, "\u{1}\u{1}"),
        Err(sockjs_core::SendError::QueueFull)
    );
    let poll = h.post("/a/full/xhr", "");
    assert_eq!(h.ex(poll).body(), "a[\"0123456789\",\"0123456789\"]\n");
}

/// §7.1 (sockjs-rs note): a request that would create a session while `max_sessions` are
/// alive gets 503 `Too many sessions.␤`, on every receiver and both WebSockets. §9.1's
/// order: a malformed upgrade gets its 400 first, a valid one the 503.
#[test]
fn s7_max_sessions_gives_503() {
    let mut h = Harness::new(
        Options {
            max_sessions: 2,
            ..Options::default()
        },
        App::Echo,
    );
    h.post("/a/m1/xhr", "");
    h.post("/a/m2/xhr", "");
    let refused = [
        h.post("/a/m3/xhr", ""),
        h.post("/a/m3/xhr_streaming", ""),
        h.get("/a/m3/eventsource"),
        h.get("/a/m3/htmlfile?c=cb"),
        h.get("/a/m3/jsonp?c=cb"),
        h.ws_open("/a/m4/websocket"),
        h.ws_open("/websocket"),
    ];
    for id in refused {
        assert_text(&h, id, 503, "Too many sessions.\n");
    }
    for path in ["/a/m5/websocket", "/websocket"] {
        let malformed = h.request(
            "GET",
            path,
            &[
                ("upgrade", "websocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-version", "13"),
            ],
            "",
        );
        assert_text(&h, malformed, 400, "Missing Sec-WebSocket-Key.");
    }
    assert_eq!(h.engine.session_count(), 2);
    let existing = h.post("/a/m1/xhr", "");
    assert!(!h.ex(existing).done(), "existing sessions still served");
}

// ---- §8 HTTP transports -----------------------------------------------------------------------

#[test]
fn s8_xhr_streaming_prelude_and_frames_are_separate_chunks() {
    let mut h = Harness::echo();
    let id = h.post("/a/xs/xhr_streaming", "");
    assert_eq!(h.ex(id).header("content-type").as_deref(), Some(JS));
    h.post("/a/xs/xhr_send", "[\"x\"]");
    let chunks = h.ex(id).chunk_strings();
    assert_eq!(chunks[0], format!("{}\n", "h".repeat(2048)));
    assert_eq!(chunks[1..], ["o\n".to_string(), "a[\"x\"]\n".to_string()]);
}

#[test]
fn s8_xhr_streaming_response_limit_ends_after_the_31st_frame() {
    let mut h = Harness::echo();
    let id = h.post("/a/lim/xhr_streaming", "");
    let msg = format!("[\"{}\"]", "x".repeat(128));
    for i in 0..31 {
        assert!(!h.ex(id).ended, "ended early after {i} frames");
        h.post("/a/lim/xhr_send", &msg);
        assert_eq!(h.ex(id).chunks.last().map(|c| c.len()), Some(134));
    }
    assert!(h.ex(id).ended, "ended right after the 31st frame");
    assert_eq!(h.ex(id).chunks.len(), 1 + 1 + 31);
    assert!(h.closed.is_empty(), "limit is a normal detach");
    let next = h.post("/a/lim/xhr_streaming", "");
    assert!(!h.ex(next).ended);
}

#[test]
fn s8_eventsource_frames() {
    let mut h = Harness::echo();
    let id = h.get("/a/es/eventsource");
    assert_eq!(
        h.ex(id).header("content-type").as_deref(),
        Some("text/event-stream")
    );
    h.post("/a/es/xhr_send", r#"["  \u0000\n\r ","100%"]"#);
    let chunks = h.ex(id).chunk_strings();
    assert_eq!(chunks[0], "\r\n");
    assert_eq!(chunks[1], "data: o\r\n\r\n");
    assert_eq!(
        chunks[2],
        "data: a[\"  \\u0000\\n\\r \",\"100%25\"]\r\n\r\n"
    );
}

#[test]
fn s8_eventsource_response_limit() {
    let mut h = Harness::echo();
    let id = h.get("/a/esl/eventsource");
    h.post("/a/esl/xhr_send", &format!("[\"{}\"]", "x".repeat(4096)));
    assert!(h.ex(id).ended);
}

#[test]
fn s8_eventsource_0_3_3_content_type() {
    let mut h = Harness::new(
        Options {
            protocol: ProtocolVersion::V0_3_3,
            ..Options::default()
        },
        App::Echo,
    );
    let id = h.get("/a/es/eventsource");
    assert_eq!(
        h.ex(id).header("content-type").as_deref(),
        Some("text/event-stream; charset=UTF-8")
    );
}

#[test]
fn s8_htmlfile_head_and_frames() {
    let mut h = Harness::echo();
    let id = h.get("/a/hf/htmlfile?c=%63allback");
    assert_eq!(
        h.ex(id).header("content-type").as_deref(),
        Some("text/html; charset=UTF-8")
    );
    h.post("/a/hf/xhr_send", "[\"x\"]");
    let chunks = h.ex(id).chunk_strings();
    assert!(chunks[0].len() > 1024);
    let expected_head = "<!doctype html>\n<html><head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    var c = parent.callback;\n    c.start();\n    function p(d) {c.message(d);};\n    window.onload = function() {c.stop();};\n  </script>";
    assert_eq!(chunks[0].trim(), expected_head);
    assert_eq!(chunks[1], "<script>\np(\"o\");\n</script>\r\n");
    assert_eq!(chunks[2], "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n");
}

/// The htmlfile page head of §8 with `callback` substituted.
fn htmlfile_head(callback: &str) -> String {
    format!(
        "<!doctype html>\n<html><head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    var c = parent.{callback};\n    c.start();\n    function p(d) {{c.message(d);}};\n    window.onload = function() {{c.stop();}};\n  </script>"
    )
}

/// §8 (sockjs-rs note): the head chunk is head + `␤` + spaces up to byte 1024 + `CRLF
/// CRLF`, always 1028 bytes, for the shortest callback and the longest (64 bytes), which
/// both jsonp and htmlfile accept; 65 bytes is `invalid "callback" parameter`.
#[test]
fn s8_htmlfile_head_chunk_is_always_1028_bytes_and_callbacks_up_to_64() {
    let mut h = Harness::echo();
    let long = "a".repeat(64);
    for (n, callback) in ["c", "_jp.a1b2-c_", long.as_str()].into_iter().enumerate() {
        let id = h.get(&format!("/a/hl{n}/htmlfile?c={callback}"));
        let head = htmlfile_head(callback);
        let expected = format!("{head}\n{}\r\n\r\n", " ".repeat(1024 - head.len() - 1));
        let chunks = h.ex(id).chunk_strings();
        assert_eq!(chunks[0], expected, "{callback}");
        assert_eq!(chunks[0].len(), 1028, "{callback}");
        assert_eq!(chunks[1], "<script>\np(\"o\");\n</script>\r\n");
    }
    let jsonp = h.get(&format!("/a/jl/jsonp?c={long}"));
    assert_eq!(h.ex(jsonp).body(), format!("/**/{long}(\"o\");\r\n"));
    assert_eq!(h.engine.session_count(), 4);
    let too_long = "a".repeat(65);
    for t in ["htmlfile", "jsonp"] {
        for param in ["c", "callback"] {
            let id = h.get(&format!("/a/tl/{t}?{param}={too_long}"));
            assert_text(&h, id, 500, "invalid \"callback\" parameter");
        }
    }
    assert_eq!(
        h.engine.session_count(),
        4,
        "a refused callback opens nothing"
    );
}

#[test]
fn s8_htmlfile_response_limit() {
    let mut h = Harness::echo();
    let id = h.get("/a/hfl/htmlfile?c=cb");
    h.post("/a/hfl/xhr_send", &format!("[\"{}\"]", "x".repeat(4096)));
    assert!(h.ex(id).ended);
}

#[test]
fn s8_callbacks_missing_or_invalid_are_500() {
    let mut h = Harness::echo();
    for t in ["htmlfile", "jsonp"] {
        let id = h.get(&format!("/a/a/{t}"));
        assert_text(&h, id, 500, "\"callback\" parameter required");
        for cb in ["%20", "*", "abc(", "abc%28", &"a".repeat(65)] {
            let id = h.get(&format!("/a/a/{t}?c={cb}"));
            assert_text(&h, id, 500, "invalid \"callback\" parameter");
        }
    }
    assert_eq!(h.engine.session_count(), 0, "no session on callback errors");
    let id = h.get("/a/cbname/jsonp?callback=_jp.a1b2-c_");
    assert_eq!(h.ex(id).body(), "/**/_jp.a1b2-c_(\"o\");\r\n");
}

#[test]
fn s8_jsonp_polling_frames_and_close() {
    let mut h = Harness::new(Options::default(), App::Close);
    let open = h.get("/a/jp/jsonp?c=x");
    assert_eq!(h.ex(open).header("content-type").as_deref(), Some(JS));
    assert_eq!(h.ex(open).body(), "/**/x(\"o\");\r\n");
    for _ in 0..2 {
        let id = h.get("/a/jp/jsonp?c=x");
        assert_eq!(h.ex(id).body(), "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n");
    }
}

#[test]
fn s8_jsonp_0_3_3_has_no_prefix() {
    let mut h = Harness::new(
        Options {
            protocol: ProtocolVersion::V0_3_3,
            ..Options::default()
        },
        App::Echo,
    );
    let open = h.get("/a/jp/jsonp?c=x");
    assert_eq!(h.ex(open).body(), "x(\"o\");\r\n");
}

#[test]
fn s8_htmlfile_escapes_script_end_tags() {
    let mut h = Harness::echo();
    let id = h.get("/a/xss/htmlfile?c=cb");
    h.post(
        "/a/xss/xhr_send",
        "[\"</script><script>alert(1)</script>\"]",
    );
    let last = h.ex(id).chunk_strings().pop().expect("frame");
    assert_eq!(
        last,
        "<script>\np(\"a[\\\"\\u003c/script>\\u003cscript>alert(1)\\u003c/script>\\\"]\");\n</script>\r\n"
    );
    assert_eq!(last.matches("</script>").count(), 1, "{last}");
}

/// §8 (sockjs-rs note): jsonp keeps `<` raw (only htmlfile writes it as `\u003c`): the
/// frame is `/**/cb(` + js(F) + `);` + CRLF with js(F) as `JSON.stringify` writes it.
#[test]
fn s8_jsonp_keeps_less_than_raw() {
    let mut h = Harness::echo();
    h.get("/a/lt/jsonp?c=cb");
    let poll = h.get("/a/lt/jsonp?c=cb");
    h.post("/a/lt/xhr_send", "[\"</script><b>\"]");
    assert_eq!(
        h.ex(poll).body(),
        "/**/cb(\"a[\\\"</script><b>\\\"]\");\r\n"
    );
}

/// §7.1.4 and §8 "Counting toward the limit": only the wrapped frames count, never the
/// prelude, and the stream ends with the frame that brings the count to the limit or past
/// it. Each limit here is one the prelude alone reaches (or, for eventsource's 2 bytes,
/// reaches with `o`), so a count that included it would end the stream right after `o`.
#[test]
fn s8_limit_bookkeeping_excludes_prelude() {
    let limited = |response_limit| {
        Harness::new(
            Options {
                response_limit,
                ..Options::default()
            },
            App::Echo,
        )
    };
    let message = |n| format!("[\"{}\"]", "x".repeat(n));
    // xhr_streaming: 2049-byte prelude; `o␤` is 2 and `a["x…"]␤` is n + 6.
    let mut h = limited(2049);
    for (sid, n, ends) in [("x1", 2040, false), ("x2", 2041, true)] {
        let id = h.post(&format!("/a/{sid}/xhr_streaming"), "");
        assert_eq!(h.ex(id).chunks[0].len(), 2049);
        assert!(!h.ex(id).ended, "{sid}: the prelude is not counted");
        h.post(&format!("/a/{sid}/xhr_send"), &message(n));
        assert_eq!(h.ex(id).ended, ends, "{sid}: {} of 2049", 2 + n + 6);
    }
    // htmlfile: 1028-byte prelude; the `o` script is 28 and the message's 34 + n.
    let mut h = limited(1028);
    for (sid, n, ends) in [("h1", 965, false), ("h2", 966, true)] {
        let id = h.get(&format!("/a/{sid}/htmlfile?c=cb"));
        assert_eq!(h.ex(id).chunks[0].len(), 1028);
        assert_eq!(h.ex(id).chunks[1].len(), 28);
        assert!(!h.ex(id).ended, "{sid}: the prelude is not counted");
        h.post(&format!("/a/{sid}/xhr_send"), &message(n));
        assert_eq!(h.ex(id).chunks[2].len(), 34 + n);
        assert_eq!(h.ex(id).ended, ends, "{sid}: {} of 1028", 28 + 34 + n);
    }
    // eventsource: `CRLF` prelude; `data: o` + CRLF CRLF is 11, 13 with the prelude.
    let mut h = limited(12);
    let id = h.get("/a/e1/eventsource");
    assert_eq!(h.ex(id).chunk_strings(), ["\r\n", "data: o\r\n\r\n"]);
    assert!(!h.ex(id).ended, "11 of 12: the prelude is not counted");
    h.post("/a/e1/xhr_send", "[\"x\"]");
    assert!(h.ex(id).ended, "the next frame reaches the limit");
    assert!(h.closed.is_empty(), "the limit detaches, it does not close");
}

// ---- §9 WebSocket ---------------------------------------------------------------------------

/// The body of the 400 for a version the engine does not speak (§9.1).
const UNSUPPORTED: &str = "Only supported WebSocket protocol is RFC 6455.";

/// §9.1 (sockjs-rs note): each handshake refusal, in the engine's order of checks, has its
/// exact text as `text/plain; charset=UTF-8`, on the SockJS and the raw WebSocket alike; a
/// refused version also says `Sec-WebSocket-Version: 13`. POST is 405 before any of it.
#[test]
fn s9_1_handshake_errors() {
    let key = ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw==");
    let v13 = ("sec-websocket-version", "13");
    let upgrade = ("upgrade", "websocket");
    let connection = ("connection", "Upgrade");
    let hixie = [
        upgrade,
        connection,
        ("sec-websocket-key1", "4 @1  46546xW%0l 1 5"),
        ("sec-websocket-key2", "12998 5 Y3 1  .P00"),
    ];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "Can \"Upgrade\" only to \"WebSocket\"."),
        (
            vec![("connection", "Upgrade"), v13, key],
            "Can \"Upgrade\" only to \"WebSocket\".",
        ),
        (
            vec![("upgrade", "WebSocket"), ("connection", "close"), v13, key],
            "\"Connection\" must be \"Upgrade\".",
        ),
        (
            vec![upgrade, v13, key],
            "\"Connection\" must be \"Upgrade\".",
        ),
        (
            vec![upgrade, connection, ("sec-websocket-version", "8"), key],
            UNSUPPORTED,
        ),
        (vec![upgrade, connection, key], UNSUPPORTED),
        (vec![upgrade, connection, v13, v13, key], UNSUPPORTED),
        (hixie.to_vec(), UNSUPPORTED),
        (vec![upgrade, connection, v13], "Missing Sec-WebSocket-Key."),
        (
            vec![upgrade, connection, v13, ("sec-websocket-key", "")],
            "Missing Sec-WebSocket-Key.",
        ),
        (
            vec![
                upgrade,
                connection,
                v13,
                ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw"),
            ],
            "Invalid Sec-WebSocket-Key.",
        ),
        (
            vec![upgrade, connection, v13, key, key],
            "Invalid Sec-WebSocket-Key.",
        ),
    ];
    let mut h = Harness::echo();
    for path in ["/a/b/websocket", "/websocket"] {
        for (fields, text) in &cases {
            let id = h.request("GET", path, fields, "");
            assert_text(&h, id, 400, text);
            let version = h.ex(id).header("sec-websocket-version");
            let expected = (*text == UNSUPPORTED).then(|| "13".to_owned());
            assert_eq!(version, expected, "{path} {fields:?}");
        }
        let post = h.request("POST", path, &[upgrade, connection, v13, key], "");
        assert_eq!(h.ex(post).status(), 405);
        assert_eq!(h.ex(post).header("allow").as_deref(), Some("GET"));
        assert_eq!(h.ex(post).header("content-type"), None);
        assert_eq!(h.ex(post).body(), "");
    }
    assert_eq!(h.engine.session_count(), 0);
}

/// §9.1 (sockjs-rs note): with hixie-76 on, a key that does not divide by its spaces is
/// 400 `Invalid hixie-76 key.`, on both WebSocket endpoints.
#[test]
fn s9_1_invalid_hixie76_key_text() {
    let mut h = Harness::new(
        Options {
            hixie76: true,
            ..Options::default()
        },
        App::Echo,
    );
    // No spaces in key1; a remainder in key2; a remainder in key1.
    for (key1, key2) in [("123", "1 2"), ("1 2", "13  "), ("3  ", "1 2")] {
        for path in ["/a/b/websocket", "/websocket"] {
            let fields = [
                ("upgrade", "WebSocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-key1", key1),
                ("sec-websocket-key2", key2),
            ];
            let id = h.request("GET", path, &fields, "");
            assert_text(&h, id, 400, "Invalid hixie-76 key.");
        }
    }
    assert_eq!(h.engine.session_count(), 0);
}

/// RFC 6455 §4.1: the key is the base64 of 16 bytes; anything else is a bad handshake.
#[test]
fn s9_1_sec_websocket_key_must_be_base64_of_16_bytes() {
    let mut h = Harness::echo();
    for key in [
        "x",
        "x3JJHMbDL1EzLkh9GBhXDw",
        "x3JJHMbDL1EzLkh9GBhXDw=",
        "x3JJHMbDL1EzLkh9GBhXD*==",
        "eDNKSkhNYkRMMUV6TGtoOUdCaFhEdz09",
        "x3JJHMbDL1EzLkh9GBhXDw==x",
    ] {
        let request = h.request(
            "GET",
            "/a/b/websocket",
            &[
                ("upgrade", "websocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", key),
            ],
            "",
        );
        assert_text(&h, request, 400, "Invalid Sec-WebSocket-Key.");
    }
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn s9_1_rfc6455_accept_key_and_headers() {
    let mut h = Harness::echo();
    let id = h.request(
        "GET",
        "/a/b/websocket",
        &[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
            ("sec-websocket-origin", "http://x"),
        ],
        "",
    );
    let ex = h.ex(id);
    assert_eq!(ex.status(), 101);
    assert_eq!(
        ex.header("sec-websocket-accept").as_deref(),
        Some("HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
    );
    assert_eq!(ex.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(ex.header("connection").as_deref(), Some("Upgrade"));
    assert_eq!(ex.header("content-length"), None);
    assert_eq!(
        ex.upgrade.as_ref().map(|u| u.1),
        Some(Handshake::Rfc6455 { deflate: None })
    );
}

#[test]
fn s9_1_0_3_3_accepts_versions_7_and_8() {
    let mut h = Harness::new(
        Options {
            protocol: ProtocolVersion::V0_3_3,
            ..Options::default()
        },
        App::Echo,
    );
    for v in ["7", "8", "13"] {
        let id = h.request(
            "GET",
            "/a/b/websocket",
            &[
                ("upgrade", "websocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-version", v),
                ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
            ],
            "",
        );
        assert_eq!(h.ex(id).status(), 101, "version {v}");
    }
    // A version it does not speak is refused naming all three (RFC 6455 §4.2.2).
    let id = h.request(
        "GET",
        "/a/b/websocket",
        &[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "9"),
            ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ],
        "",
    );
    assert_eq!(h.ex(id).status(), 400);
    assert_eq!(
        h.ex(id).header("sec-websocket-version").as_deref(),
        Some("13, 8, 7")
    );
}

#[test]
fn s9_1_hixie76_handshake() {
    let hixie = [
        ("upgrade", "WebSocket"),
        ("connection", "Upgrade"),
        ("host", "localhost:8081"),
        ("origin", "http://example.com"),
        ("sec-websocket-key1", "4 @1  46546xW%0l 1 5"),
        ("sec-websocket-key2", "12998 5 Y3 1  .P00"),
    ];
    let mut off = Harness::echo();
    let id = off.request("GET", "/a/b/websocket", &hixie, "");
    assert_text(&off, id, 400, UNSUPPORTED); // hixie-76 is off by default
    assert_eq!(
        off.ex(id).header("sec-websocket-version").as_deref(),
        Some("13")
    );
    let mut h = Harness::new(
        Options {
            hixie76: true,
            prefix: "/echo".into(),
            ..Options::default()
        },
        App::Echo,
    );
    let id = h.request("GET", "/echo/a/b/websocket", &hixie, "");
    let ex = h.ex(id);
    assert_eq!(ex.status(), 101);
    assert_eq!(
        ex.upgrade.as_ref().map(|u| u.1),
        Some(Handshake::Hixie76 {
            key1: 829309203,
            key2: 259970620
        })
    );
    assert_eq!(ex.header("upgrade").as_deref(), Some("WebSocket"));
    assert_eq!(
        ex.header("sec-websocket-origin").as_deref(),
        Some("http://example.com")
    );
    assert_eq!(
        ex.header("sec-websocket-location").as_deref(),
        Some("ws://localhost:8081/echo/a/b/websocket")
    );
    assert_eq!(ex.ws_texts, ["o"]);
    let bad = [
        ("upgrade", "WebSocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key1", "123"),
        ("sec-websocket-key2", "1 2"),
    ];
    let id = h.request("GET", "/echo/a/c/websocket", &bad, "");
    assert_text(&h, id, 400, "Invalid hixie-76 key.");
}

#[test]
fn s9_2_open_echo_and_batches() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/b/websocket");
    assert_eq!(h.ex(ws).ws_texts, ["o"]);
    h.ws_send(ws, "[\"a\",\"b\"]");
    assert_eq!(
        h.ex(ws).ws_texts[1],
        "a[\"a\",\"b\"]",
        "both echoes in one frame"
    );
    h.ws_send(ws, "\"c\"");
    assert_eq!(h.ex(ws).ws_texts[2], "a[\"c\"]");
}

#[test]
fn s9_2_empty_frame_and_empty_array_are_ignored() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/b/websocket");
    h.ws_send(ws, "");
    h.ws_send(ws, "[]");
    assert_eq!(h.ex(ws).ws_texts, ["o"]);
    assert!(h.ex(ws).ws_close.is_none());
    h.ws_send(ws, "[\"a\"]");
    assert_eq!(h.ex(ws).ws_texts[1], "a[\"a\"]");
}

#[test]
fn s9_2_broken_json_terminates() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/b/websocket");
    h.ws_send(ws, "[\"a");
    assert_eq!(h.ex(ws).ws_close, Some((3000, "Broken framing.".into())));
    assert_eq!(h.closed[0].1, CloseReason::BrokenFraming);
    h.ws_send(ws, "[\"late\"]");
    assert!(h.messages.is_empty());
}

/// What one input's messages may weigh (each its length and 32 bytes): twice the input's
/// bound and 32. A frame of tiny messages (`[0,0,...]`, or `["","",...]`) weighs up to 16.5
/// times its bytes, and past that it is refused whole, as one past the size bound: a
/// WebSocket closed with 1009, an `xhr_send` with 413, nothing delivered. (It was queued
/// whole for the application: with permessage-deflate, 281 bytes on the wire became
/// 131,071 messages.)
#[test]
fn s9_2_and_s6_an_input_of_tiny_messages_is_bounded_by_what_they_weigh() {
    let options = Options {
        max_message_size: 1024,
        max_request_body: 1024,
        ..Options::default()
    };
    // 2,080 bytes of weight (twice the bound and 32): 63 messages `0` (33 each) fit, 64
    // do not.
    let array = |item: &str, n: usize| format!("[{}]", vec![item; n].join(","));
    let mut h = Harness::new(options.clone(), App::Echo);
    let ws = h.ws_open("/a/b/websocket");
    h.ws_send(ws, &array("0", 63));
    assert_eq!(h.messages.len(), 63);
    assert!(h.ex(ws).ws_close.is_none());
    h.ws_send(ws, &array("0", 64));
    assert_eq!(h.messages.len(), 63, "nothing of it delivered");
    assert_eq!(h.ex(ws).ws_close, Some((1009, "Message too big".into())));
    assert_eq!(h.closed[0].1, CloseReason::MessageTooBig);

    // xhr_send: 65 empty messages (32 each) fit, 66 do not.
    let mut h = Harness::new(options, App::Echo);
    let open = h.post("/a/c/xhr", "");
    assert_eq!(h.ex(open).body(), "o\n");
    let fits = h.post("/a/c/xhr_send", &array("\"\"", 65));
    assert_eq!(h.ex(fits).status(), 204);
    assert_eq!(h.messages.len(), 65);
    let over = h.post("/a/c/xhr_send", &array("\"\"", 66));
    assert_eq!(h.ex(over).status(), 413);
    assert_eq!(h.ex(over).body(), "Payload too large.\n");
    assert_eq!(h.messages.len(), 65, "nothing of it delivered");
}

#[test]
fn s9_2_binary_utf8_is_handled_as_text() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/bin/websocket");
    h.engine.handle_ws_binary(h.now, ws, b"[\"a\",\"b\"]");
    h.drain();
    assert_eq!(h.messages.len(), 2);
    assert_eq!(h.ex(ws).ws_texts, ["o", "a[\"a\",\"b\"]"]);
    assert!(h.ex(ws).ws_close.is_none());
    // Valid UTF-8 that is broken JSON still breaks the framing, as text would.
    h.engine.handle_ws_binary(h.now, ws, b"[\"a");
    h.drain();
    assert_eq!(h.ex(ws).ws_close, Some((3000, "Broken framing.".into())));
    assert_eq!(h.closed[0].1, CloseReason::BrokenFraming);
}

#[test]
fn s9_2_binary_that_is_not_utf8_is_broken_framing() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/bin/websocket");
    h.engine
        .handle_ws_binary(h.now, ws, &[0x5b, 0x22, 0xff, 0x22, 0x5d]);
    h.drain();
    assert_eq!(h.ex(ws).ws_close, Some((3000, "Broken framing.".into())));
    assert_eq!(h.closed[0].1, CloseReason::BrokenFraming);
    assert!(h.messages.is_empty());
    assert_eq!(h.engine.pending_requests(), 0);
}

/// §9.2 (sockjs-rs note): a message over `max_message_size` (the driver reports it with
/// `handle_ws_too_big`) closes the socket with 1009 `Message too big` and ends the
/// session at once.
#[test]
fn s9_2_message_over_max_message_size_closes_1009_and_ends_the_session() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/big/websocket");
    assert_eq!(h.engine.session_count(), 1);
    h.engine.handle_ws_too_big(h.now, ws);
    h.drain();
    assert_eq!(h.ex(ws).ws_close, Some((1009, "Message too big".into())));
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::MessageTooBig);
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.pending_requests(), 0);
    h.ws_send(ws, "[\"late\"]");
    assert!(h.messages.is_empty(), "nothing is read after the close");
}

/// §9.2 (sockjs-rs note): a message begun and not finished in time (the driver reports it
/// with `handle_ws_message_timeout`, `Config::message_read_timeout`) closes the socket
/// with 1008 `Message timeout`, no `c` frame, and ends the session at once, on SockJS and
/// raw sockets; a request that is no socket of a live session is ignored.
#[test]
fn s9_2_a_message_that_does_not_end_in_time_closes_1008_and_ends_the_session() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/slow/websocket");
    h.ws_send(ws, "[\"before\"]");
    h.engine.handle_ws_message_timeout(h.now, ws);
    h.drain();
    let ex = h.ex(ws);
    assert_eq!(ex.ws_texts, ["o", "a[\"before\"]"], "no c frame");
    assert_eq!(ex.ws_close, Some((1008, "Message timeout".into())));
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::MessageTimeout);
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.pending_requests(), 0);
    h.engine.handle_ws_message_timeout(h.now, ws);
    h.ws_send(ws, "[\"late\"]");
    h.drain();
    assert_eq!(h.closed.len(), 1, "reported once");
    let texts: Vec<&str> = h.messages.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(texts, ["before"], "nothing is read after the close");

    let raw = h.ws_open("/websocket");
    h.engine.handle_ws_message_timeout(h.now, raw);
    h.drain();
    assert_eq!(h.ex(raw).ws_close, Some((1008, "Message timeout".into())));
    assert_eq!(h.closed[1].1, CloseReason::MessageTimeout);

    // An HTTP receiver is no socket: nothing happens to its session.
    let poll = h.post("/a/http/xhr", "");
    assert_eq!(h.ex(poll).body(), "o\n");
    let held = h.post("/a/http/xhr", "");
    h.engine.handle_ws_message_timeout(h.now, held);
    h.drain();
    assert_eq!(h.closed.len(), 2);
    assert_eq!(h.engine.session_count(), 1);
}

#[test]
fn s9_2_app_close_sends_c_frame_then_closes() {
    let mut h = Harness::new(Options::default(), App::Close);
    let ws = h.ws_open("/a/b/websocket");
    let ex = h.ex(ws);
    assert_eq!(ex.ws_texts, ["o", "c[3000,\"Go away!\"]"]);
    assert_eq!(ex.ws_close, Some((1000, "Normal closure".into())));
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.pending_requests(), 0);
}

#[test]
fn s9_2_client_close_ends_session_at_once() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/b/websocket");
    h.ws_closed(ws);
    assert_eq!(h.closed[0].1, CloseReason::ClientClosed);
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn s9_2_heartbeat_every_delay() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/a/b/websocket");
    h.advance(Duration::from_secs(25) - ms(1));
    assert_eq!(h.ex(ws).ws_texts.len(), 1);
    h.advance(ms(1));
    assert_eq!(h.ex(ws).ws_texts, ["o", "h"]);
    h.advance(Duration::from_secs(25));
    assert_eq!(h.ex(ws).ws_texts, ["o", "h", "h"]);
}

/// §9.2 with §7.1.3: messages the application sent before a heartbeat's timer input and
/// not drained yet go out instead of `h` (as on HTTP receivers), not behind it; the next
/// heartbeat is a whole delay after them.
#[test]
fn s9_2_messages_not_drained_before_a_heartbeat_go_instead_of_it() {
    let mut h = Harness::new(Options::default(), App::Passive);
    let ws = h.ws_open("/a/hbw/websocket");
    h.advance(Duration::from_secs(25) - ms(1));
    let key = h.last_session();
    h.engine.send(h.now, key, "x").expect("send");
    h.skip(ms(1));
    h.engine.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.ex(ws).ws_texts, ["o", "a[\"x\"]"]);
    assert_eq!(h.engine.heartbeats(), 0, "no heartbeat went out");
    h.advance(Duration::from_secs(25) - ms(1));
    assert_eq!(h.ex(ws).ws_texts.len(), 2);
    h.advance(ms(1));
    assert_eq!(h.ex(ws).ws_texts, ["o", "a[\"x\"]", "h"]);
}

#[test]
fn s7_2_websocket_sessions_are_independent_of_the_id() {
    let mut h = Harness::echo();
    let a = h.ws_open("/a/same/websocket");
    let b = h.ws_open("/a/same/websocket");
    assert_eq!(h.ex(b).ws_texts, ["o"], "no 2010");
    h.ws_send(a, "[\"to a\"]");
    h.ws_send(b, "[\"to b\"]");
    assert_eq!(h.ex(a).ws_texts[1], "a[\"to a\"]");
    assert_eq!(h.ex(b).ws_texts[1], "a[\"to b\"]");
    let poll = h.post("/a/same/xhr", "");
    assert_eq!(h.ex(poll).body(), "o\n", "not registered under the id");
    h.ws_closed(a);
    let c = h.ws_open("/a/same/websocket");
    assert_eq!(h.ex(c).ws_texts, ["o"]);
}

#[test]
fn s9_3_raw_websocket_verbatim() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/websocket");
    assert!(h.ex(ws).ws_texts.is_empty(), "no o frame");
    h.ws_send(ws, "Hello world!\u{ffff}");
    assert_eq!(h.ex(ws).ws_texts, ["Hello world!\u{ffff}"]);
    h.advance(Duration::from_secs(25));
    assert_eq!(h.ex(ws).ws_pings, 1, "raw heartbeat is a ping");
    assert_eq!(h.opened[0].1.transport, Transport::RawWebSocket);
}

#[test]
fn s9_3_raw_websocket_binary_utf8_verbatim_and_other_bytes_close_1003() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/websocket");
    h.engine
        .handle_ws_binary(h.now, ws, "not [json \u{e9}".as_bytes());
    h.drain();
    assert_eq!(h.ex(ws).ws_texts, ["not [json \u{e9}"]);
    h.engine.handle_ws_binary(h.now, ws, &[0x00, 0xff, 0xfe]);
    h.drain();
    assert_eq!(h.ex(ws).ws_close, Some((1003, "Unsupported data".into())));
    assert_eq!(h.closed[0].1, CloseReason::UnsupportedData);
    assert_eq!(h.messages.len(), 1);
    assert_eq!(h.engine.pending_requests(), 0);
}

/// §9.3 (sockjs-rs note): oversized messages are handled as in §9.2, close 1009 `Message
/// too big` and the session ends, on the raw WebSocket too.
#[test]
fn s9_3_raw_message_over_max_message_size_closes_1009_and_ends_the_session() {
    let mut h = Harness::echo();
    let ws = h.ws_open("/websocket");
    h.engine.handle_ws_too_big(h.now, ws);
    h.drain();
    assert_eq!(h.ex(ws).ws_close, Some((1009, "Message too big".into())));
    assert!(h.ex(ws).ws_texts.is_empty());
    assert_eq!(h.closed.len(), 1);
    assert_eq!(h.closed[0].1, CloseReason::MessageTooBig);
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.engine.pending_requests(), 0);
}

#[test]
fn s9_3_raw_websocket_close_code_and_reason() {
    let mut h = Harness::new(Options::default(), App::Close);
    let ws = h.ws_open("/websocket");
    assert_eq!(h.ex(ws).ws_close, Some((3000, "Go away!".into())));
    assert!(h.ex(ws).ws_texts.is_empty());
}

// ---- §10 HTTP behaviour the engine decides ---------------------------------------------------

#[test]
fn s10_each_prelude_and_frame_is_its_own_chunk_on_close() {
    let mut h = Harness::new(Options::default(), App::Close);
    let id = h.post("/a/c/xhr_streaming", "");
    let chunks = h.ex(id).chunk_strings();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[0].len(), 2049);
    assert_eq!(chunks[1], "o\n");
    assert_eq!(chunks[2], "c[3000,\"Go away!\"]\n");
    assert!(h.ex(id).ended);
}

#[test]
fn s10_post_without_body_opens() {
    let mut h = Harness::echo();
    let id = h.post("/a/nobody/xhr", "");
    assert_eq!(h.ex(id).body(), "o\n");
}

// ---- shutdown, origins ------------------------------------------------------------------------

#[test]
fn close_all_ends_streams_sockets_and_polls() {
    let mut h = Harness::new(Options::default(), App::Passive);
    let stream = h.post("/a/s1/xhr_streaming", "");
    let ws = h.ws_open("/a/s2/websocket");
    h.post("/a/s3/xhr", "");
    let poll = h.post("/a/s3/xhr", "");
    h.engine.close_all(h.now, 1001, "Server shutting down");
    h.drain();
    assert_eq!(
        h.ex(stream).chunk_strings().last().map(String::as_str),
        Some("c[1001,\"Server shutting down\"]\n")
    );
    assert!(h.ex(stream).ended);
    assert_eq!(
        h.ex(ws).ws_texts.last().map(String::as_str),
        Some("c[1001,\"Server shutting down\"]")
    );
    assert!(h.ex(ws).ws_close.is_some());
    assert_eq!(h.ex(poll).body(), "c[1001,\"Server shutting down\"]\n");
    h.advance(Duration::from_secs(5));
    assert_eq!(h.engine.session_count(), 0);
    assert_eq!(h.closed.len(), 3);
}

#[test]
fn origin_policy_refuses_cors_and_upgrades() {
    let opts = Options {
        origins: sockjs_core::OriginPolicy::List(vec!["https://good".into()]),
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let bad = h.request("GET", "/info", &[("origin", "https://evil")], "");
    assert_text(&h, bad, 403, "Origin not allowed.\n");
    let good = h.request("GET", "/info", &[("origin", "https://good")], "");
    assert_eq!(h.ex(good).status(), 200);
    let ws = h.request(
        "GET",
        "/a/b/websocket",
        &[
            ("origin", "https://evil"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ],
        "",
    );
    assert_text(&h, ws, 403, "Origin not allowed.\n");
    let xhr = h.request("POST", "/a/b/xhr", &[("origin", "https://evil")], "");
    assert_text(&h, xhr, 403, "Origin not allowed.\n");
    let no_origin = h.post("/a/b/xhr", "");
    assert_eq!(h.ex(no_origin).body(), "o\n");
    let greeting = h.request("GET", "/", &[("origin", "https://evil")], "");
    assert_eq!(h.ex(greeting).status(), 200);
}

/// §3.3 (sockjs-rs note): under an `OriginPolicy` other than `Any`, a WebSocket upgrade
/// whose `Origin` is missing is judged by its `Sec-WebSocket-Origin` (old drafts send
/// that); with `Origin` present, `Origin` decides. A refusal is §2's 403.
#[test]
fn s3_3_sec_websocket_origin_counts_when_origin_is_missing() {
    let mut h = Harness::new(
        Options {
            origins: OriginPolicy::list(["https://good"]),
            ..Options::default()
        },
        App::Echo,
    );
    let ws = |origin: &[(&'static str, &'static str)]| {
        let mut fields = common::WS_HEADERS.to_vec();
        fields.extend_from_slice(origin);
        fields
    };
    for path in ["/a/b/websocket", "/websocket"] {
        let before = h.engine.session_count();
        let evil = h.request(
            "GET",
            path,
            &ws(&[("sec-websocket-origin", "https://evil")]),
            "",
        );
        assert_text(&h, evil, 403, "Origin not allowed.\n");
        let both = h.request(
            "GET",
            path,
            &ws(&[
                ("origin", "https://evil"),
                ("sec-websocket-origin", "https://good"),
            ]),
            "",
        );
        assert_text(&h, both, 403, "Origin not allowed.\n");
        assert_eq!(
            h.engine.session_count(),
            before,
            "{path}: refused, none opened"
        );
        let good = h.request(
            "GET",
            path,
            &ws(&[("sec-websocket-origin", "https://good")]),
            "",
        );
        assert_eq!(h.ex(good).status(), 101, "{path}");
        let origin_decides = h.request(
            "GET",
            path,
            &ws(&[
                ("origin", "https://good"),
                ("sec-websocket-origin", "https://evil"),
            ]),
            "",
        );
        assert_eq!(h.ex(origin_decides).status(), 101, "{path}");
        let neither = h.request("GET", path, &ws(&[]), "");
        assert_eq!(h.ex(neither).status(), 101, "{path}");
    }
}

/// The application's functions the engine calls mid-request: a panic in one is its
/// refusal (the origin predicate) or no cookie (the cookie function), and the request is
/// answered and let go of like any other.
#[test]
fn s2_a_panicking_origin_predicate_or_cookie_function_refuses_and_nothing_is_held() {
    let opts = Options {
        origins: sockjs_core::OriginPolicy::predicate(|origin, _| {
            assert_ne!(origin, "https://boom", "the application's bug");
            true
        }),
        jsessionid: sockjs_core::Jsessionid::custom(|request| {
            assert!(
                !request.headers.contains_key("x-boom"),
                "the application's bug"
            );
            Some(http::HeaderValue::from_static("sid=1"))
        }),
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let boom = h.request("POST", "/a/b/xhr", &[("origin", "https://boom")], "");
    assert_eq!(h.ex(boom).status(), 403);
    assert_eq!(h.engine.pending_requests(), 0);
    assert_eq!(h.engine.session_count(), 0);
    let quiet = h.request("POST", "/a/b/xhr", &[("x-boom", "1")], "");
    assert_eq!(h.ex(quiet).body(), "o\n");
    assert_eq!(h.ex(quiet).header("set-cookie"), None);
    let good = h.request("POST", "/a/c/xhr", &[("origin", "https://good")], "");
    assert_eq!(h.ex(good).body(), "o\n");
    assert_eq!(h.ex(good).header("set-cookie").as_deref(), Some("sid=1"));
    assert_eq!(h.engine.pending_requests(), 0);
}

// ---- further rules and edge cases ---------------------------------------------------------

#[test]
fn s2_raw_websocket_wrong_method_and_plain_get() {
    let mut h = Harness::echo();
    let post = h.post("/websocket", "");
    assert_eq!(h.ex(post).status(), 405);
    assert_eq!(h.ex(post).header("allow").as_deref(), Some("GET"));
    let get = h.get("/websocket");
    assert_text(&h, get, 400, "Can \"Upgrade\" only to \"WebSocket\".");
    let not_found = h.get("/nope");
    assert_eq!(
        h.ex(not_found).header("content-type").as_deref(),
        Some(TEXT)
    );
}

#[test]
fn s3_1_preflight_has_no_content_type() {
    let mut h = Harness::echo();
    let id = h.request("OPTIONS", "/a/b/xhr_send", &[], "");
    assert_eq!(h.ex(id).header("content-type"), None);
}

#[test]
fn s3_2_no_cache_on_every_receiver_and_sender() {
    let mut h = Harness::echo();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let ids = [
        h.post("/a/n1/xhr_streaming", ""),
        h.get("/a/n2/htmlfile?c=cb"),
        h.get("/a/n3/jsonp?c=cb"),
        h.request("POST", "/a/n3/jsonp_send", &form, "d=[]"),
    ];
    for id in ids {
        assert_eq!(
            h.ex(id).header("cache-control").as_deref(),
            Some(NO_CACHE),
            "{id:?}"
        );
        assert_eq!(h.ex(id).header("expires"), None);
        assert_eq!(h.ex(id).header("last-modified"), None);
    }
    let greeting = h.get("/");
    assert_eq!(h.ex(greeting).header("cache-control"), None);
}

#[test]
fn s3_3_cors_on_xhr_receivers_with_and_without_origin() {
    let mut h = Harness::echo();
    for path in ["/a/c1/xhr", "/a/c2/xhr_streaming"] {
        let id = h.request("POST", path, &[("origin", "test")], "");
        assert_eq!(
            h.ex(id).header("access-control-allow-origin").as_deref(),
            Some("test")
        );
        assert_eq!(
            h.ex(id)
                .header("access-control-allow-credentials")
                .as_deref(),
            Some("true")
        );
        assert_eq!(h.ex(id).header("vary").as_deref(), Some("Origin"));
    }
    for path in ["/a/c3/xhr", "/a/c4/xhr_streaming"] {
        let id = h.post(path, "");
        assert_eq!(
            h.ex(id).header("access-control-allow-origin").as_deref(),
            Some("*")
        );
        assert_eq!(h.ex(id).header("access-control-allow-credentials"), None);
        assert_eq!(h.ex(id).header("vary").as_deref(), Some("Origin"));
    }
}

/// §3.3 (sockjs-rs note): every CORS answer carries `Vary: Origin`, the sender's too,
/// success and errors alike (§3.2: sender errors keep CORS); the endpoints without CORS
/// (greeting, iframe page, htmlfile, jsonp, jsonp_send) have neither CORS nor `Vary`.
#[test]
fn s3_3_vary_origin_on_every_cors_answer_and_nowhere_else() {
    let mut h = Harness::echo();
    let origin = [("origin", "http://page")];
    h.post("/a/v/xhr", "");
    let cors = [
        h.request("POST", "/a/v/xhr_send", &origin, "[\"x\"]"),
        h.request("POST", "/a/v/xhr_send", &origin, "[\"x"),
        h.request("POST", "/a/gone/xhr_send", &origin, "[\"x\"]"),
        h.request("POST", "/a/v/xhr_send", &[], "[]"),
        h.request("GET", "/a/v2/eventsource", &origin, ""),
        h.request("OPTIONS", "/info", &[], ""),
    ];
    for (id, status) in cors.into_iter().zip([204, 500, 404, 204, 200, 204]) {
        let ex = h.ex(id);
        assert_eq!(ex.status(), status, "{id:?}");
        assert_eq!(ex.header("vary").as_deref(), Some("Origin"), "{id:?}");
        assert!(ex.header("access-control-allow-origin").is_some(), "{id:?}");
    }
    let form = [
        ("origin", "http://page"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let plain = [
        h.request("GET", "/", &origin, ""),
        h.request("GET", "/iframe.html", &origin, ""),
        h.request("GET", "/a/v3/htmlfile?c=cb", &origin, ""),
        h.request("GET", "/a/v4/jsonp?c=cb", &origin, ""),
        h.request("POST", "/a/v4/jsonp_send", &form, "d=[]"),
    ];
    for id in plain {
        let ex = h.ex(id);
        assert_eq!(ex.status(), 200, "{id:?}");
        assert_eq!(ex.header("vary"), None, "{id:?}");
        assert_eq!(ex.header("access-control-allow-origin"), None, "{id:?}");
    }
}

/// §3.3 (sockjs-rs note): eventsource answers CORS like the xhr endpoints, `null`
/// echoed with credentials (not node's `*`), no `Origin` as `*` without credentials; under
/// the 0.3.3 protocol (§12) `null` is answered as no origin.
#[test]
fn s3_3_eventsource_answers_cors_for_cross_origin_pages() {
    let current = Harness::echo();
    let old = Harness::new(
        Options {
            protocol: ProtocolVersion::V0_3_3,
            ..Options::default()
        },
        App::Echo,
    );
    for (mut h, origin, allow, credentials) in [
        (current, Some("http://page"), "http://page", Some("true")),
        (Harness::echo(), Some("null"), "null", Some("true")),
        (Harness::echo(), None, "*", None),
        (old, Some("null"), "*", None),
    ] {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let id = h.request("GET", "/a/ces/eventsource", &headers, "");
        let ex = h.ex(id);
        assert_eq!(ex.status(), 200, "{origin:?}");
        assert_eq!(
            ex.header("access-control-allow-origin").as_deref(),
            Some(allow),
            "{origin:?}"
        );
        assert_eq!(
            ex.header("access-control-allow-credentials").as_deref(),
            credentials,
            "{origin:?}"
        );
        assert_eq!(ex.header("vary").as_deref(), Some("Origin"), "{origin:?}");
    }
}

#[test]
fn s3_3_0_3_3_null_origin_preflight_is_star() {
    let mut h = Harness::new(
        Options {
            protocol: ProtocolVersion::V0_3_3,
            ..Options::default()
        },
        App::Echo,
    );
    let id = h.request("OPTIONS", "/info", &[("origin", "null")], "");
    assert_eq!(
        h.ex(id).header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(h.ex(id).header("access-control-allow-credentials"), None);
}

#[test]
fn s3_4_cookie_on_preflights_2010_and_sender_errors() {
    let mut h = Harness::new(
        Options {
            jsessionid: Jsessionid::echo(),
            ..Options::default()
        },
        App::Echo,
    );
    let dummy = Some("JSESSIONID=dummy; path=/");
    let a = h.request("OPTIONS", "/a/k/xhr_send", &[], "");
    let b = h.request("OPTIONS", "/a/k/xhr_streaming", &[], "");
    h.post("/a/k/xhr", "");
    let held = h.post("/a/k/xhr", "");
    let busy = h.post("/a/k/xhr", "");
    let err = h.post("/a/k/xhr_send", "[\"x");
    for id in [a, b, busy, err] {
        assert_eq!(h.ex(id).header("set-cookie").as_deref(), dummy, "{id:?}");
    }
    assert!(!h.ex(held).done());
    let empty = h.request("POST", "/a/k2/xhr", &[("cookie", "JSESSIONID=")], "");
    assert_eq!(
        h.ex(empty).header("set-cookie").as_deref(),
        dummy,
        "empty client value"
    );
}

/// §3.4 and §4.2: `/info` never carries the cookie, its preflight included, even with the
/// cookie option on.
#[test]
fn s3_4_no_cookie_on_info_or_its_preflight() {
    let mut h = Harness::new(
        Options {
            jsessionid: Jsessionid::echo(),
            ..Options::default()
        },
        App::Echo,
    );
    let get = h.get("/info");
    let preflight = h.request("OPTIONS", "/info", &[("origin", "http://a.example")], "");
    for id in [get, preflight] {
        assert!((200..300).contains(&h.ex(id).status()), "{id:?}");
        assert_eq!(h.ex(id).header("set-cookie"), None, "{id:?}");
    }
}

#[test]
fn s4_3_iframe_0_3_3_exact_body() {
    let mut h = Harness::new(
        Options {
            protocol: ProtocolVersion::V0_3_3,
            sockjs_url: "/s.js".into(),
            ..Options::default()
        },
        App::Echo,
    );
    let id = h.get("/iframe.html");
    let expected = "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  <script>\n    document.domain = document.domain;\n    _sockjs_onload = function(){SockJS.bootstrap_iframe();};\n  </script>\n  <script src=\"/s.js\"></script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>";
    assert_eq!(h.ex(id).body(), expected, "no final newline");
}

#[test]
fn s6_jsonp_send_unknown_session_after_payload_checks() {
    let mut h = Harness::echo();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let bad = h.request("POST", "/a/none/jsonp_send", &form, "d=%5B%22x");
    assert_eq!(h.ex(bad).status(), 500);
    let unknown = h.request("POST", "/a/none/jsonp_send", &form, "d=%5B%22x%22%5D");
    assert_eq!(h.ex(unknown).status(), 404);
    assert_eq!(
        h.ex(unknown).header("cache-control").as_deref(),
        Some(NO_CACHE)
    );
}

#[test]
fn s6_xhr_send_404_keeps_cors_so_browsers_can_read_it() {
    let mut h = Harness::echo();
    let id = h.request(
        "POST",
        "/a/gone/xhr_send",
        &[("origin", "http://page")],
        "[\"x\"]",
    );
    assert_eq!(h.ex(id).status(), 404);
    assert_eq!(
        h.ex(id).header("access-control-allow-origin").as_deref(),
        Some("http://page")
    );
}

#[test]
fn s7_1_3_heartbeat_framing_on_every_http_transport() {
    let mut h = Harness::echo();
    let es = h.get("/a/h1/eventsource");
    let hf = h.get("/a/h2/htmlfile?c=cb");
    h.get("/a/h3/jsonp?c=cb");
    let jp = h.get("/a/h3/jsonp?c=cb");
    h.advance(Duration::from_secs(25));
    assert_eq!(
        h.ex(es).chunk_strings().last().map(String::as_str),
        Some("data: h\r\n\r\n")
    );
    assert_eq!(
        h.ex(hf).chunk_strings().last().map(String::as_str),
        Some("<script>\np(\"h\");\n</script>\r\n")
    );
    assert_eq!(h.ex(jp).body(), "/**/cb(\"h\");\r\n");
}

#[test]
fn s7_1_4_session_expires_after_a_stream_ends_at_the_limit() {
    let mut h = Harness::echo();
    let id = h.post("/a/lx/xhr_streaming", "");
    h.post("/a/lx/xhr_send", &format!("[\"{}\"]", "x".repeat(4096)));
    assert!(h.ex(id).ended);
    h.advance(Duration::from_secs(5) - ms(1));
    assert!(h.closed.is_empty());
    h.advance(ms(1));
    assert_eq!(h.closed.len(), 1);
}

#[test]
fn s8_streams_stay_open_below_the_limit() {
    let mut h = Harness::echo();
    let es = h.get("/a/o1/eventsource");
    let hf = h.get("/a/o2/htmlfile?c=cb");
    for session in ["o1", "o2"] {
        h.post(
            &format!("/a/{session}/xhr_send"),
            &format!("[\"{}\"]", "x".repeat(2000)),
        );
    }
    assert!(!h.ex(es).ended && !h.ex(hf).ended);
}

#[test]
fn s8_callback_falls_back_to_the_callback_parameter() {
    let mut h = Harness::echo();
    let id = h.get("/a/fb/jsonp?c=&callback=cb");
    assert_eq!(h.ex(id).body(), "/**/cb(\"o\");\r\n");
}

/// §3.1 and §8 (sockjs-rs notes): the script-bearing receivers (xhr, xhr_streaming,
/// jsonp) send `X-Content-Type-Options: nosniff`; the notes name exactly those, so
/// eventsource and htmlfile go without it.
#[test]
fn s3_1_script_receivers_are_nosniff() {
    let mut h = Harness::echo();
    let script = [
        h.post("/a/ns1/xhr", ""),
        h.post("/a/ns2/xhr_streaming", ""),
        h.get("/a/ns3/jsonp?c=cb"),
    ];
    for id in script {
        assert_eq!(
            h.ex(id).header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{id:?}"
        );
    }
    let other = [h.get("/a/ns4/eventsource"), h.get("/a/ns5/htmlfile?c=cb")];
    for id in other {
        assert_eq!(h.ex(id).status(), 200);
        assert_eq!(h.ex(id).header("x-content-type-options"), None, "{id:?}");
    }
}

#[test]
fn s8_streams_ask_proxies_not_to_buffer() {
    let mut h = Harness::echo();
    let xs = h.post("/a/xa/xhr_streaming", "");
    let es = h.get("/a/xb/eventsource");
    let hf = h.get("/a/xc/htmlfile?c=cb");
    for id in [xs, es, hf] {
        assert_eq!(h.ex(id).header("x-accel-buffering").as_deref(), Some("no"));
    }
    // One frame per response: nothing to stream, nothing to ask.
    let xp = h.post("/a/xd/xhr", "");
    let jp = h.get("/a/xe/jsonp?c=cb");
    for id in [xp, jp] {
        assert_eq!(h.ex(id).header("x-accel-buffering"), None);
    }
}

#[test]
fn s9_1_hixie76_101_has_no_content_length_and_wss_behind_tls() {
    let mut h = Harness::new(
        Options {
            hixie76: true,
            ..Options::default()
        },
        App::Echo,
    );
    let mut request = http::Request::get("/a/b/websocket")
        .header("upgrade", "WebSocket")
        .header("connection", "Upgrade")
        .header("host", "example.com")
        .header("sec-websocket-key1", "4 @1  46546xW%0l 1 5")
        .header("sec-websocket-key2", "12998 5 Y3 1  .P00")
        .body(bytes::Bytes::new())
        .expect("request");
    request.extensions_mut().insert(sockjs_core::Tls);
    let id = h.raw_request(request);
    assert_eq!(h.ex(id).header("content-length"), None);
    assert_eq!(
        h.ex(id).header("sec-websocket-location").as_deref(),
        Some("wss://example.com/a/b/websocket")
    );
}

/// §9.1: the location is the full URL the client asked for, also when a router stripped
/// the mount path before the engine saw the request (`OriginalUri`).
#[test]
fn s9_1_hixie76_location_names_the_original_uri() {
    let mut h = Harness::new(
        Options {
            hixie76: true,
            ..Options::default()
        },
        App::Echo,
    );
    let mut request = http::Request::get("/a/b/websocket?x=1")
        .header("upgrade", "WebSocket")
        .header("connection", "Upgrade")
        .header("host", "example.com")
        .header("sec-websocket-key1", "4 @1  46546xW%0l 1 5")
        .header("sec-websocket-key2", "12998 5 Y3 1  .P00")
        .body(bytes::Bytes::new())
        .expect("request");
    let original = http::Uri::from_static("/mount/echo/a/b/websocket?x=1");
    request
        .extensions_mut()
        .insert(sockjs_core::OriginalUri(original));
    let id = h.raw_request(request);
    assert_eq!(
        h.ex(id).header("sec-websocket-location").as_deref(),
        Some("ws://example.com/mount/echo/a/b/websocket?x=1")
    );
}

/// §9.1 and RFC 9112 §3.2.2: for an absolute-form target the location names the target's
/// authority, not the Host field, whatever server handed the request over (the core's
/// decoder puts the authority in the field; hyper leaves the field as sent).
#[test]
fn s9_1_hixie76_location_names_an_absolute_targets_authority() {
    let mut h = Harness::new(
        Options {
            hixie76: true,
            ..Options::default()
        },
        App::Echo,
    );
    let request = http::Request::get("http://good.example:81/a/b/websocket")
        .header("upgrade", "WebSocket")
        .header("connection", "Upgrade")
        .header("host", "evil.example")
        .header("sec-websocket-key1", "4 @1  46546xW%0l 1 5")
        .header("sec-websocket-key2", "12998 5 Y3 1  .P00")
        .body(bytes::Bytes::new())
        .expect("request");
    let id = h.raw_request(request);
    assert_eq!(
        h.ex(id).header("sec-websocket-location").as_deref(),
        Some("ws://good.example:81/a/b/websocket")
    );
}

#[test]
fn s9_1_missing_key_and_odd_upgrade_headers() {
    let mut h = Harness::echo();
    let no_key = h.request(
        "GET",
        "/a/b/websocket",
        &[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
        ],
        "",
    );
    assert_text(&h, no_key, 400, "Missing Sec-WebSocket-Key.");
    let listed = h.request(
        "GET",
        "/a/b/websocket",
        &[
            ("upgrade", "foo, WebSocket"),
            ("connection", "keep-alive, upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ],
        "",
    );
    assert_eq!(h.ex(listed).status(), 101);
    for upgrade in ["", "h2c", "websocketx", ","] {
        let id = h.request(
            "GET",
            "/a/b/websocket",
            &[("upgrade", upgrade), ("connection", "Upgrade")],
            "",
        );
        assert_text(&h, id, 400, "Can \"Upgrade\" only to \"WebSocket\".");
    }
}

/// RFC 6455 §4.2.1 and RFC 9110 §7.8: an HTTP/1.0 request's `Upgrade` is ignored (an
/// HTTP/1.0 proxy may have passed it on unread), so the request is a plain GET and gets
/// the protocol's 400; on both WebSocket endpoints and for hixie-76.
#[test]
fn s9_1_an_http10_request_is_never_upgraded() {
    let opts = Options {
        hixie76: true,
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let rfc6455 = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ];
    let hixie76 = [
        ("upgrade", "WebSocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key1", "4 @1  46546xW%0l 1 5"),
        ("sec-websocket-key2", "12998 5 Y3 1  .P00"),
    ];
    for (path, fields) in [
        ("/a/b/websocket", &rfc6455),
        ("/websocket", &rfc6455),
        ("/a/b/websocket", &hixie76),
    ] {
        let mut request = http::Request::builder()
            .method("GET")
            .uri(path)
            .version(http::Version::HTTP_10);
        for (name, value) in fields {
            request = request.header(*name, *value);
        }
        let id = h.raw_request(request.body(bytes::Bytes::new()).expect("request"));
        assert_text(&h, id, 400, "Can \"Upgrade\" only to \"WebSocket\".");
    }
    assert_eq!(h.engine.session_count(), 0);
}

/// RFC 6455 §11.3.1 and RFC 6455 §11.3.5: `Sec-WebSocket-Key` and `Sec-WebSocket-Version` appear
/// once; `Upgrade` is a list and may come in several lines.
#[test]
fn s9_1_repeated_handshake_fields() {
    let mut h = Harness::echo();
    let base = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ];
    for (extra, refusal) in [
        (
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            Some("Invalid Sec-WebSocket-Key."),
        ),
        (("sec-websocket-version", "13"), Some(UNSUPPORTED)),
        (("upgrade", "h2c"), None),
    ] {
        let mut fields = base.to_vec();
        fields.push(extra);
        let id = h.request("GET", "/a/b/websocket", &fields, "");
        match refusal {
            Some(text) => assert_text(&h, id, 400, text),
            None => assert_eq!(h.ex(id).status(), 101, "{extra:?}"),
        }
    }
    let split = h.request(
        "GET",
        "/a/c/websocket",
        &[
            ("upgrade", "h2c"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ],
        "",
    );
    assert_eq!(h.ex(split).status(), 101);
}

/// §9.3 (sockjs-rs note): on a raw WebSocket an application close code an endpoint may not
/// send becomes 1000 (allowed: 1000–1003, 1007–1014, 3000–4999), and the reason is cut to
/// 123 bytes at a character boundary.
#[test]
fn s9_3_raw_close_code_and_reason_are_made_valid() {
    let mut h = Harness::new(Options::default(), App::Passive);
    let cases = [
        (0, 1000),
        (999, 1000),
        (1000, 1000),
        (1001, 1001),
        (1003, 1003),
        (1004, 1000),
        (1005, 1000),
        (1006, 1000),
        (1007, 1007),
        (1011, 1011),
        (1014, 1014),
        (1015, 1000),
        (2010, 1000),
        (2999, 1000),
        (3000, 3000),
        (4000, 4000),
        (4999, 4999),
        (5000, 1000),
        (u16::MAX, 1000),
    ];
    for (code, sent) in cases {
        let ws = h.ws_open("/websocket");
        let key = h.last_session();
        h.app_close(key, code, "bye");
        assert_eq!(h.ex(ws).ws_close, Some((sent, "bye".into())), "{code}");
    }
    let a123 = "a".repeat(123);
    let reasons = [
        // 200 bytes of two-byte characters: 61 of them fit in 123 bytes.
        ("é".repeat(100), "é".repeat(61)),
        ("a".repeat(200), a123.clone()),
        (a123.clone(), a123.clone()),
        // 122 one-byte characters, then a three-byte one that does not fit.
        (format!("{}€", "a".repeat(122)), "a".repeat(122)),
        (String::new(), String::new()),
    ];
    for (reason, sent) in reasons {
        let ws = h.ws_open("/websocket");
        let key = h.last_session();
        h.app_close(key, 3000, &reason);
        assert_eq!(h.ex(ws).ws_close, Some((3000, sent)), "{reason}");
    }
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn duplicate_live_request_ids_are_ignored() {
    let mut h = Harness::echo();
    h.post("/a/dup/xhr", "");
    let held = h.post("/a/dup/xhr", "");
    h.engine.handle_request(
        h.now,
        held,
        http::Request::post("/a/other/xhr")
            .body(bytes::Bytes::new())
            .expect("req"),
    );
    h.drain();
    assert!(!h.ex(held).done(), "no second answer for a live id");
}

#[test]
fn wall_clock_outside_http_dates_does_not_panic() {
    use std::time::{Instant, SystemTime};
    for wall in [
        SystemTime::UNIX_EPOCH - Duration::from_secs(86_400 * 800),
        SystemTime::UNIX_EPOCH + Duration::from_secs(300_000_000_000),
    ] {
        let start = sockjs_core::Start {
            now: Instant::now(),
            wall_clock: wall,
            seed: 1,
        };
        let mut engine = sockjs_core::Engine::new(Options::default(), start).expect("engine");
        engine.handle_request(
            Instant::now(),
            sockjs_core::RequestId(1),
            http::Request::get("/iframe.html")
                .body(bytes::Bytes::new())
                .expect("req"),
        );
        assert!(engine.poll_transmit().is_some());
    }
}

#[test]
fn options_refuse_delays_that_would_keep_sessions_forever() {
    let o = Options {
        disconnect_delay: Duration::MAX,
        ..Options::default()
    };
    assert_eq!(o.validate(), Err(sockjs_core::OptionsError::DelayTooLong));
}

// ---- session binding ------------------------------------------------------------------------

fn with_peer(
    h: &mut Harness,
    method: &str,
    uri: &str,
    ip: [u8; 4],
    body: &str,
) -> sockjs_core::RequestId {
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(bytes::Bytes::from(body.to_owned()))
        .expect("request");
    let peer = std::net::SocketAddr::from((ip, 40000 + u16::from(ip[3])));
    request.extensions_mut().insert(sockjs_core::PeerAddr(peer));
    h.raw_request(request)
}

#[test]
fn binding_by_peer_ip_hides_sessions_from_other_clients() {
    let opts = Options {
        session_binding: sockjs_core::SessionBinding::PeerIp,
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let open = with_peer(&mut h, "POST", "/a/b/xhr", [10, 0, 0, 1], "");
    assert_eq!(h.ex(open).body(), "o\n");
    let thief_send = with_peer(&mut h, "POST", "/a/b/xhr_send", [10, 0, 0, 2], "[\"x\"]");
    assert_eq!(h.ex(thief_send).status(), 404);
    let thief_poll = with_peer(&mut h, "POST", "/a/b/xhr", [10, 0, 0, 2], "");
    assert_eq!(h.ex(thief_poll).status(), 404);
    assert!(h.messages.is_empty());
    let send = with_peer(&mut h, "POST", "/a/b/xhr_send", [10, 0, 0, 1], "[\"x\"]");
    assert_eq!(h.ex(send).status(), 204);
    let poll = with_peer(&mut h, "POST", "/a/b/xhr", [10, 0, 0, 1], "");
    assert_eq!(h.ex(poll).body(), "a[\"x\"]\n");
}

#[test]
fn binding_by_peer_ip_without_a_peer_address_binds_nothing_it_refuses() {
    // An adapter that gives no `PeerAddr` (axum without connect info): every request
    // would share one "unknown" address, and anyone with the id could use the session.
    let opts = Options {
        session_binding: sockjs_core::SessionBinding::PeerIp,
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let open = h.post("/a/b/xhr", "");
    assert_eq!(h.ex(open).status(), 404);
    let send = h.post("/a/b/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(send).status(), 404);
    assert!(h.messages.is_empty());
    // A session opened with an address is not reachable without one either.
    let open = with_peer(&mut h, "POST", "/a/c/xhr", [10, 0, 0, 1], "");
    assert_eq!(h.ex(open).body(), "o\n");
    let thief_send = h.post("/a/c/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(thief_send).status(), 404);
    let thief_poll = h.post("/a/c/xhr", "");
    assert_eq!(h.ex(thief_poll).status(), 404);
    assert!(h.messages.is_empty());
}

#[test]
fn binding_by_peer_ip_reads_only_the_configured_forwarding_header() {
    let opts = Options {
        session_binding: sockjs_core::SessionBinding::PeerIp,
        trusted_proxies: vec!["10.0.0.0/8".parse().expect("range")],
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let request = |uri: &str, headers: &[(&str, &str)], body: &str| {
        let mut builder = http::Request::builder().method("POST").uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder
            .body(bytes::Bytes::from(body.to_owned()))
            .expect("request");
        let proxy = std::net::SocketAddr::from(([10, 0, 0, 1], 40000));
        request
            .extensions_mut()
            .insert(sockjs_core::PeerAddr(proxy));
        request
    };
    // The victim, 8.8.8.8, behind the proxy, which sets X-Forwarded-For.
    let open = h.raw_request(request("/a/b/xhr", &[("x-forwarded-for", "8.8.8.8")], ""));
    assert_eq!(h.ex(open).body(), "o\n");
    // The thief, 6.6.6.6, claims the victim's address in headers the proxy passes on.
    for claim in [("forwarded", "for=8.8.8.8"), ("x-real-ip", "8.8.8.8")] {
        let headers = [claim, ("x-forwarded-for", "6.6.6.6")];
        let thief = h.raw_request(request("/a/b/xhr_send", &headers, "[\"x\"]"));
        assert_eq!(h.ex(thief).status(), 404, "{claim:?}");
    }
    assert!(h.messages.is_empty());
}

/// The token is a credential: `HttpOnly`, out of page scripts' reach (no SockJS client
/// reads the cookie).
#[test]
fn binding_by_cookie_issues_a_random_jsessionid_and_requires_it() {
    let opts = Options {
        session_binding: sockjs_core::SessionBinding::Cookie,
        ..Options::default()
    };
    let mut h = Harness::new(opts, App::Echo);
    let open = h.post("/a/b/xhr", "");
    let cookie = h.ex(open).header("set-cookie").expect("a cookie");
    let value = cookie
        .strip_prefix("JSESSIONID=")
        .and_then(|c| c.strip_suffix("; path=/; HttpOnly"))
        .expect("format");
    assert_ne!(value, "dummy");
    assert!(value.len() >= 16);
    let other = h.post("/a/c/xhr", "");
    assert_ne!(
        h.ex(other).header("set-cookie"),
        Some(cookie.clone()),
        "fresh per session"
    );
    let thief = h.post("/a/b/xhr_send", "[\"x\"]");
    assert_eq!(h.ex(thief).status(), 404);
    let jar = format!("JSESSIONID={value}");
    let send = h.request("POST", "/a/b/xhr_send", &[("cookie", &jar)], "[\"x\"]");
    assert_eq!(h.ex(send).status(), 204);
    let poll = h.request("POST", "/a/b/xhr", &[("cookie", &jar)], "");
    assert_eq!(h.ex(poll).body(), "a[\"x\"]\n");
}

/// The token a cookie-bound service gives session `id`'s opening poll, sent with `cookies`
/// (its cookie `HttpOnly` unless `jsessionid` gives the attributes).
fn bound_token(h: &mut Harness, id: &str, cookies: &[(&str, &str)]) -> String {
    let open = h.request("POST", &format!("/a/{id}/xhr"), cookies, "");
    let cookie = h.ex(open).header("set-cookie").expect("a cookie");
    let cookie = cookie.strip_suffix("; HttpOnly").unwrap_or(&cookie);
    let value = cookie
        .strip_prefix("JSESSIONID=")
        .and_then(|c| c.strip_suffix("; path=/"))
        .expect("format");
    value.to_owned()
}

fn cookie_bound() -> Options {
    Options {
        session_binding: sockjs_core::SessionBinding::Cookie,
        ..Options::default()
    }
}

/// splitmix64's step, output and inverse: what a generator whose output gives back its
/// state tells of its next values.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn splitmix(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unsplitmix(output: u64) -> u64 {
    fn unshift(x: u64, by: u32) -> u64 {
        let mut y = x;
        for _ in 0..64 / by + 1 {
            y = x ^ (y >> by);
        }
        y
    }
    fn inverse(c: u64) -> u64 {
        let mut inv = c;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(inv)));
        }
        inv
    }
    let z = unshift(output, 31).wrapping_mul(inverse(0x94D0_49BB_1331_11EB));
    unshift(
        unshift(z, 27).wrapping_mul(inverse(0xBF58_476D_1CE4_E5B9)),
        30,
    )
}

/// A binding token is 128 bits from a cryptographic generator of its own: neither another
/// token nor the `/info` entropy tells the next one. (Tokens came from the splitmix64
/// behind the entropy, whose output gives back its state: from one token, the next ones
/// were known to anyone who opened a session.)
#[test]
fn binding_by_cookie_tokens_are_not_told_by_what_the_server_hands_out() {
    assert_eq!(unsplitmix(splitmix(12_345)), 12_345);
    let mut h = Harness::new(cookie_bound(), App::Echo);
    let first = bound_token(&mut h, "b", &[]);
    let state = unsplitmix(u64::from_str_radix(&first[..16], 16).expect("hex"));
    let told: Vec<u64> = (1..=8)
        .map(|k| splitmix(state.wrapping_add(GAMMA.wrapping_mul(k))))
        .collect();
    for id in ["c", "d", "e"] {
        let token = bound_token(&mut h, id, &[]);
        assert_eq!(token.len(), 32, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        let head = u64::from_str_radix(&token[..16], 16).expect("hex");
        let tail = u64::from_str_radix(&token[16..], 16).expect("hex");
        assert!(!told.contains(&head) && !told.contains(&tail), "{token}");
    }
}

/// The tokens' generator is seeded by [`Engine::with_secret`] (the driver fills it from its
/// random source): the same secret gives the same tokens, another secret others.
#[test]
fn binding_by_cookie_tokens_follow_the_secret() {
    let first_token = |secret: Option<[u8; 32]>| {
        let mut h = Harness::new(cookie_bound(), App::Echo);
        if let Some(secret) = secret {
            let start = sockjs_core::Start {
                now: h.t0,
                wall_clock: std::time::SystemTime::UNIX_EPOCH,
                seed: 7,
            };
            h.engine = sockjs_core::Engine::new(cookie_bound(), start)
                .expect("valid")
                .with_secret(secret);
        }
        bound_token(&mut h, "b", &[])
    };
    assert_eq!(first_token(Some([1; 32])), first_token(Some([1; 32])));
    assert_ne!(first_token(Some([1; 32])), first_token(Some([2; 32])));
    assert_ne!(first_token(None), first_token(Some([1; 32])));
}

/// §3.4's `dummy` (what an echoing service hands a client without a cookie) is no token:
/// a session is never bound to it, and a bound service never hands it out.
#[test]
fn binding_by_cookie_never_binds_to_dummy_nor_hands_it_out() {
    for jsessionid in [Jsessionid::Off, Jsessionid::echo()] {
        let mut h = Harness::new(
            Options {
                jsessionid: jsessionid.clone(),
                ..cookie_bound()
            },
            App::Echo,
        );
        let token = bound_token(&mut h, "b", &[("cookie", "JSESSIONID=dummy")]);
        assert_ne!(token, "dummy", "{jsessionid:?}");
        let dummy = [("cookie", "JSESSIONID=dummy")];
        let send = h.request("POST", "/a/b/xhr_send", &dummy, "[\"x\"]");
        assert_eq!(h.ex(send).status(), 404, "{jsessionid:?}");
        // A send without a cookie gets no `dummy` to come back with.
        let send = h.post("/a/b/xhr_send", "[\"x\"]");
        assert_eq!(h.ex(send).status(), 404, "{jsessionid:?}");
        assert_eq!(h.ex(send).header("set-cookie"), None, "{jsessionid:?}");
        let jar = format!("JSESSIONID={token}");
        let send = h.request("POST", "/a/b/xhr_send", &[("cookie", &jar)], "[\"x\"]");
        assert_eq!(h.ex(send).status(), 204, "{jsessionid:?}");
        let attributes = match jsessionid {
            Jsessionid::Off => "; path=/; HttpOnly",
            _ => "; path=/",
        };
        assert_eq!(
            h.ex(send).header("set-cookie"),
            Some(format!("{jar}{attributes}")),
            "{jsessionid:?}"
        );
    }
}

// ---- §9 permessage-deflate (RFC 7692) ---------------------------------------------------

/// A WebSocket handshake on a service with these deflate settings, offering `offers` (one
/// `Sec-WebSocket-Extensions` header each): the status, the answered extension header and
/// the parameters handed to the driver.
fn deflate_handshake(
    settings: Option<sockjs_core::DeflateOptions>,
    path: &str,
    offers: &[&str],
) -> (u16, Option<String>, Option<sockjs_core::DeflateParams>) {
    let mut h = Harness::new(
        Options {
            permessage_deflate: settings,
            ..Options::default()
        },
        App::Echo,
    );
    let mut headers = vec![
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ];
    headers.extend(offers.iter().map(|o| ("sec-websocket-extensions", *o)));
    let id = h.request("GET", path, &headers, "");
    let ex = h.ex(id);
    let params = match ex.upgrade.as_ref().map(|u| u.1) {
        Some(Handshake::Rfc6455 { deflate }) => deflate,
        _ => None,
    };
    (ex.status(), ex.header("sec-websocket-extensions"), params)
}

fn on() -> Option<sockjs_core::DeflateOptions> {
    Some(sockjs_core::DeflateOptions::default())
}

const BOTH_RESET: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

#[test]
fn rfc7692_s5_off_by_default_and_no_offer_no_answer() {
    let chromium = ["permessage-deflate; client_max_window_bits"];
    assert_eq!(
        deflate_handshake(None, "/a/b/websocket", &chromium),
        (101, None, None)
    );
    assert_eq!(
        deflate_handshake(on(), "/a/b/websocket", &[]),
        (101, None, None)
    );
    // Other extensions alone are ignored.
    assert_eq!(
        deflate_handshake(on(), "/a/b/websocket", &["x-webkit-deflate-frame"]),
        (101, None, None)
    );
}

#[test]
fn rfc7692_s7_chromium_offer_is_accepted_without_context_takeover() {
    let (status, answer, params) = deflate_handshake(
        on(),
        "/a/b/websocket",
        &["permessage-deflate; client_max_window_bits"],
    );
    assert_eq!(status, 101);
    assert_eq!(answer.as_deref(), Some(BOTH_RESET));
    let params = params.expect("negotiated");
    assert!(params.server_no_context_takeover && params.client_no_context_takeover);
    assert_eq!(
        (params.server_max_window_bits, params.client_max_window_bits),
        (15, 15)
    );
    // Raw WebSocket too.
    let (_, answer, _) = deflate_handshake(on(), "/websocket", &["permessage-deflate"]);
    assert_eq!(answer.as_deref(), Some(BOTH_RESET));
}

#[test]
fn rfc7692_s5_1_first_acceptable_offer_of_several_headers_wins() {
    // The first offer is declined (unknown parameter), the second accepted; the third
    // never looked at. Offers span two header fields, with other extensions between.
    let (_, answer, params) = deflate_handshake(
        on(),
        "/a/b/websocket",
        &[
            "foo; bar, permessage-deflate; x=1",
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=15, \
             permessage-deflate",
        ],
    );
    assert_eq!(
        answer.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=15"
        )
    );
    assert!(params.is_some());
    // Quoted values and spaces around `=` are the same values.
    let (_, answer, params) = deflate_handshake(
        on(),
        "/a/b/websocket",
        &[r#"permessage-deflate ; client_max_window_bits = "10""#],
    );
    assert_eq!(answer.as_deref(), Some(BOTH_RESET));
    assert_eq!(params.map(|p| p.client_max_window_bits), Some(10));
}

#[test]
fn rfc7692_s7_1_declines_unknown_duplicate_and_invalid_parameters() {
    for offer in [
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"x\"",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
    ] {
        let (status, answer, params) = deflate_handshake(on(), "/a/b/websocket", &[offer]);
        assert_eq!(
            (status, answer, params),
            (101, None, None),
            "{offer}: declined, and the handshake goes on"
        );
    }
}

#[test]
fn rfc7692_s7_1_1_context_takeover_is_refused_by_default_and_kept_on_request() {
    let takeover = Some(sockjs_core::DeflateOptions {
        server_context_takeover: true,
        client_context_takeover: true,
        ..sockjs_core::DeflateOptions::default()
    });
    // RFC 7692 §7.1.1.1 and RFC 7692 §7.1.1.2: by default the server answers with both parameters whatever the
    // offer said.
    let (_, answer, _) = deflate_handshake(on(), "/a/b/websocket", &["permessage-deflate"]);
    assert_eq!(answer.as_deref(), Some(BOTH_RESET));
    // With takeover allowed, the answer names neither unless the client offered it.
    let (_, answer, params) =
        deflate_handshake(takeover, "/a/b/websocket", &["permessage-deflate"]);
    assert_eq!(answer.as_deref(), Some("permessage-deflate"));
    let params = params.expect("negotiated");
    assert!(!params.server_no_context_takeover && !params.client_no_context_takeover);
    // RFC 7692 §7.1.1.1: a server_no_context_takeover offer must be answered with it.
    let (_, answer, params) = deflate_handshake(
        takeover,
        "/a/b/websocket",
        &["permessage-deflate; server_no_context_takeover"],
    );
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    assert!(params.is_some_and(|p| p.server_no_context_takeover));
    // RFC 7692 §7.1.1.2: a client that will not keep its context: the server need not either.
    let (_, answer, params) = deflate_handshake(
        takeover,
        "/a/b/websocket",
        &["permessage-deflate; client_no_context_takeover"],
    );
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
    assert!(params.is_some_and(|p| p.client_no_context_takeover && !p.server_no_context_takeover));
}

#[test]
fn rfc7692_s7_1_2_1_server_max_window_bits_is_answered_with_the_offers_value() {
    for bits in 8..15u8 {
        let offer = format!("permessage-deflate; server_max_window_bits={bits}");
        let (_, answer, params) = deflate_handshake(on(), "/a/b/websocket", &[&offer]);
        // Below 32 KiB each message stands alone (no context takeover), so one no longer
        // than the window never refers back past it.
        assert_eq!(
            answer.as_deref(),
            Some(&*format!("{BOTH_RESET}; server_max_window_bits={bits}")),
            "{offer}"
        );
        let params = params.expect("accepted");
        assert_eq!(params.server_max_window_bits, bits);
        assert!(params.server_no_context_takeover);
        assert_eq!(params.largest_compressed(), 1 << bits);
    }
    // Even where the options keep the server's context: a smaller window takes it away.
    let takeover = Some(sockjs_core::DeflateOptions {
        server_context_takeover: true,
        ..sockjs_core::DeflateOptions::default()
    });
    let (_, answer, _) = deflate_handshake(
        takeover,
        "/a/b/websocket",
        &["permessage-deflate; server_max_window_bits=10"],
    );
    assert_eq!(
        answer.as_deref(),
        Some(&*format!("{BOTH_RESET}; server_max_window_bits=10"))
    );
    let (_, answer, _) = deflate_handshake(
        takeover,
        "/a/b/websocket",
        &["permessage-deflate; server_max_window_bits=15"],
    );
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=15")
    );
    // 15 is accepted and answered with the same value.
    let (_, answer, params) = deflate_handshake(
        on(),
        "/a/b/websocket",
        &["permessage-deflate; server_max_window_bits=15"],
    );
    assert_eq!(
        answer.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=15"
        )
    );
    assert_eq!(params.map(|p| p.server_max_window_bits), Some(15));
}

#[test]
fn rfc7692_s7_1_2_2_client_max_window_bits_with_and_without_a_value() {
    for (offer, bits) in [
        ("permessage-deflate; client_max_window_bits", 15),
        ("permessage-deflate; client_max_window_bits=8", 8),
        ("permessage-deflate; client_max_window_bits=12", 12),
        ("permessage-deflate", 15),
    ] {
        let (_, answer, params) = deflate_handshake(on(), "/a/b/websocket", &[offer]);
        // The answer never names it: any client window fits the decompressor.
        assert_eq!(answer.as_deref(), Some(BOTH_RESET), "{offer}");
        assert_eq!(
            params.map(|p| p.client_max_window_bits),
            Some(bits),
            "{offer}"
        );
    }
}

#[test]
fn rfc6455_s9_1_a_malformed_extension_header_means_no_extension() {
    for offers in [
        &["permessage-deflate;"][..],
        &["permessage-deflate; client_max_window_bits=\"1 0\""],
        &["permessage-deflate; =15"],
        &["permessage-deflate", "bad header;;"],
        &["permessage-deflate client_max_window_bits"],
    ] {
        let (status, answer, params) = deflate_handshake(on(), "/a/b/websocket", offers);
        assert_eq!((status, answer, params), (101, None, None), "{offers:?}");
    }
}

#[test]
fn rfc7692_hixie76_never_negotiates() {
    let mut h = Harness::new(
        Options {
            hixie76: true,
            permessage_deflate: on(),
            ..Options::default()
        },
        App::Echo,
    );
    let id = h.request(
        "GET",
        "/a/b/websocket",
        &[
            ("upgrade", "WebSocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key1", "4 @1  46546xW%0l 1 5"),
            ("sec-websocket-key2", "12998 5 Y3 1  .P00"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ],
        "",
    );
    assert_eq!(h.ex(id).status(), 101);
    assert_eq!(h.ex(id).header("sec-websocket-extensions"), None);
}
