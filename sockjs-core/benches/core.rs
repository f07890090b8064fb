//! Micro-benchmarks of the engine's hot paths, with a small self-contained harness (no
//! extra dependencies): each case runs for a fixed number of iterations, several times, and
//! the median time per operation is reported.
//!
//! `cargo bench -p sockjs-core` (add a case name to filter).

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use sockjs_core::escape::quote_message;
use sockjs_core::frame::MessageBatch;
use sockjs_core::wire::{Limits, RequestDecoder};
use sockjs_core::{Engine, Event, Options, RequestId, SessionKey, Start};

const RUNS: usize = 7;

fn bench(name: &str, filter: &Option<String>, iterations: u64, mut f: impl FnMut()) {
    if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
        return;
    }
    for _ in 0..iterations / 10 + 1 {
        f(); // warm up
    }
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / iterations as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let median = samples[RUNS / 2];
    println!(
        "{name:<44} {median:>10.1} ns/op   (min {:.1}, max {:.1}, {RUNS} runs x {iterations})",
        samples[0],
        samples[RUNS - 1]
    );
}

fn engine(options: Options) -> Engine {
    let start = Start {
        now: Instant::now(),
        wall_clock: SystemTime::now(),
        seed: 9,
    };
    Engine::new(options, start).expect("valid options")
}

fn drain(engine: &mut Engine) -> usize {
    let mut n = 0;
    loop {
        while let Some(transmit) = engine.poll_transmit() {
            black_box(&transmit);
            n += 1;
        }
        let Some(event) = engine.poll_event() else {
            return n;
        };
        black_box(&event);
        n += 1;
    }
}

/// The driver loop with an echo application: every message is sent back.
fn echo(engine: &mut Engine, now: Instant) {
    loop {
        while let Some(transmit) = engine.poll_transmit() {
            black_box(&transmit);
        }
        let mut any = false;
        while let Some(event) = engine.poll_event() {
            any = true;
            if let Event::Message { session, text } = event {
                let _ = engine.send(now, session, &text);
            }
        }
        if !any {
            return;
        }
    }
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let ascii = "The quick brown fox jumps over the lazy dog, 0123456789 times!".repeat(2);
    let unicode = "Zażółć gęślą jaźń — 日本語のテキスト 😀 \u{2028} \u{200d} é\u{301}".repeat(2);

    let mut out = Vec::with_capacity(4096);
    bench("escape/ascii 126 B", &filter, 200_000, || {
        out.clear();
        quote_message(&mut out, black_box(&ascii));
        black_box(&out);
    });
    bench("escape/unicode-heavy 154 B", &filter, 200_000, || {
        out.clear();
        quote_message(&mut out, black_box(&unicode));
        black_box(&out);
    });
    bench(
        "escape/serde_json ascii (reference)",
        &filter,
        200_000,
        || {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&ascii)).expect("write");
            black_box(&out);
        },
    );

    let msg32 = "x".repeat(32);
    let mut batch = MessageBatch::default();
    bench("frame/a[...] of 1 x 32 B", &filter, 200_000, || {
        batch.push(black_box(&msg32));
        let mut frame = Vec::with_capacity(batch.frame_len() + 1);
        batch.write_frame(&mut frame);
        batch.clear();
        black_box(frame);
    });
    bench("frame/a[...] of 10 x 32 B", &filter, 100_000, || {
        for _ in 0..10 {
            batch.push(black_box(&msg32));
        }
        let mut frame = Vec::with_capacity(batch.frame_len() + 1);
        batch.write_frame(&mut frame);
        batch.clear();
        black_box(frame);
    });

    // A request head as Chromium sends an `xhr_send` over HTTP/1.1, decoded whole.
    let head = "POST /echo/000/abcd/xhr_send HTTP/1.1\r\nHost: example.com\r\n\
        Connection: keep-alive\r\nContent-Length: 9\r\nsec-ch-ua-platform: \"Linux\"\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36\r\n\
        sec-ch-ua: \"Chromium\";v=\"131\"\r\nContent-Type: text/plain;charset=UTF-8\r\n\
        sec-ch-ua-mobile: ?0\r\nAccept: */*\r\nOrigin: https://example.com\r\n\
        Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n\
        Referer: https://example.com/chat\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9\r\nPriority: u=1, i\r\n\r\n[\"hello\"]";
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(head.len());
    bench("wire/decode a browser's xhr_send", &filter, 200_000, || {
        buf.extend_from_slice(head.as_bytes());
        let decoded = decoder.decode(&mut buf).expect("a request");
        black_box(decoded);
    });

    // A full round trip: xhr_send with one message -> app echo -> frame on a stream.
    let mut e = engine(Options {
        response_limit: usize::MAX / 2,
        ..Options::default()
    });
    let now = Instant::now();
    e.handle_request(
        now,
        RequestId(1),
        http::Request::post("/a/s/xhr_streaming")
            .body(Bytes::new())
            .expect("req"),
    );
    drain(&mut e);
    let mut id = 2;
    let body = Bytes::from_static(br#"["hello, world: a 32 byte message"]"#);
    bench(
        "engine/xhr_send -> echo -> stream chunk",
        &filter,
        50_000,
        || {
            id += 1;
            let request = http::Request::post("/a/s/xhr_send")
                .body(body.clone())
                .expect("req");
            e.handle_request(now, RequestId(id), request);
            echo(&mut e, now);
        },
    );

    // A WebSocket echo through the engine.
    let mut e = engine(Options::default());
    let ws = http::Request::get("/a/w/websocket")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw==")
        .body(Bytes::new())
        .expect("req");
    e.handle_request(now, RequestId(1), ws);
    drain(&mut e);
    bench(
        "engine/websocket message -> echo -> frame",
        &filter,
        200_000,
        || {
            e.handle_ws_message(
                now,
                RequestId(1),
                black_box(r#"["hello, world: a 32 byte message"]"#),
            );
            echo(&mut e, now);
        },
    );

    // Session lookup among 100k sessions: a send to an existing session id.
    let mut e = engine(Options {
        max_sessions: 200_000,
        ..Options::default()
    });
    let mut keys: Vec<SessionKey> = Vec::with_capacity(100_000);
    for i in 0..100_000u64 {
        let uri = format!("/a/s{i}/xhr");
        e.handle_request(
            now,
            RequestId(i),
            http::Request::post(uri).body(Bytes::new()).expect("req"),
        );
        while e.poll_transmit().is_some() {}
        while let Some(event) = e.poll_event() {
            if let Event::Opened { session, .. } = event {
                keys.push(session);
            }
        }
    }
    let mut i = 0usize;
    let send_body = Bytes::from_static(b"[\"x\"]");
    let uris: Vec<String> = (0..1024)
        .map(|n| format!("/a/s{}/xhr_send", n * 97))
        .collect();
    bench(
        "engine/xhr_send lookup among 100k sessions",
        &filter,
        100_000,
        || {
            i += 1;
            let request = http::Request::post(uris[i % uris.len()].as_str())
                .body(send_body.clone())
                .expect("req");
            e.handle_request(now, RequestId(1_000_000 + i as u64), request);
            drain(&mut e);
        },
    );
    bench(
        "engine/app send by key among 100k sessions",
        &filter,
        1_000_000,
        || {
            i += 1;
            let key = keys[(i * 7919) % keys.len()];
            let _ = black_box(e.send(now, key, "x"));
            if i % 1000 == 0 {
                // Keep queues from filling: let every session expire its batch by polling.
                drain(&mut e);
            }
        },
    );
    let _ = Duration::ZERO;
}
