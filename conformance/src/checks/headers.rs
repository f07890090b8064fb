//! §3: Content-Type, caching classes, CORS and the JSESSIONID cookie.

use super::{ECHO, Ep};
use crate::check::{
    Check, Ctx, Outcome, Step, ensure, expect_content_type, expect_eq, expect_header,
    expect_no_header, expect_status, fail, service, single_header,
};
use crate::http::{Head, Response};
use crate::util::{esc, parse_imf_fixdate};

/// NO-CACHE `Cache-Control` value (§3.2).
pub(crate) const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

pub(crate) fn checks() -> Vec<Check> {
    let mut v = Vec::new();
    for ep in Ep::ALL {
        v.push(Check::new(
            format!("s3_1_content_type_{}", ep.name()),
            "3.1",
            format!("{} answers Content-Type {}", ep.name(), ep.content_type()),
            move |ctx: &Ctx| {
                let h = ep.hit(ctx, ECHO, &[])?;
                expect_content_type(ep.name(), &h, ep.content_type())
            },
        ));
    }
    v.push(Check::new(
        "s3_1_no_content_type_304_405_preflight",
        "3.1",
        "304, 405 and OPTIONS preflight (204 or 200) responses carry no Content-Type",
        no_content_type,
    ));
    for ep in [
        Ep::Info,
        Ep::Xhr,
        Ep::XhrSend,
        Ep::XhrStreaming,
        Ep::EventSource,
        Ep::HtmlFile,
        Ep::Jsonp,
        Ep::JsonpSend,
    ] {
        v.push(Check::new(
            format!("s3_2_no_cache_{}", ep.name()),
            "3.2",
            format!(
                "{} is NO-CACHE: exact Cache-Control, no Expires, no Last-Modified",
                ep.name()
            ),
            move |ctx: &Ctx| verify_not_cached(ep.name(), &ep.hit(ctx, ECHO, &[])?),
        ));
    }
    v.push(Check::new(
        "s3_2_long_cache_iframe",
        "3.2",
        "the iframe page is LONG-CACHE (Cache-Control public, max-age=31536000; Expires a year ahead), no Last-Modified",
        |ctx: &Ctx| {
            let h = Ep::Iframe.hit(ctx, ECHO, &[])?;
            verify_long_cache("iframe", &h)?;
            expect_no_header("iframe", &h, "last-modified")
        },
    ));
    for (ep, methods) in [
        ("info", "OPTIONS, GET"),
        ("xhr", "OPTIONS, POST"),
        ("xhr_send", "OPTIONS, POST"),
        ("xhr_streaming", "OPTIONS, POST"),
    ] {
        v.push(Check::new(
            format!("s3_3_preflight_{ep}"),
            "3.3",
            format!(
                "OPTIONS {ep}: 204/200, empty, no Content-Type, LONG-CACHE, Max-Age over 1000000, Allow-Methods exactly {methods}, CORS for Origin test, null and none"
            ),
            move |ctx: &Ctx| verify_options(ctx, &preflight_path(ctx, ep), methods),
        ));
    }
    v.push(Check::new(
        "s3_3_preflight_info_null_origin",
        "3.3",
        "OPTIONS info with Origin: null echoes null",
        |ctx: &Ctx| {
            let path = preflight_path(ctx, "info");
            let r = ctx
                .options(
                    &path,
                    &[
                        ("Origin", "null"),
                        ("Access-Control-Request-Method", "POST"),
                    ],
                )
                .step("OPTIONS info")?;
            preflight_status("OPTIONS info", &r)?;
            expect_eq("OPTIONS info: body", b"", &r.body)?;
            expect_header(
                "OPTIONS info",
                &r.head,
                "access-control-allow-origin",
                "null",
            )
        },
    ));
    for (ep, origin) in [
        (Ep::Info, Some("test")),
        (Ep::Xhr, Some("test")),
        (Ep::XhrSend, Some("test")),
        (Ep::XhrStreaming, Some("test")),
        (Ep::Info, Some("null")),
        (Ep::Xhr, Some("null")),
        (Ep::XhrSend, Some("null")),
        (Ep::XhrStreaming, Some("null")),
        (Ep::Info, None),
        (Ep::Xhr, None),
        (Ep::XhrSend, None),
        (Ep::XhrStreaming, None),
    ] {
        let (name, summary) = match origin {
            Some("null") => (
                format!("s3_3_cors_null_origin_{}", ep.name()),
                format!(
                    "{}: Origin: null is echoed as null with credentials",
                    ep.name()
                ),
            ),
            Some(_) => (
                format!("s3_3_cors_origin_{}", ep.name()),
                format!(
                    "{}: Origin is echoed with Allow-Credentials: true",
                    ep.name()
                ),
            ),
            None => (
                format!("s3_3_cors_no_origin_{}", ep.name()),
                format!(
                    "{}: without Origin, Allow-Origin is * and no credentials",
                    ep.name()
                ),
            ),
        };
        v.push(Check::new(name, "3.3", summary, move |ctx: &Ctx| {
            let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
            let h = ep.hit(ctx, ECHO, &headers)?;
            verify_cors(ep.name(), &h, origin)
        }));
    }
    v.push(Check::new(
        "s3_3_allow_headers_echoed",
        "3.3",
        "a non-empty Access-Control-Request-Headers is echoed verbatim as Allow-Headers",
        |ctx: &Ctx| {
            let r = acrh_preflight(ctx, Some("a, b, c"))?;
            expect_header(
                "OPTIONS xhr",
                &r.head,
                "access-control-allow-headers",
                "a, b, c",
            )
        },
    ));
    v.push(Check::new(
        "s3_3_allow_headers_empty_omitted",
        "3.3",
        "an empty Access-Control-Request-Headers gives no Allow-Headers",
        |ctx: &Ctx| {
            let r = acrh_preflight(ctx, Some(""))?;
            expect_no_header("OPTIONS xhr", &r.head, "access-control-allow-headers")
        },
    ));
    v.push(Check::new(
        "s3_3_allow_headers_absent_omitted",
        "3.3",
        "without Access-Control-Request-Headers there is no Allow-Headers",
        |ctx: &Ctx| {
            let r = acrh_preflight(ctx, None)?;
            expect_no_header("OPTIONS xhr", &r.head, "access-control-allow-headers")
        },
    ));
    for ep in Ep::SESSION {
        v.push(Check::new(
            format!("s3_4_cookie_dummy_{}", ep.name()),
            "3.4",
            format!(
                "cookie service: {} sets exactly one JSESSIONID=dummy; path=/",
                ep.name()
            ),
            move |ctx: &Ctx| verify_cookie(ep.name(), &ep.hit(ctx, service::COOKIE, &[])?, "dummy"),
        ));
        v.push(Check::new(
            format!("s3_4_cookie_client_value_{}", ep.name()),
            "3.4",
            format!(
                "cookie service: {} echoes the request's JSESSIONID value",
                ep.name()
            ),
            move |ctx: &Ctx| {
                let h = ep.hit(ctx, service::COOKIE, &[("Cookie", "JSESSIONID=abcdef")])?;
                verify_cookie(ep.name(), &h, "abcdef")
            },
        ));
    }
    v.push(Check::new(
        "s3_4_cookie_preflight_xhr",
        "3.4",
        "cookie service: OPTIONS on the xhr paths sets JSESSIONID too",
        |ctx: &Ctx| {
            let s = ctx.session(service::COOKIE);
            for t in ["xhr", "xhr_send", "xhr_streaming"] {
                let what = format!("OPTIONS {t}");
                let r = ctx
                    .options(&s.url(t), &[("Access-Control-Request-Method", "POST")])
                    .step(&what)?;
                preflight_status(&what, &r)?;
                verify_cookie(&what, &r.head, "dummy")?;
            }
            Ok(())
        },
    ));
    v.push(Check::new(
        "s3_4_no_cookie_info_greeting_iframe",
        "3.4",
        "cookie service: /info, the greeting and the iframe never set a cookie",
        |ctx: &Ctx| {
            for ep in [Ep::Info, Ep::Greeting, Ep::Iframe] {
                let h = ep.hit(ctx, service::COOKIE, &[("Cookie", "JSESSIONID=abcdef")])?;
                expect_no_header(ep.name(), &h, "set-cookie")?;
            }
            Ok(())
        },
    ));
    v.push(Check::new(
        "s3_4_no_cookie_without_option",
        "3.4",
        "without the cookie option no endpoint sets a cookie",
        |ctx: &Ctx| {
            for ep in Ep::ALL {
                let h = ep.hit(ctx, ECHO, &[("Cookie", "JSESSIONID=abcdef")])?;
                expect_no_header(ep.name(), &h, "set-cookie")?;
            }
            Ok(())
        },
    ));
    v
}

/// Path for a preflight of `ep` (`info` or a session transport) on the echo service.
fn preflight_path(ctx: &Ctx, ep: &str) -> String {
    if ep == "info" {
        ctx.path(&format!("{ECHO}/info"))
    } else {
        ctx.path(&format!("{ECHO}/abc/abc/{ep}"))
    }
}

fn preflight_status(what: &str, r: &Response) -> Outcome {
    ensure(r.status() == 204 || r.status() == 200, || {
        format!(
            "{what}: expected status 204 (or 200), got {}",
            r.head.summary()
        )
    })
}

/// §3.2 NO-CACHE.
pub(crate) fn verify_not_cached(what: &str, h: &Head) -> Outcome {
    expect_header(what, h, "cache-control", NO_CACHE)?;
    expect_no_header(what, h, "expires")?;
    expect_no_header(what, h, "last-modified")
}

/// LONG-CACHE's `Cache-Control` value (§3.2).
pub(crate) const LONG_CACHE: &str = "public, max-age=31536000";
/// One year in seconds: LONG-CACHE's max-age and the preflight's Max-Age (§3.2, §3.3).
const YEAR_SECS: u64 = 31_536_000;

/// §3.2 LONG-CACHE: `Cache-Control: public, max-age=31536000` exactly, and `Expires` an
/// IMF-fixdate one year ahead (within a day of now + 31536000 s, for clock skew and a
/// leap year).
pub(crate) fn verify_long_cache(what: &str, h: &Head) -> Outcome {
    expect_header(what, h, "cache-control", LONG_CACHE)?;
    let expires = single_header(what, h, "expires")?
        .ok_or_else(|| fail(format!("{what}: Expires missing")))?;
    let at = parse_imf_fixdate(expires).ok_or_else(|| {
        fail(format!(
            "{what}: Expires must be an IMF-fixdate such as \"Sun, 06 Nov 1994 08:49:37 GMT\", got \"{}\"",
            esc(expires.as_bytes())
        ))
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let want = now + YEAR_SECS;
    ensure(at.abs_diff(want) <= 86_400, || {
        format!(
            "{what}: Expires must be one year ahead (about {}s from now), got \"{}\", {}s from now",
            YEAR_SECS,
            esc(expires.as_bytes()),
            i128::from(at) - i128::from(now)
        )
    })
}

/// §3.3 CORS for a request with the given Origin.
pub(crate) fn verify_cors(what: &str, h: &Head, origin: Option<&str>) -> Outcome {
    match origin {
        Some(o) => {
            expect_header(what, h, "access-control-allow-origin", o)?;
            expect_header(what, h, "access-control-allow-credentials", "true")
        }
        None => {
            expect_header(what, h, "access-control-allow-origin", "*")?;
            expect_no_header(what, h, "access-control-allow-credentials")
        }
    }
}

/// A preflight as §3.3 fixes it, for Origin `test`, `null` and none: 204 (or 200), empty
/// body, no Content-Type whatever the status (§3.1's table, §3.3), LONG-CACHE,
/// `Access-Control-Max-Age` over 1000000 (§3.3 names 31536000 but requires only that),
/// `Access-Control-Allow-Methods` exactly `methods`, the CORS answer for the origin, no
/// Allow-Headers (none requested) and no cookie (the echo service has none, §3.4).
fn verify_options(ctx: &Ctx, path: &str, methods: &str) -> Outcome {
    for origin in [Some("test"), Some("null"), None] {
        let what = format!("OPTIONS {path} (Origin: {})", origin.unwrap_or("none"));
        let mut headers = vec![("Access-Control-Request-Method", methods)];
        headers.extend(origin.map(|o| ("Origin", o)));
        let r = ctx.options(path, &headers).step(&what)?;
        preflight_bare(&what, &r)?;
        verify_long_cache(&what, &r.head)?;
        verify_max_age(&what, &r.head)?;
        expect_header(&what, &r.head, "access-control-allow-methods", methods)?;
        verify_cors(&what, &r.head, origin)?;
        expect_no_header(&what, &r.head, "access-control-allow-headers")?;
        expect_no_header(&what, &r.head, "set-cookie")?;
    }
    Ok(())
}

/// §3.3: a preflight's status is 204 (or 200), its body empty, and it has no Content-Type
/// whatever the status (§3.1's table).
fn preflight_bare(what: &str, r: &Response) -> Outcome {
    preflight_status(what, r)?;
    expect_eq(&format!("{what}: body"), b"", &r.body)?;
    expect_no_header(what, &r.head, "content-type")
}

/// The least `Access-Control-Max-Age` a preflight may give, exclusive (§3.3).
const MIN_MAX_AGE: u64 = 1_000_000;

/// §3.3: `Access-Control-Max-Age` is delta-seconds (ASCII digits only) over 1000000.
fn verify_max_age(what: &str, h: &Head) -> Outcome {
    let value = single_header(what, h, "access-control-max-age")?
        .ok_or_else(|| fail(format!("{what}: header access-control-max-age missing")))?;
    ensure(max_age_ok(value), || {
        format!(
            "{what}: Access-Control-Max-Age must be a number of seconds over {MIN_MAX_AGE} (e.g. {YEAR_SECS}), got \"{}\"",
            esc(value.as_bytes())
        )
    })
}

/// Whether `value` is delta-seconds over [`MIN_MAX_AGE`]: digits only (no sign, space or
/// fraction); a number too large for 64 bits is over it too.
fn max_age_ok(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && value.parse::<u64>().map_or(true, |n| n > MIN_MAX_AGE)
}

fn acrh_preflight(ctx: &Ctx, acrh: Option<&str>) -> Result<Response, crate::check::Failure> {
    let s = ctx.session(ECHO);
    let mut h = vec![
        ("Origin", "test"),
        ("Access-Control-Request-Method", "POST"),
    ];
    if let Some(v) = acrh {
        h.push(("Access-Control-Request-Headers", v));
    }
    let r = ctx.options(&s.url("xhr"), &h).step("OPTIONS xhr")?;
    preflight_status("OPTIONS xhr", &r)?;
    verify_cors("OPTIONS xhr", &r.head, Some("test"))?;
    Ok(r)
}

/// §3.4: exactly one `Set-Cookie: JSESSIONID=<value>; path=/`: the pair exactly, then the
/// one attribute `path=/` (its name in any case, whitespace around the `;` free) and no
/// other attribute.
pub(crate) fn verify_cookie(what: &str, h: &Head, value: &str) -> Outcome {
    let cookies = h.header_all("set-cookie");
    ensure(cookies.len() == 1, || {
        format!("{what}: expected exactly one Set-Cookie, got {cookies:?}")
    })?;
    let cookie = cookies[0];
    let parts: Vec<&str> = cookie.split(';').map(str::trim).collect();
    let exact = match parts.as_slice() {
        [pair, path] => {
            *pair == format!("JSESSIONID={value}")
                && path
                    .split_once('=')
                    .is_some_and(|(n, v)| n.trim().eq_ignore_ascii_case("path") && v.trim() == "/")
        }
        _ => false,
    };
    ensure(exact, || {
        format!(
            "{what}: expected Set-Cookie \"JSESSIONID={value}; path=/\" and no other attribute, got \"{}\"",
            esc(cookie.as_bytes())
        )
    })
}

fn no_content_type(ctx: &Ctx) -> Outcome {
    let iframe = ctx.path(&format!("{ECHO}/iframe.html"));
    let r = ctx.get(&iframe, &[]).step("GET iframe.html")?;
    expect_status("GET iframe.html", &r, 200)?;
    let etag = r
        .header("etag")
        .ok_or_else(|| fail("GET iframe.html: no ETag"))?
        .to_string();
    super::static_pages::bare_304(ctx, &iframe, &etag, &r.body)?;
    let r = ctx
        .post(&ctx.path(&format!("{ECHO}/0/0/websocket")), "", &[])
        .step("POST websocket")?;
    expect_status("POST websocket", &r, 405)?;
    expect_no_header("405", &r.head, "content-type")?;
    let r = ctx
        .options(
            &preflight_path(ctx, "xhr"),
            &[("Access-Control-Request-Method", "POST")],
        )
        .step("OPTIONS xhr")?;
    preflight_status("OPTIONS xhr", &r)?;
    expect_no_header("OPTIONS preflight", &r.head, "content-type")
}

#[cfg(test)]
mod tests {
    use super::verify_cookie;
    use crate::http::parse_head;

    fn cookie(value: &str) -> bool {
        let head =
            parse_head(format!("HTTP/1.1 200 OK\r\nSet-Cookie: {value}").as_bytes()).expect("head");
        verify_cookie("t", &head, "dummy").is_ok()
    }

    #[test]
    fn a_preflight_has_no_content_type_whatever_its_status() {
        use super::preflight_bare;
        use crate::http::{BodyKind, Response};
        let preflight = |head: &str| {
            let r = Response {
                head: parse_head(head.as_bytes()).expect("head"),
                body: Vec::new(),
                kind: BodyKind::None,
            };
            preflight_bare("OPTIONS", &r)
        };
        assert!(preflight("HTTP/1.1 204 No Content").is_ok());
        assert!(preflight("HTTP/1.1 200 OK\r\nContent-Length: 0").is_ok());
        for status in ["204 No Content", "200 OK"] {
            let typed = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain");
            assert!(preflight(&typed).is_err(), "{status}");
        }
        assert!(preflight("HTTP/1.1 404 Not Found").is_err());
    }

    #[test]
    fn cors_and_caching_headers_come_once() {
        use super::{NO_CACHE, verify_cors, verify_not_cached};
        let head = |fields: &str| {
            parse_head(format!("HTTP/1.1 200 OK\r\n{fields}").as_bytes()).expect("head")
        };
        let cors = "Access-Control-Allow-Origin: test\r\nAccess-Control-Allow-Credentials: true";
        assert!(verify_cors("t", &head(cors), Some("test")).is_ok());
        let twice = format!("{cors}\r\nAccess-Control-Allow-Origin: test");
        assert!(verify_cors("t", &head(&twice), Some("test")).is_err());
        let twice = format!("{cors}\r\nAccess-Control-Allow-Credentials: true");
        assert!(verify_cors("t", &head(&twice), Some("test")).is_err());
        let once = format!("Cache-Control: {NO_CACHE}");
        assert!(verify_not_cached("t", &head(&once)).is_ok());
        let twice = format!("{once}\r\nCache-Control: public, max-age=31536000");
        assert!(verify_not_cached("t", &head(&twice)).is_err());
    }

    #[test]
    fn max_age_is_seconds_over_a_million() {
        use super::max_age_ok;
        for ok in ["31536000", "1000001", "99999999999999999999999"] {
            assert!(max_age_ok(ok), "{ok}");
        }
        for bad in [
            "1000000",
            "86400",
            "",
            "+31536000",
            "-31536000",
            "3.1e7",
            "31536000 ",
        ] {
            assert!(!max_age_ok(bad), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_exact() {
        assert!(cookie("JSESSIONID=dummy; path=/"));
        assert!(cookie("JSESSIONID=dummy; Path=/"));
        assert!(cookie("JSESSIONID=dummy;path=/"));
        assert!(!cookie("JSESSIONID=dummy; path=/; HttpOnly"));
        assert!(!cookie("JSESSIONID=dummy; path=/; Secure; SameSite=None"));
        assert!(!cookie("JSESSIONID=dummy; path=/x"));
        assert!(!cookie("JSESSIONID=dummy"));
        assert!(!cookie("JSESSIONID=other; path=/"));
        assert!(!cookie("jsessionid=dummy; path=/"));
        assert!(!cookie("JSESSIONID=dummy; domain=x"));
    }
}
