//! What decoding a request head allocates (its own test binary, alone, so that the global
//! heap counters see nothing else): the fields browsers and proxies send on every request
//! cost no allocation of their own, however they are spelled.

use std::alloc::System;

use bytes::BytesMut;
use sockjs_core::wire::{Decoded, Limits, RequestDecoder};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// An `xhr_send` as Chromium sends it over HTTP/1.1 (its field names as it spells them),
/// behind a proxy that adds its own, with `extra` fields before the body.
fn xhr_send(extra: &str) -> Vec<u8> {
    let body = r#"["hello"]"#;
    format!(
        "POST /echo/000/abcd/xhr_send HTTP/1.1\r\n\
         Host: example.com\r\n\
         Connection: keep-alive\r\n\
         Content-Length: {}\r\n\
         Content-Type: text/plain;charset=UTF-8\r\n\
         Origin: https://example.com\r\n\
         Referer: https://example.com/chat\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36\r\n\
         Accept: */*\r\n\
         Accept-Encoding: gzip, deflate, br, zstd\r\n\
         Accept-Language: en-US,en;q=0.9\r\n\
         {extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Allocations made by decoding `bytes` (one request), and the request's field count.
fn allocations(bytes: &[u8]) -> (usize, usize) {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(bytes.len());
    buf.extend_from_slice(bytes);
    let region = Region::new(HEAP);
    let decoded = decoder.decode(&mut buf).expect("a valid request");
    let made = region.change().allocations;
    let Some(Decoded::Request(request)) = decoded else {
        panic!("a whole request: {decoded:?}");
    };
    (made, request.request.headers().len())
}

#[test]
fn browser_and_proxy_fields_allocate_nothing_of_their_own() {
    let (plain, fields) = allocations(&xhr_send(""));
    assert_eq!(fields, 10);
    let browser = "sec-ch-ua-platform: \"Linux\"\r\n\
                   sec-ch-ua: \"Chromium\";v=\"131\"\r\n\
                   sec-ch-ua-mobile: ?0\r\n\
                   Sec-Fetch-Site: same-origin\r\n\
                   Sec-Fetch-Mode: cors\r\n\
                   Sec-Fetch-Dest: empty\r\n\
                   Sec-Fetch-User: ?1\r\n\
                   Priority: u=1, i\r\n\
                   Sec-GPC: 1\r\n\
                   X-Requested-With: XMLHttpRequest\r\n\
                   X-Forwarded-For: 192.0.2.1\r\n\
                   X-Forwarded-Proto: https\r\n\
                   X-Forwarded-Host: example.com\r\n\
                   X-Forwarded-Port: 443\r\n\
                   X-Real-IP: 192.0.2.1\r\n";
    let (with_browser, fields) = allocations(&xhr_send(browser));
    assert_eq!(fields, 25);
    assert_eq!(
        with_browser,
        plain,
        "15 common fields made {} allocations of their own",
        with_browser as isize - plain as isize
    );
    // The measure sees a name `http` has to copy: one allocation for one uncommon field.
    let (with_custom, _) = allocations(&xhr_send("X-Custom-Field: 1\r\n"));
    assert_eq!(with_custom, plain + 1);
}
