//! Walks one SockJS session through the engine on a virtual clock and prints every byte
//! that would go on the wire: the engine needs no network to show what it does.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sockjs_core::{Content, Engine, Event, Options, RequestId, Start, Transmit};

fn show(engine: &mut Engine, now: Instant) {
    // Write everything queued, then hand every event to the application; its echoes are
    // batched into one frame per session when the transmits are drained again.
    loop {
        while let Some(transmit) = engine.poll_transmit() {
            show_transmit(transmit);
        }
        let mut any = false;
        while let Some(event) = engine.poll_event() {
            any = true;
            match event {
                Event::Opened { session, info } => {
                    let transport = info.transport.name();
                    println!("  app: session {session} opened over {transport}")
                }
                Event::Message { session, text } => {
                    println!("  app: {session} says {text:?}; echoing");
                    let _ = engine.send(now, session, &text);
                }
                Event::Closed { session, reason } => {
                    println!("  app: {session} closed: {reason:?}")
                }
                other => println!("  app: {other:?}"),
            }
        }
        if !any {
            return;
        }
    }
}

fn show_transmit(Transmit { request, content }: Transmit) {
    match content {
        Content::Response(response) => println!(
            "  -> request {}: {} {:?}",
            request.0,
            response.status(),
            String::from_utf8_lossy(response.body())
        ),
        Content::StreamStart(response) => {
            println!(
                "  -> request {}: {} (streaming)",
                request.0,
                response.status()
            )
        }
        Content::Chunk(data) => {
            let text = String::from_utf8_lossy(&data);
            let shown = if text.len() > 40 {
                format!("{}… ({} bytes)", &text[..20], text.len())
            } else {
                text.into_owned()
            };
            println!("  -> request {}: chunk {shown:?}", request.0)
        }
        Content::StreamEnd => println!("  -> request {}: end of stream", request.0),
        other => println!("  -> request {}: {other:?}", request.0),
    }
}

fn request(method: &str, uri: &str, body: &str) -> http::Request<Bytes> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Bytes::from(body.to_owned()))
        .unwrap_or_default()
}

fn main() {
    let mut now = Instant::now();
    let start = Start {
        now,
        wall_clock: SystemTime::now(),
        seed: 1,
    };
    let options = Options {
        prefix: "/echo".into(),
        response_limit: 4096,
        ..Options::default()
    };
    let Ok(mut engine) = Engine::new(options, start) else {
        return;
    };
    let steps = [
        ("GET", "/echo/info", ""),
        ("POST", "/echo/000/s1/xhr_streaming", ""),
        ("POST", "/echo/000/s1/xhr_send", r#"["hello","world"]"#),
        ("POST", "/echo/000/s1/xhr_streaming", ""),
        ("POST", "/echo/000/s1/xhr_send", "[\"x"),
    ];
    for (i, (method, uri, body)) in steps.iter().enumerate() {
        println!("{method} {uri} {body}");
        engine.handle_request(now, RequestId(i as u64 + 1), request(method, uri, body));
        show(&mut engine, now);
    }
    println!("(25 s pass)");
    now += Duration::from_secs(25);
    engine.handle_timeout(now);
    show(&mut engine, now);
    println!("client drops the stream; the session closes");
    engine.handle_abort(now, RequestId(2));
    show(&mut engine, now);
}
