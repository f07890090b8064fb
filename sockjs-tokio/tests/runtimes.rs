//! A service kept beyond the runtime that served its first request (a `static` service
//! shared by tests that each build their own runtime, or one served from a second runtime
//! after the first shut down): its timers move to the runtime that serves it next.
#![allow(clippy::unwrap_used)]

use std::pin::Pin;
use std::time::Duration;

use http_body::Body as _;
use sockjs_tokio::{Options, Session, SockJs};
use tower::ServiceExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// PROTOCOL.md §7.1.3: a streaming receiver gets `h` after each heartbeat delay, also when
/// the runtime that started the service's timers has shut down since (and its timer tasks
/// with it). Before, the timers fired only when a request reached the service: an idle
/// receiver heard nothing, and no session passed its disconnect delay.
#[test]
fn s7_1_3_heartbeats_go_out_on_the_next_runtime_once_the_first_is_gone() {
    let options = Options {
        heartbeat_delay: Some(Duration::from_millis(50)),
        ..Options::default()
    };
    let sockjs = SockJs::new(options, |mut session: Session| async move {
        while session.recv().await.is_some() {}
    });
    let first = runtime();
    first.block_on(async {
        let greeting = http::Request::get("/").body(String::new()).unwrap();
        let response = sockjs.clone().oneshot(greeting).await.unwrap();
        assert_eq!(response.status(), 200);
    });
    drop(first);

    let second = runtime();
    second.block_on(async {
        let stream = http::Request::post("/000/s/xhr_streaming")
            .body(String::new())
            .unwrap();
        let response = sockjs.clone().oneshot(stream).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut seen = Vec::new();
        let heard = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(frame) =
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {
                if let Ok(data) = frame.unwrap().into_data() {
                    seen.extend_from_slice(&data);
                }
                if seen.ends_with(b"o\nh\n") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            heard,
            Ok(true),
            "no heartbeat on the second runtime; the stream ends {:?}",
            String::from_utf8_lossy(&seen[seen.len().saturating_sub(16)..])
        );
    });
}
