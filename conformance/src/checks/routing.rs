//! §2: URL map and routing.

use super::{ECHO, verify_405};
use crate::check::{Check, Ctx, Outcome, Step, ensure, expect_response, expect_status, service};
use crate::http::Request;
use crate::util::{esc_short, random_u64};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s2_session_path_not_decoded",
            "2",
            "the session path is matched undecoded: a%2Fb is one session id, and I%41 and IA are two sessions",
            session_path_not_decoded,
        ),
        Check::new(
            "s2_query_ignored_for_routing",
            "2",
            "a query string is dropped before routing: xhr?…, xhr_send?… and info?… reach their endpoints",
            query_ignored,
        ),
        Check::new(
            "s2_greeting_near_misses_404",
            "2",
            "P/a, P/a.html, P//, P///, P/a/a, P/a/a/, P/a/ are 404",
            near_misses,
        ),
        Check::new(
            "s2_session_ids_any_value",
            "2",
            "any [^/.]+ server and session ids open a session (o\\n)",
            any_value,
        ),
        Check::new(
            "s2_invalid_session_paths_404",
            "2",
            "empty segments and dots in ids are 404 for GET and POST",
            invalid_paths,
        ),
        Check::new(
            "s2_server_id_ignored",
            "2",
            "sessions are keyed by the session id alone (/000/I and /999/I are one session)",
            server_id_ignored,
        ),
        Check::new(
            "s2_unknown_paths_404",
            "2",
            "unknown transports and wrong segment counts are 404",
            unknown_paths,
        ),
        Check::new(
            "s2_iframe_invalid_names_404",
            "2",
            "iframe names outside iframe[0-9a-z._-]*.html are 404",
            iframe_invalid,
        ),
        Check::new(
            "s2_iframe_dot_is_literal",
            "2",
            "the dot before html is literal: /iframeXhtml is 404 (stricter than node)",
            iframe_literal_dot,
        ),
        Check::new(
            "s2_405_websocket_post",
            "2",
            "POST to /S/I/websocket is a bare 405 with Allow: GET (with or without Upgrade)",
            websocket_post_405,
        ),
        Check::new(
            "s2_405_allow_lists_path_methods",
            "2",
            "a known path with a wrong method is 405 with Allow listing that path's methods",
            allow_lists_methods,
        ),
        Check::new(
            "s2_disabled_websocket_404",
            "2",
            "with websocket off, /S/I/websocket and /websocket are 404",
            disabled_websocket,
        ),
        Check::new(
            "s2_disabled_websocket_404_any_method",
            "2",
            "with websocket off, a POST to /S/I/websocket or /websocket is 404 too (no route), not 405",
            disabled_websocket_any_method,
        ),
    ]
}

fn expect_404(ctx: &Ctx, method: &str, path: &str) -> Outcome {
    let what = format!("{method} {path}");
    let r = ctx.request(&Request::new(method, path)).step(&what)?;
    expect_status(&what, &r, 404)
}

fn near_misses(ctx: &Ctx) -> Outcome {
    for suffix in ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"] {
        expect_404(ctx, "GET", &ctx.path(&format!("{ECHO}{suffix}")))?;
    }
    Ok(())
}

fn any_value(ctx: &Ctx) -> Outcome {
    let r = random_u64() % 1_000_000_000;
    for part in [
        format!("/a/a{r}"),
        format!("/_/_{r}"),
        format!("/1/{r}"),
        format!("/abcdefgh_i-j%20/abcdefg_i-j%20{r}"),
    ] {
        let path = ctx.path(&format!("{ECHO}{part}/xhr"));
        let resp = ctx.post(&path, "", &[]).step(&format!("POST {path}"))?;
        expect_response(&format!("POST {path}"), &resp, 200, b"o\n")?;
    }
    Ok(())
}

fn invalid_paths(ctx: &Ctx) -> Outcome {
    for suffix in ["//", "/a./a", "/a/a.", "/./.", "/", "///"] {
        let path = ctx.path(&format!("{ECHO}{suffix}/xhr"));
        expect_404(ctx, "GET", &path)?;
        expect_404(ctx, "POST", &path)?;
    }
    Ok(())
}

fn server_id_ignored(ctx: &Ctx) -> Outcome {
    let id = crate::util::random_session_id();
    let p = |srv: &str, t: &str| ctx.path(&format!("{ECHO}/{srv}/{id}/{t}"));
    let r = ctx
        .post(&p("000", "xhr"), "", &[])
        .step("POST /000/I/xhr")?;
    expect_response("POST /000/I/xhr", &r, 200, b"o\n")?;
    let r = ctx
        .post(&p("000", "xhr_send"), "[\"a\"]", &[])
        .step("POST /000/I/xhr_send")?;
    expect_response("POST /000/I/xhr_send", &r, 204, b"")?;
    let r = ctx
        .post(&p("999", "xhr"), "", &[])
        .step("POST /999/I/xhr")?;
    expect_response("POST /999/I/xhr", &r, 200, b"a[\"a\"]\n")
}

fn unknown_paths(ctx: &Ctx) -> Outcome {
    let id = crate::util::random_session_id();
    for suffix in [
        format!("/000/{id}/nope"),
        format!("/000/{id}/xhr_nope"),
        format!("/000/{id}/a/xhr"),
        format!("/{id}/xhr"),
        "/info/x".to_string(),
    ] {
        let path = ctx.path(&format!("{ECHO}{suffix}"));
        expect_404(ctx, "GET", &path)?;
        expect_404(ctx, "POST", &path)?;
    }
    Ok(())
}

fn iframe_invalid(ctx: &Ctx) -> Outcome {
    for suffix in [
        "/iframe.htm",
        "/iframe",
        "/IFRAME.HTML",
        "/IFRAME",
        "/iframe.HTML",
        "/iframe.xml",
        "/iframe-/.html",
    ] {
        expect_404(ctx, "GET", &ctx.path(&format!("{ECHO}{suffix}")))?;
    }
    Ok(())
}

fn iframe_literal_dot(ctx: &Ctx) -> Outcome {
    expect_404(ctx, "GET", &ctx.path(&format!("{ECHO}/iframeXhtml")))
}

fn websocket_post_405(ctx: &Ctx) -> Outcome {
    for headers in [
        vec![("Upgrade", "WebSocket"), ("Connection", "Upgrade")],
        vec![],
    ] {
        let path = ctx.path(&format!("{ECHO}/0/0/websocket"));
        let what = format!("POST {path} with {headers:?}");
        let r = ctx.post(&path, "", &headers).step(&what)?;
        verify_405(&what, &r, &["GET"])?;
    }
    Ok(())
}

fn allow_lists_methods(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("GET", s.url("xhr"), &["POST", "OPTIONS"]),
        ("GET", s.url("xhr_send"), &["POST", "OPTIONS"]),
        ("GET", s.url("xhr_streaming"), &["POST", "OPTIONS"]),
        ("GET", s.url("jsonp_send"), &["POST"]),
        ("POST", s.url("jsonp?c=x"), &["GET"]),
        ("POST", s.url("eventsource"), &["GET"]),
        ("POST", s.url("htmlfile?c=x"), &["GET"]),
        ("POST", ctx.path(&format!("{ECHO}/websocket")), &["GET"]),
        ("POST", ctx.path(ECHO), &["GET"]),
        ("POST", ctx.path(&format!("{ECHO}/iframe.html")), &["GET"]),
        (
            "PUT",
            ctx.path(&format!("{ECHO}/info")),
            &["GET", "OPTIONS"],
        ),
    ];
    for (method, path, allow) in cases {
        let what = format!("{method} {path}");
        let r = ctx.request(&Request::new(method, &path)).step(&what)?;
        verify_405(&what, &r, allow)?;
    }
    Ok(())
}

/// The two WebSocket paths of the service whose websocket is off: a session's and the raw
/// one.
fn disabled_websocket_paths(ctx: &Ctx) -> [String; 2] {
    [
        ctx.session(service::WS_OFF).url("websocket"),
        ctx.path(&format!("{}/websocket", service::WS_OFF)),
    ]
}

fn disabled_websocket(ctx: &Ctx) -> Outcome {
    for path in disabled_websocket_paths(ctx) {
        let what = format!("GET {path} (upgrade request)");
        let r = ctx
            .get(
                &path,
                &[
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Version", "13"),
                    ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
                ],
            )
            .step(&what)?;
        ensure(r.status() == 404, || {
            format!(
                "{what}: expected status 404, got {} (body \"{}\")",
                r.head.summary(),
                esc_short(&r.body, 80)
            )
        })?;
    }
    Ok(())
}

/// §2: a transport that is off has no route at all, so another method gets the 404 too,
/// not the 405 of a route that exists.
fn disabled_websocket_any_method(ctx: &Ctx) -> Outcome {
    for path in disabled_websocket_paths(ctx) {
        let what = format!("POST {path}");
        let r = ctx.post(&path, "", &[]).step(&what)?;
        ensure(r.status() == 404, || {
            format!(
                "{what}: expected status 404 (a transport that is off has no route), got {}",
                r.head.summary()
            )
        })?;
    }
    Ok(())
}

/// §2: nothing is percent-decoded before routing, so `%2F` is no separator and `%41` is
/// not `A`. A decoding server 404s `a%2Fb` (one segment too many) or hands `I%41`'s
/// queued message to a poll on `IA`.
fn session_path_not_decoded(ctx: &Ctx) -> Outcome {
    let base = ctx.path(&format!("{ECHO}/000"));
    let id = format!("{:x}", random_u64());
    let slash = format!("{base}/{id}a%2Fb");
    let what = format!("POST {slash}/xhr");
    let r = ctx.post(&format!("{slash}/xhr"), "", &[]).step(&what)?;
    expect_response(&what, &r, 200, b"o\n")?;
    let what = format!("POST {slash}/xhr_send");
    let r = ctx
        .post(&format!("{slash}/xhr_send"), "[\"s\"]", &[])
        .step(&what)?;
    expect_response(&what, &r, 204, b"")?;
    let what = format!("second POST {slash}/xhr");
    let r = ctx.post(&format!("{slash}/xhr"), "", &[]).step(&what)?;
    expect_response(&what, &r, 200, b"a[\"s\"]\n")?;
    let encoded = format!("{base}/{id}%41");
    let plain = format!("{base}/{id}A");
    let what = format!("POST {encoded}/xhr");
    let r = ctx.post(&format!("{encoded}/xhr"), "", &[]).step(&what)?;
    expect_response(&what, &r, 200, b"o\n")?;
    let what = format!("POST {encoded}/xhr_send");
    let r = ctx
        .post(&format!("{encoded}/xhr_send"), "[\"e\"]", &[])
        .step(&what)?;
    expect_response(&what, &r, 204, b"")?;
    let what = format!("POST {plain}/xhr (a session of its own, not {id}%41)");
    let r = ctx.post(&format!("{plain}/xhr"), "", &[]).step(&what)?;
    expect_response(&what, &r, 200, b"o\n")
}

/// §2: routes are matched on the path alone.
fn query_ignored(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let what = "POST xhr?t=1/x";
    let r = ctx.post(&s.url("xhr?t=1/x"), "", &[]).step(what)?;
    expect_response(what, &r, 200, b"o\n")?;
    let what = "POST xhr_send?t=2";
    let r = ctx
        .post(&s.url("xhr_send?t=2"), "[\"q\"]", &[])
        .step(what)?;
    expect_response(what, &r, 204, b"")?;
    let what = "POST xhr?/../a";
    let r = ctx.post(&s.url("xhr?/../a"), "", &[]).step(what)?;
    expect_response(what, &r, 200, b"a[\"q\"]\n")?;
    let info = ctx.path(&format!("{ECHO}/info?t=3"));
    let r = ctx.get(&info, &[]).step("GET info?t=3")?;
    expect_status("GET info?t=3", &r, 200)?;
    ensure(r.body.starts_with(b"{"), || {
        format!(
            "GET info?t=3: expected the /info JSON, got \"{}\"",
            esc_short(&r.body, 80)
        )
    })
}
