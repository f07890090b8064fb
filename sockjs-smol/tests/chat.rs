//! The chat example on smol over sockets: its `GET /metrics` (through
//! `ServerHandle::metrics`) counts the sessions it serves.
#![allow(clippy::unwrap_used)]

use sockjs_smol as adapter;

#[path = "../examples/chat.rs"]
#[allow(dead_code, unused_imports)]
mod example;

#[path = "../../examples/chat/metrics_check.rs"]
mod metrics_check;

#[test]
fn the_chats_metrics_count_its_sessions() {
    let args = example::chat::Args::parse_from(["127.0.0.1:0".to_owned()]);
    let (listener, node) = args.listen();
    let addr = listener.local_addr().unwrap();
    let server = example::server(&args, &node);
    let handle = server.handle();
    let listener = async_io::Async::new(listener).unwrap();
    std::thread::spawn(move || async_io::block_on(server.serve(listener)));
    let receiver = metrics_check::metrics_show_an_open_session(addr);
    metrics_check::names_tags_and_pace(addr);
    assert_eq!(handle.metrics().len(), 1);
    drop(receiver);
    handle.shutdown();
}
