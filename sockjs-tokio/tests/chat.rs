//! The chat example on tokio over sockets: its `GET /metrics` (through `SockJs::metrics`,
//! under axum) counts the sessions it serves.
#![allow(clippy::unwrap_used)]

use sockjs_tokio as adapter;

#[path = "../examples/chat.rs"]
#[allow(dead_code, unused_imports)]
mod example;

#[path = "../../examples/chat/metrics_check.rs"]
mod metrics_check;

#[test]
fn the_chats_metrics_count_its_sessions() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let args = example::chat::Args::parse_from(["127.0.0.1:0".to_owned()]);
    let (listener, node) = args.listen();
    let addr = listener.local_addr().unwrap();
    let service = runtime.block_on(async {
        let (app, service) = example::app(&args, &node);
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        service
    });
    let receiver = metrics_check::metrics_show_an_open_session(addr);
    metrics_check::names_tags_and_pace(addr);
    assert_eq!(
        service
            .metrics()
            .sessions_open(adapter::Transport::XhrStreaming),
        1
    );
    drop(receiver);
    runtime.shutdown_background();
}

/// The page loads the default sockjs-client (one exact version from the CDN) only if it
/// matches its integrity hash; a URL the user chose is theirs to vouch for.
#[test]
fn the_chat_page_checks_its_default_client_and_trusts_a_chosen_one() {
    let page = example::chat::Args::parse_from(["127.0.0.1:0".to_owned()]).page();
    assert!(
        page.contains(
            r#"<script src="https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js" integrity="sha384-"#
        ),
        "{page}"
    );
    assert!(page.contains(r#"crossorigin="anonymous" onerror="clientMissing()""#));
    let chosen = example::chat::Args::parse_from(
        ["127.0.0.1:0", "--sockjs-url", "/js/sockjs.min.js"].map(str::to_owned),
    )
    .page();
    assert!(chosen.contains(r#"<script src="/js/sockjs.min.js" onerror="clientMissing()">"#));
    assert!(!chosen.contains("integrity="));
}
