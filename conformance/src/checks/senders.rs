//! §6: xhr_send and jsonp_send.

use super::ECHO;
use crate::check::{
    Check, Ctx, Failure, Outcome, Session, Step, ensure, expect_content_type, expect_header,
    expect_response, expect_status, service,
};
use crate::http::{Request, Response};
use crate::util::esc_short;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s6_xhr_send_empty_body_500",
            "6",
            "xhr_send with an empty body is 500 \"Payload expected.\"",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                expect_500(
                    &ctx.xhr_send(&s, "").step("POST xhr_send \"\"")?,
                    "Payload expected.",
                )
            },
        ),
        Check::new(
            "s6_xhr_send_broken_json_500",
            "6",
            "xhr_send with broken JSON is 500 \"Broken JSON encoding.\"",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                let r = ctx.xhr_send(&s, "[\"x").step("POST xhr_send [\"x")?;
                expect_500(&r, "Broken JSON encoding.")
            },
        ),
        Check::new(
            "s6_xhr_send_not_array_500",
            "6",
            "xhr_send with JSON that is not an array (null, {}, \"a\") is 500 \"Payload expected.\"",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                for body in ["null", "{}", "\"a\""] {
                    let r = ctx
                        .xhr_send(&s, body)
                        .step(&format!("POST xhr_send {body}"))?;
                    expect_500(&r, "Payload expected.").step(body)?;
                }
                Ok(())
            },
        ),
        Check::new(
            "s6_xhr_send_errors_before_session_lookup",
            "6",
            "on an unknown session, payload errors (500) win over the 404",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                expect_500(
                    &ctx.xhr_send(&s, "").step("empty body")?,
                    "Payload expected.",
                )
                .step("empty body")?;
                expect_500(
                    &ctx.xhr_send(&s, "[\"x").step("broken JSON")?,
                    "Broken JSON encoding.",
                )
                .step("broken JSON")?;
                expect_500(
                    &ctx.xhr_send(&s, "{}").step("not an array")?,
                    "Payload expected.",
                )
                .step("not an array")?;
                let r = ctx.xhr_send(&s, "[\"x\"]").step("valid payload")?;
                expect_status("valid payload on an unknown session", &r, 404)
            },
        ),
        Check::new(
            "s6_xhr_send_unknown_session_404",
            "6",
            "xhr_send to an unknown session is 404 and creates no session",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let r = ctx.xhr_send(&s, "[\"a\"]").step("first POST xhr_send")?;
                expect_status("first POST xhr_send", &r, 404)?;
                let r = ctx.xhr_send(&s, "[\"a\"]").step("second POST xhr_send")?;
                expect_status(
                    "second POST xhr_send (no session may have been created)",
                    &r,
                    404,
                )
            },
        ),
        Check::new(
            "s6_xhr_send_any_content_type",
            "6",
            "xhr_send ignores the request Content-Type (the suite's eight types)",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                let types = [
                    "text/plain",
                    "T",
                    "application/json",
                    "application/xml",
                    "",
                    "application/json; charset=utf-8",
                    "text/xml; charset=utf-8",
                    "text/xml",
                ];
                for ct in types {
                    let what = format!("POST xhr_send with Content-Type \"{ct}\"");
                    let r = ctx
                        .post(&s.url("xhr_send"), "[\"a\"]", &[("Content-Type", ct)])
                        .step(&what)?;
                    expect_response(&what, &r, 204, b"")?;
                }
                let want = format!("a[{}]\n", vec!["\"a\""; types.len()].join(","));
                ctx.expect_xhr("POST xhr", &s, &want)
            },
        ),
        Check::new(
            "s6_xhr_send_empty_array",
            "6",
            "xhr_send [] is accepted (204) and delivers nothing",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                ctx.send_ok(&s, "[]")?;
                ctx.send_ok(&s, "[\"a\"]")?;
                ctx.expect_xhr("POST xhr", &s, "a[\"a\"]\n")
            },
        ),
        Check::new(
            "s6_xhr_send_whitespace_around_json",
            "6",
            "whitespace around the JSON payload is fine",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                ctx.send_ok(&s, " \r\n[ \"a\" , \"b\" ]\n ")?;
                ctx.expect_xhr("POST xhr", &s, "a[\"a\",\"b\"]\n")
            },
        ),
        Check::new(
            "s6_xhr_send_errors_keep_session",
            "6",
            "after rejected sends the session still works (suite: XhrPolling.test_invalid_json)",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                expect_500(
                    &ctx.xhr_send(&s, "[\"x").step("broken JSON")?,
                    "Broken JSON encoding.",
                )?;
                expect_500(
                    &ctx.xhr_send(&s, "").step("empty body")?,
                    "Payload expected.",
                )?;
                ctx.send_ok(&s, "[\"a\"]")?;
                ctx.expect_xhr("POST xhr", &s, "a[\"a\"]\n")
            },
        ),
        Check::new(
            "s6_xhr_send_without_content_length",
            "6",
            "a POST without Content-Length has an empty body: 500 \"Payload expected.\"",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                let r = ctx
                    .request(&Request::new("POST", &s.url("xhr_send")).without_content_length())
                    .step("POST xhr_send without Content-Length")?;
                expect_500(&r, "Payload expected.")
            },
        ),
        Check::new(
            "s6_xhr_send_success_headers",
            "6",
            "successful xhr_send: 204, empty body, Content-Type text/plain; charset=UTF-8",
            |ctx: &Ctx| {
                let s = opened(ctx)?;
                let r = ctx.xhr_send(&s, "[\"x\"]").step("POST xhr_send")?;
                expect_response("POST xhr_send", &r, 204, b"")?;
                expect_content_type("POST xhr_send", &r.head, "text/plain;charset=UTF-8")
            },
        ),
        Check::new(
            "s6_jsonp_send_form",
            "6",
            "jsonp_send with a form d=... answers 200 \"ok\" (Content-Length 2, text/plain) and delivers",
            |ctx: &Ctx| {
                let s = jsonp_opened(ctx)?;
                let r = jsonp_send(ctx, &s, "d=%5B%22x%22%5D", Some(FORM.1))?;
                expect_response("POST jsonp_send", &r, 200, b"ok")?;
                expect_content_type("POST jsonp_send", &r.head, "text/plain;charset=UTF-8")?;
                if !r.head.is_chunked() {
                    expect_header("POST jsonp_send", &r.head, "content-length", "2")?;
                }
                expect_jsonp(ctx, &s, "/**/x(\"a[\\\"x\\\"]\");\r\n")
            },
        ),
        Check::new(
            "s6_jsonp_send_raw_body_not_url_decoded",
            "6",
            "jsonp_send with text/plain takes the raw body, not URL-decoded ([\"%61bc\"] stays %61bc)",
            |ctx: &Ctx| {
                let s = jsonp_opened(ctx)?;
                let r = jsonp_send(ctx, &s, "d=%5B%22abc%22%5D", Some(FORM.1))?;
                expect_response("POST jsonp_send (form)", &r, 200, b"ok")?;
                let r = jsonp_send(ctx, &s, "[\"%61bc\"]", Some("text/plain"))?;
                expect_response("POST jsonp_send (text/plain)", &r, 200, b"ok")?;
                expect_jsonp(ctx, &s, "/**/x(\"a[\\\"abc\\\",\\\"%61bc\\\"]\");\r\n")
            },
        ),
        Check::new(
            "s6_jsonp_send_form_with_charset",
            "6",
            "a form Content-Type with parameters (; charset=UTF-8) is still form-decoded",
            |ctx: &Ctx| {
                let s = jsonp_opened(ctx)?;
                let r = jsonp_send(
                    ctx,
                    &s,
                    "d=%5B%22a+b%22%5D",
                    Some("application/x-www-form-urlencoded; charset=UTF-8"),
                )?;
                expect_response("POST jsonp_send", &r, 200, b"ok")?;
                expect_jsonp(ctx, &s, "/**/x(\"a[\\\"a b\\\"]\");\r\n")
            },
        ),
        Check::new(
            "s6_jsonp_send_errors_500",
            "6",
            "jsonp_send: broken JSON is 500 \"Broken JSON encoding.\"; '', d=, p=p are 500 \"Payload expected.\"",
            |ctx: &Ctx| {
                let s = jsonp_opened(ctx)?;
                let r = jsonp_send(ctx, &s, "d=%5B%22x", Some(FORM.1))?;
                expect_500(&r, "Broken JSON encoding.").step("d=[\"x")?;
                for body in ["", "d=", "p=p"] {
                    let r = jsonp_send(ctx, &s, body, Some(FORM.1))?;
                    expect_500(&r, "Payload expected.").step(&format!("body \"{body}\""))?;
                }
                let r = jsonp_send(ctx, &s, "d=%5B%22b%22%5D", Some(FORM.1))?;
                expect_response("POST jsonp_send", &r, 200, b"ok")?;
                expect_jsonp(ctx, &s, "/**/x(\"a[\\\"b\\\"]\");\r\n")
            },
        ),
        Check::new(
            "s6_jsonp_send_errors_before_session_lookup",
            "6",
            "jsonp_send on an unknown session: payload errors (500) win over the 404, which a valid payload gets",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                for (body, text) in [
                    ("d=", "Payload expected."),
                    ("d=%5B%22x", "Broken JSON encoding."),
                    ("d=%7B%7D", "Payload expected."),
                ] {
                    let r = jsonp_send(ctx, &s, body, Some(FORM.1))?;
                    expect_500(&r, text).step(&format!("body \"{body}\" on an unknown session"))?;
                }
                let r = jsonp_send(ctx, &s, "d=%5B%22x%22%5D", Some(FORM.1))?;
                expect_status("valid payload on an unknown session", &r, 404)
            },
        ),
        Check::new(
            "s6_jsonp_send_not_array_500",
            "6",
            "jsonp_send with d=null, d={} is 500 \"Payload expected.\"",
            |ctx: &Ctx| {
                let s = jsonp_opened(ctx)?;
                for body in ["d=null", "d=%7B%7D"] {
                    let r = jsonp_send(ctx, &s, body, Some(FORM.1))?;
                    expect_500(&r, "Payload expected.").step(body)?;
                }
                Ok(())
            },
        ),
        Check::new(
            "s6_jsonp_send_empty_array",
            "6",
            "jsonp_send d=[] is accepted (ok) and delivers nothing",
            |ctx: &Ctx| {
                let s = jsonp_opened(ctx)?;
                let r = jsonp_send(ctx, &s, "d=%5B%5D", Some(FORM.1))?;
                expect_response("POST jsonp_send d=[]", &r, 200, b"ok")?;
                let r = jsonp_send(ctx, &s, "d=%5B%22x%22%5D", Some(FORM.1))?;
                expect_response("POST jsonp_send", &r, 200, b"ok")?;
                expect_jsonp(ctx, &s, "/**/x(\"a[\\\"x\\\"]\");\r\n")
            },
        ),
        Check::new(
            "s6_jsonp_send_unknown_session_404",
            "6",
            "jsonp_send to an unknown session is 404",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let r = jsonp_send(ctx, &s, "d=%5B%22x%22%5D", Some(FORM.1))?;
                expect_status("POST jsonp_send", &r, 404)
            },
        ),
        Check::new(
            "s6_send_closed_session_no_404",
            "6",
            "a send to a session the app closed is not a 404 while the close frame is still served",
            |ctx: &Ctx| {
                let s = ctx.session(service::CLOSE);
                ctx.open_xhr(&s)?;
                ctx.expect_xhr("second POST xhr", &s, "c[3000,\"Go away!\"]\n")?;
                let r = ctx.xhr_send(&s, "[\"x\"]").step("POST xhr_send")?;
                ensure(r.status() == 204, || {
                    format!(
                        "POST xhr_send to a closing session: expected 204 (acknowledged and dropped), got {} \"{}\"",
                        r.head.summary(),
                        esc_short(&r.body, 80)
                    )
                })?;
                ctx.expect_xhr("third POST xhr", &s, "c[3000,\"Go away!\"]\n")
            },
        ),
    ]
}

/// A fresh echo session opened over xhr.
fn opened(ctx: &Ctx) -> Result<Session, Failure> {
    let s = ctx.session(ECHO);
    ctx.open_xhr(&s)?;
    Ok(s)
}

/// A fresh echo session opened over jsonp with callback `x`.
fn jsonp_opened(ctx: &Ctx) -> Result<Session, Failure> {
    let s = ctx.session(ECHO);
    expect_jsonp(ctx, &s, "/**/x(\"o\");\r\n")?;
    Ok(s)
}

/// GET jsonp?c=x and compare the body.
pub(crate) fn expect_jsonp(ctx: &Ctx, s: &Session, body: &str) -> Outcome {
    let r = ctx.get(&s.url("jsonp?c=x"), &[]).step("GET jsonp")?;
    expect_response("GET jsonp", &r, 200, body.as_bytes())
}

fn jsonp_send(ctx: &Ctx, s: &Session, body: &str, ct: Option<&str>) -> Result<Response, Failure> {
    let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
    ctx.post(&s.url("jsonp_send"), body, &headers)
        .step(&format!("POST jsonp_send \"{body}\""))
}

/// A 500 whose body contains `text`.
pub(crate) fn expect_500(r: &Response, text: &str) -> Outcome {
    expect_status("error response", r, 500)?;
    ensure(String::from_utf8_lossy(&r.body).contains(text), || {
        format!(
            "500 body must contain \"{text}\", got \"{}\"",
            esc_short(&r.body, 120)
        )
    })
}
