//! §4: greeting, /info and the iframe page.

use super::{ECHO, Ep};
use crate::check::{
    Check, Ctx, Failure, Outcome, Step, ensure, expect_content_type, expect_eq, expect_head_status,
    expect_no_header, expect_response, expect_status, fail, service,
};
use crate::http::{Request, Response};
use crate::json::{self, Json};
use crate::util::{diff, esc, esc_short};

/// The iframe page, with `SOCKJS_URL` standing for the client URL (§4.3).
pub(crate) const IFRAME_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="SOCKJS_URL"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"#;

const IFRAME_NAMES: [&str; 8] = [
    "/iframe.html",
    "/iframe-a.html",
    "/iframe-.html",
    "/iframe-0.1.2.html",
    "/iframe-0.1.2abc-dirty.2144.html",
    "/iframe-a.html?t=1234",
    "/iframe-0.1.2.html?t=123414",
    "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123",
];

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s4_1_greeting",
            "4.1",
            "GET P and P/ answer 200 text/plain \"Welcome to SockJS!\\n\", no cookie, no caching headers",
            greeting,
        ),
        Check::new(
            "s4_2_info_fields",
            "4.2",
            "/info is a JSON object: websocket true, cookie_needed false, origins [\"*:*\"], entropy a u32",
            info_fields,
        ),
        Check::new(
            "s4_2_info_entropy_differs",
            "4.2",
            "two /info calls give different entropy values",
            entropy_differs,
        ),
        Check::new(
            "s4_2_info_websocket_disabled",
            "4.2",
            "/info says websocket:false when the websocket transport is off",
            |ctx: &Ctx| {
                let info = get_info(ctx, service::WS_OFF)?;
                expect_json(&info, "websocket", &Json::Bool(false))
            },
        ),
        Check::new(
            "s4_2_info_cookie_needed",
            "4.2",
            "/info says cookie_needed:true when JSESSIONID is on",
            |ctx: &Ctx| {
                let info = get_info(ctx, service::COOKIE)?;
                expect_json(&info, "cookie_needed", &Json::Bool(true))
            },
        ),
        Check::new(
            "s4_3_iframe_body",
            "4.3",
            "the iframe page body (trimmed) is exactly the current page with a usable client URL",
            iframe_body,
        ),
        Check::new(
            "s4_3_iframe_all_names",
            "4.3",
            "every allowed iframe name (with or without query) serves the same page with ETag",
            iframe_all_names,
        ),
        Check::new(
            "s4_3_iframe_etag_304",
            "4.3",
            "the ETag is stable; If-None-Match gives a bare 304 (no type, no framing, no body) and the connection serves the next GET",
            iframe_etag_304,
        ),
    ]
}

fn greeting(ctx: &Ctx) -> Outcome {
    for path in [ctx.path(ECHO), ctx.path(&format!("{ECHO}/"))] {
        let what = format!("GET {path}");
        let r = ctx.get(&path, &[]).step(&what)?;
        verify_greeting(&what, &r)?;
    }
    Ok(())
}

/// §4.1: 200, `text/plain; charset=UTF-8`, the 19-byte body, no cookie and no caching
/// headers (§3.2's class "none": neither Cache-Control, Expires nor Last-Modified).
fn verify_greeting(what: &str, r: &Response) -> Outcome {
    expect_response(what, r, 200, b"Welcome to SockJS!\n")?;
    expect_content_type(what, &r.head, "text/plain;charset=UTF-8")?;
    expect_no_header(what, &r.head, "set-cookie")?;
    for name in ["cache-control", "expires", "last-modified"] {
        expect_no_header(what, &r.head, name)?;
    }
    Ok(())
}

pub(crate) fn get_info(ctx: &Ctx, svc: &str) -> Result<Json, Failure> {
    let path = ctx.path(&format!("{svc}/info"));
    let what = format!("GET {path}");
    let r = ctx.get(&path, &[]).step(&what)?;
    expect_status(&what, &r, 200)?;
    let text =
        std::str::from_utf8(&r.body).map_err(|_| fail(format!("{what}: body is not UTF-8")))?;
    json::parse(text).map_err(|e| {
        fail(format!(
            "{what}: body is not JSON ({e}): \"{}\"",
            esc_short(&r.body, 200)
        ))
    })
}

fn expect_json(info: &Json, key: &str, want: &Json) -> Outcome {
    match info.get(key) {
        Some(v) if v == want => Ok(()),
        other => Err(fail(format!(
            "/info field {key}: expected {want:?}, got {other:?}"
        ))),
    }
}

fn entropy(info: &Json) -> Result<u64, Failure> {
    match info.get("entropy") {
        Some(Json::Number(n)) => n
            .parse::<u64>()
            .ok()
            .filter(|v| *v <= u64::from(u32::MAX))
            .ok_or_else(|| {
                fail(format!(
                    "/info entropy must be an integer in 0..=2^32-1, got {n}"
                ))
            }),
        other => Err(fail(format!(
            "/info entropy must be an integer, got {other:?}"
        ))),
    }
}

fn info_fields(ctx: &Ctx) -> Outcome {
    let path = ctx.path(&format!("{ECHO}/info"));
    let h = Ep::Info.hit(ctx, ECHO, &[("Origin", "test")])?;
    expect_no_header("GET info", &h, "set-cookie")?;
    let info = get_info(ctx, ECHO)?;
    ensure(matches!(info, Json::Object(_)), || {
        format!("GET {path}: body must be a JSON object, got {info:?}")
    })?;
    expect_json(&info, "websocket", &Json::Bool(true))?;
    expect_json(&info, "cookie_needed", &Json::Bool(false))?;
    expect_json(
        &info,
        "origins",
        &Json::Array(vec![Json::String("*:*".into())]),
    )?;
    entropy(&info).map(|_| ())
}

fn entropy_differs(ctx: &Ctx) -> Outcome {
    let a = entropy(&get_info(ctx, ECHO)?)?;
    let b = entropy(&get_info(ctx, ECHO)?)?;
    ensure(a != b, || {
        format!("two /info calls gave the same entropy {a}")
    })
}

/// Checks a trimmed iframe body against the page; returns the client URL found.
pub(crate) fn match_iframe(body: &[u8]) -> Result<String, Failure> {
    let text = std::str::from_utf8(body).map_err(|_| fail("iframe body is not UTF-8"))?;
    let text = text.trim();
    let (before, after) = IFRAME_PAGE
        .split_once("SOCKJS_URL")
        .ok_or_else(|| fail("internal: page template"))?;
    let url_len = text.len().saturating_sub(before.len() + after.len());
    let url = text
        .get(before.len()..before.len() + url_len)
        .unwrap_or_default();
    let expected = format!("{before}{url}{after}");
    if !text.starts_with(before) || !text.ends_with(after) || url.contains('"') {
        return Err(fail(format!(
            "iframe body differs from the page: {}",
            diff(IFRAME_PAGE.as_bytes(), text.as_bytes())
        )));
    }
    expect_eq("iframe body", expected.as_bytes(), text.as_bytes())?;
    ensure(url.starts_with('/') || url.starts_with("http"), || {
        format!(
            "iframe client URL must start with / or http, got \"{}\"",
            esc(url.as_bytes())
        )
    })?;
    Ok(url.to_string())
}

fn iframe_body(ctx: &Ctx) -> Outcome {
    let path = ctx.path(&format!("{ECHO}/iframe.html"));
    let r = ctx.get(&path, &[]).step("GET iframe.html")?;
    expect_status("GET iframe.html", &r, 200)?;
    match_iframe(&r.body).map(|_| ())
}

fn iframe_all_names(ctx: &Ctx) -> Outcome {
    let mut first: Option<Vec<u8>> = None;
    for name in IFRAME_NAMES {
        let path = ctx.path(&format!("{ECHO}{name}"));
        let what = format!("GET {path}");
        let r = ctx.get(&path, &[]).step(&what)?;
        expect_status(&what, &r, 200)?;
        expect_content_type(&what, &r.head, "text/html;charset=UTF-8")?;
        ensure(r.head.header("etag").is_some_and(|e| !e.is_empty()), || {
            format!("{what}: ETag missing")
        })?;
        expect_no_header(&what, &r.head, "set-cookie")?;
        match_iframe(&r.body).step(&what)?;
        match &first {
            None => first = Some(r.body.clone()),
            Some(b) => expect_eq(&format!("{what}: same page as /iframe.html"), b, &r.body)?,
        }
    }
    Ok(())
}

fn iframe_etag_304(ctx: &Ctx) -> Outcome {
    let path = ctx.path(&format!("{ECHO}/iframe.html"));
    let r1 = ctx.get(&path, &[]).step("first GET iframe.html")?;
    expect_status("first GET iframe.html", &r1, 200)?;
    let r2 = ctx.get(&path, &[]).step("second GET iframe.html")?;
    let e1 = r1
        .header("etag")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| fail("GET iframe.html: ETag missing"))?;
    expect_eq(
        "ETag of a second GET",
        e1,
        r2.header("etag").unwrap_or_default(),
    )?;
    bare_304(ctx, &path, e1, &r1.body)
}

/// §4.3 and §10: `If-None-Match` with the page's `etag` gets a bare 304 (no Content-Type,
/// no Transfer-Encoding, a Content-Length only of 0 or of the page's length, no body bytes
/// at all), and the same keep-alive connection then serves a plain GET of the page
/// (`page`, the body of a 200). A server that writes a body after the 304 head, or frames
/// it, desynchronises the connection and the second answer does not parse.
pub(crate) fn bare_304(ctx: &Ctx, path: &str, etag: &str, page: &[u8]) -> Outcome {
    let what = "GET iframe.html with If-None-Match";
    let mut conn = ctx.connect().step(what)?;
    let req = Request::new("GET", path).header("If-None-Match", etag);
    conn.send(&req).step(what)?;
    let head = conn.read_head().step(what)?;
    expect_head_status(what, &head, 304)?;
    expect_no_header("304", &head, "content-type")?;
    expect_no_header("304", &head, "transfer-encoding")?;
    if let Some(cl) = head.header("content-length") {
        let ok = cl == "0" || cl == page.len().to_string();
        ensure(ok, || {
            format!(
                "304: Content-Length must be absent, 0 or the page's length {} (RFC 9110 §8.6), got \"{}\"",
                page.len(),
                esc(cl.as_bytes())
            )
        })?;
    }
    let what = "plain GET iframe.html on the 304's keep-alive connection";
    let r = conn
        .roundtrip(&Request::new("GET", path))
        .map_err(|e| {
            fail(format!(
                "{}; bytes after the 304 head would show up here (a 304 has no body)",
                e.0
            ))
        })
        .step(what)?;
    expect_status(what, &r, 200)?;
    expect_eq(&format!("{what}: body"), page, &r.body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::{BodyKind, parse_head};

    fn greeting_with(fields: &str) -> Outcome {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: 19{fields}"
        );
        let r = Response {
            head: parse_head(head.as_bytes()).unwrap(),
            body: b"Welcome to SockJS!\n".to_vec(),
            kind: BodyKind::Length(19),
        };
        verify_greeting("GET /echo", &r)
    }

    #[test]
    fn the_greeting_has_no_caching_headers() {
        assert_eq!(greeting_with(""), Ok(()));
        for field in [
            "Cache-Control: public, max-age=31536000",
            "Expires: Thu, 01 Jan 2099 00:00:00 GMT",
            "Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT",
            "Set-Cookie: JSESSIONID=dummy; path=/",
        ] {
            assert!(greeting_with(&format!("\r\n{field}")).is_err(), "{field}");
        }
    }
}
