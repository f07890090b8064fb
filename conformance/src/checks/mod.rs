//! The checks, one module per PROTOCOL.md area.

use crate::check::{
    Check, Ctx, Failure, Outcome, Step, expect_eq, expect_response, expect_status, fail, service,
};
use crate::http::{Head, Request};
use crate::util::esc;

mod aborts;
mod frames;
mod headers;
mod http1;
mod rfc6455;
mod routing;
mod senders;
mod sessions;
mod static_pages;
mod timing;
mod transports;
mod websocket;

/// Every check, in a stable order (by section).
pub fn all() -> Vec<Check> {
    let mut v = Vec::new();
    v.extend(routing::checks());
    v.extend(headers::checks());
    v.extend(static_pages::checks());
    v.extend(frames::checks());
    v.extend(senders::checks());
    v.extend(sessions::checks());
    v.extend(aborts::checks());
    v.extend(transports::checks());
    v.extend(websocket::checks());
    v.push(websocket::permessage_deflate());
    v.push(websocket::permessage_deflate_small_server_window());
    v.extend(rfc6455::checks());
    v.extend(http1::checks());
    v.extend(timing::checks());
    v
}

/// The endpoints that answer a successful request, for table-driven header checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ep {
    Greeting,
    Info,
    Iframe,
    Xhr,
    XhrSend,
    XhrStreaming,
    EventSource,
    HtmlFile,
    Jsonp,
    JsonpSend,
}

impl Ep {
    pub(crate) const ALL: [Ep; 10] = [
        Ep::Greeting,
        Ep::Info,
        Ep::Iframe,
        Ep::Xhr,
        Ep::XhrSend,
        Ep::XhrStreaming,
        Ep::EventSource,
        Ep::HtmlFile,
        Ep::Jsonp,
        Ep::JsonpSend,
    ];

    /// The session transports (the endpoints that carry a session id).
    pub(crate) const SESSION: [Ep; 7] = [
        Ep::Xhr,
        Ep::XhrSend,
        Ep::XhrStreaming,
        Ep::EventSource,
        Ep::HtmlFile,
        Ep::Jsonp,
        Ep::JsonpSend,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Ep::Greeting => "greeting",
            Ep::Info => "info",
            Ep::Iframe => "iframe",
            Ep::Xhr => "xhr",
            Ep::XhrSend => "xhr_send",
            Ep::XhrStreaming => "xhr_streaming",
            Ep::EventSource => "eventsource",
            Ep::HtmlFile => "htmlfile",
            Ep::Jsonp => "jsonp",
            Ep::JsonpSend => "jsonp_send",
        }
    }

    /// Content-Type with spaces removed (§3.1).
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Ep::Greeting | Ep::XhrSend | Ep::JsonpSend => "text/plain;charset=UTF-8",
            Ep::Info => "application/json;charset=UTF-8",
            Ep::Iframe | Ep::HtmlFile => "text/html;charset=UTF-8",
            Ep::Xhr | Ep::XhrStreaming | Ep::Jsonp => "application/javascript;charset=UTF-8",
            Ep::EventSource => "text/event-stream",
        }
    }

    /// Performs this endpoint's ordinary successful request on `svc` with extra request
    /// headers and returns the response head (status already checked).
    pub(crate) fn hit(
        self,
        ctx: &Ctx,
        svc: &str,
        headers: &[(&str, &str)],
    ) -> Result<Head, Failure> {
        let s = ctx.session(svc);
        match self {
            Ep::Greeting => ok(ctx.get(&ctx.path(svc), headers), "GET greeting", 200),
            Ep::Info => ok(
                ctx.get(&ctx.path(&format!("{svc}/info")), headers),
                "GET info",
                200,
            ),
            Ep::Iframe => ok(
                ctx.get(&ctx.path(&format!("{svc}/iframe.html")), headers),
                "GET iframe.html",
                200,
            ),
            Ep::Xhr => {
                let r = ctx.post(&s.url("xhr"), "", headers).step("POST xhr")?;
                expect_response("POST xhr", &r, 200, b"o\n")?;
                Ok(r.head)
            }
            Ep::XhrSend => {
                ctx.open_xhr(&s)?;
                let r = ctx
                    .post(&s.url("xhr_send"), "[\"x\"]", headers)
                    .step("POST xhr_send")?;
                expect_response("POST xhr_send", &r, 204, b"")?;
                Ok(r.head)
            }
            Ep::XhrStreaming => {
                let st = ctx.xhr_streaming(&s, headers).step("POST xhr_streaming")?;
                expect_head("POST xhr_streaming", &st.head, 200)
            }
            Ep::EventSource => {
                let st = ctx
                    .open(&Request::new("GET", &s.url("eventsource")).headers(headers))
                    .step("GET eventsource")?;
                expect_head("GET eventsource", &st.head, 200)
            }
            Ep::HtmlFile => {
                let st = ctx
                    .open(&Request::new("GET", &s.url("htmlfile?c=callback")).headers(headers))
                    .step("GET htmlfile")?;
                expect_head("GET htmlfile", &st.head, 200)
            }
            Ep::Jsonp => {
                let r = ctx
                    .get(&s.url("jsonp?c=callback"), headers)
                    .step("GET jsonp")?;
                expect_response("GET jsonp", &r, 200, b"/**/callback(\"o\");\r\n")?;
                Ok(r.head)
            }
            Ep::JsonpSend => {
                let r = ctx
                    .get(&s.url("jsonp?c=x"), &[])
                    .step("opening GET jsonp")?;
                expect_response("opening GET jsonp", &r, 200, b"/**/x(\"o\");\r\n")?;
                let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
                h.extend_from_slice(headers);
                let r = ctx
                    .post(&s.url("jsonp_send"), "d=%5B%22x%22%5D", &h)
                    .step("POST jsonp_send")?;
                expect_response("POST jsonp_send", &r, 200, b"ok")?;
                Ok(r.head)
            }
        }
    }
}

fn ok(r: Result<crate::http::Response, Failure>, what: &str, status: u16) -> Result<Head, Failure> {
    let r = r.step(what)?;
    expect_status(what, &r, status)?;
    Ok(r.head)
}

fn expect_head(what: &str, h: &Head, status: u16) -> Result<Head, Failure> {
    crate::check::expect_head_status(what, h, status)?;
    Ok(h.clone())
}

/// The ECHO service prefix.
pub(crate) const ECHO: &str = service::ECHO;

/// Fails unless `r` is a bare 405 with an `Allow` listing exactly `methods` (any order).
pub(crate) fn verify_405(what: &str, r: &crate::http::Response, methods: &[&str]) -> Outcome {
    expect_status(what, r, 405)?;
    crate::check::expect_no_header(what, &r.head, "content-type")?;
    expect_eq(&format!("{what}: body"), b"", &r.body)?;
    if let Some(Ok(n)) = r.head.content_length() {
        if n != 0 {
            return Err(fail(format!("{what}: Content-Length must be 0, got {n}")));
        }
    }
    let allow = r
        .head
        .header("allow")
        .ok_or_else(|| fail(format!("{what}: Allow header missing")))?;
    let mut got: Vec<String> = allow
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect();
    got.sort();
    let mut want: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
    want.sort();
    if got != want {
        return Err(fail(format!(
            "{what}: Allow must list {} (any order), got \"{}\"",
            want.join(", "),
            esc(allow.as_bytes())
        )));
    }
    Ok(())
}
