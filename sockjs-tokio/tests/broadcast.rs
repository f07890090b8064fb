//! The broadcast hub with real sessions: topics, publish to a topic and to all, leaving,
//! cleanup when sessions end, a custom backend, and (with `SOCKJS_REDIS_URL` set and the
//! `redis` feature on) two hubs sharing topics through Redis.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sockjs_tokio::broadcast::{Backend, Broadcast, Inbox, Target};
use sockjs_tokio::{Options, Routes, SockJs, serve};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A node: a SockJS service at `/hub` whose sessions obey a tiny command language.
/// `join T`, `leave T` (answered `joined T` / `left T`), `pub T TEXT` and `all TEXT`
/// (answered `sent N` with the local delivery count).
struct Node {
    addr: SocketAddr,
    hub: Broadcast,
}

async fn node(hub: Broadcast) -> Node {
    let handler_hub = hub.clone();
    let service = SockJs::new(Options::default(), move |mut session| {
        let hub = handler_hub.clone();
        async move {
            let member = hub.member(session.sender());
            let _ = session.send("ready");
            while let Some(text) = session.recv().await {
                let (verb, rest) = text.split_once(' ').unwrap_or((&text, ""));
                let reply = match verb {
                    "join" => format!("joined {rest} {}", member.join(rest)),
                    "leave" => format!("left {rest} {}", member.leave(rest)),
                    "pub" => {
                        let (topic, said) = rest.split_once(' ').unwrap_or((rest, ""));
                        format!("sent {}", hub.publish(topic, said))
                    }
                    "all" => format!("sent {}", hub.publish_all(rest)),
                    "topics" => {
                        let mut topics = member.topics();
                        topics.sort();
                        format!("topics {}", topics.join(","))
                    }
                    _ => "?".to_owned(),
                };
                let _ = session.send(reply);
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, Routes::new().mount("/hub", service)).into_future());
    Node { addr, hub }
}

use std::future::IntoFuture as _;

struct Client {
    ws: WebSocketStream<TcpStream>,
}

impl Client {
    /// A raw WebSocket session (`/hub/websocket`), once the server said `ready`.
    async fn connect(node: &Node) -> Client {
        let stream = TcpStream::connect(node.addr).await.expect("connect");
        let url = format!("ws://{}/hub/websocket", node.addr);
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(url, stream))
            .await
            .expect("handshake timed out")
            .expect("handshake");
        let mut client = Client { ws };
        assert_eq!(client.next().await, "ready");
        client
    }

    async fn next(&mut self) -> String {
        loop {
            match tokio::time::timeout(TIMEOUT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return text.as_str().to_owned(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Nothing arrives for a while.
    async fn quiet(&mut self, wait: Duration) {
        if let Ok(message) = tokio::time::timeout(wait, self.ws.next()).await {
            panic!("expected nothing, got {message:?}");
        }
    }

    async fn say(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    async fn ask(&mut self, text: &str) -> String {
        self.say(text).await;
        self.next().await
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn topics_reach_their_members_only_in_order() {
    let node = node(Broadcast::new()).await;
    let mut ann = Client::connect(&node).await;
    let mut bob = Client::connect(&node).await;
    let mut cid = Client::connect(&node).await;
    assert_eq!(ann.ask("join red").await, "joined red true");
    assert_eq!(ann.ask("join red").await, "joined red false");
    assert_eq!(bob.ask("join red").await, "joined red true");
    assert_eq!(cid.ask("join blue").await, "joined blue true");
    assert_eq!(node.hub.topic_len("red"), 2);
    assert_eq!(node.hub.topic_len("blue"), 1);
    assert_eq!(node.hub.len(), 3);

    // Ten messages from ann to red: ann and bob get all of them in order, cid none.
    for i in 0..10 {
        ann.say(&format!("pub red m{i}")).await;
    }
    for i in 0..10 {
        assert_eq!(ann.next().await, format!("m{i}"));
        assert_eq!(ann.next().await, "sent 2");
        assert_eq!(bob.next().await, format!("m{i}"));
    }
    cid.quiet(Duration::from_millis(100)).await;

    // A topic nobody is in.
    assert_eq!(cid.ask("pub green hello").await, "sent 0");
    // From outside any session.
    assert_eq!(node.hub.publish("blue", "from the server"), 1);
    assert_eq!(cid.next().await, "from the server");
}

#[tokio::test]
async fn publish_all_reaches_every_member_even_without_topics() {
    let node = node(Broadcast::new()).await;
    let mut ann = Client::connect(&node).await;
    let mut bob = Client::connect(&node).await;
    assert_eq!(ann.ask("join red").await, "joined red true");
    bob.say("all hello everyone").await;
    assert_eq!(ann.next().await, "hello everyone");
    assert_eq!(bob.next().await, "hello everyone");
    assert_eq!(bob.next().await, "sent 2");
}

#[tokio::test]
async fn leaving_and_ending_sessions_stop_delivery_and_forget_topics() {
    let node = node(Broadcast::new()).await;
    let mut ann = Client::connect(&node).await;
    let mut bob = Client::connect(&node).await;
    assert_eq!(ann.ask("join red").await, "joined red true");
    assert_eq!(ann.ask("join blue").await, "joined blue true");
    assert_eq!(bob.ask("join red").await, "joined red true");
    assert_eq!(ann.ask("topics").await, "topics blue,red");

    assert_eq!(ann.ask("leave red").await, "left red true");
    assert_eq!(ann.ask("leave red").await, "left red false");
    assert_eq!(bob.ask("pub red only bob").await, "only bob");
    assert_eq!(bob.next().await, "sent 1");
    ann.quiet(Duration::from_millis(100)).await;

    // ann hangs up: once its session ends, the handler returns, the Member drops, and
    // blue (ann's last topic) is forgotten.
    drop(ann);
    eventually("ann's member is dropped", || node.hub.len() == 1).await;
    assert_eq!(node.hub.topic_len("blue"), 0);
    let mut topics = node.hub.topics();
    topics.sort();
    assert_eq!(topics, vec!["red".to_owned()]);
    assert_eq!(node.hub.publish_all("still here?"), 1);
    assert_eq!(bob.next().await, "still here?");
}

/// A backend that records what the hub asked of it.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    inbox: Arc<Mutex<Option<Inbox>>>,
}

impl Recorder {
    fn log(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }

    fn inbox(&self) -> Inbox {
        self.inbox.lock().expect("lock").clone().expect("started")
    }
}

impl Backend for Recorder {
    fn start(&self, inbox: Inbox) {
        *self.inbox.lock().expect("lock") = Some(inbox);
    }
    fn publish(&self, target: Target<'_>, text: &str) {
        self.log
            .lock()
            .expect("lock")
            .push(format!("publish {target:?} {text}"));
    }
    fn subscribe(&self, topic: &str) {
        self.log
            .lock()
            .expect("lock")
            .push(format!("subscribe {topic}"));
    }
    fn unsubscribe(&self, topic: &str) {
        self.log
            .lock()
            .expect("lock")
            .push(format!("unsubscribe {topic}"));
    }
}

#[tokio::test]
async fn a_backend_sees_first_joins_last_leaves_and_publishes_and_delivers_from_other_nodes() {
    let recorder = Recorder::default();
    let node = node(Broadcast::with_backend(recorder.clone())).await;
    let mut ann = Client::connect(&node).await;
    let mut bob = Client::connect(&node).await;
    assert_eq!(ann.ask("join red").await, "joined red true");
    assert_eq!(bob.ask("join red").await, "joined red true");
    assert_eq!(ann.ask("pub red hi").await, "hi");
    assert_eq!(ann.next().await, "sent 2");
    assert_eq!(bob.next().await, "hi");
    assert_eq!(bob.ask("all everyone").await, "everyone");
    assert_eq!(bob.next().await, "sent 2");
    assert_eq!(ann.next().await, "everyone");
    assert_eq!(ann.ask("leave red").await, "left red true");
    assert_eq!(bob.ask("leave red").await, "left red true");
    assert_eq!(
        recorder.log(),
        [
            "subscribe red",
            "publish Topic(\"red\") hi",
            "publish All everyone",
            "unsubscribe red",
        ]
    );

    // What another node published: delivered here, not published again.
    let inbox = recorder.inbox();
    assert_eq!(ann.ask("join blue").await, "joined blue true");
    assert_eq!(inbox.topics(), vec!["blue".to_owned()]);
    assert_eq!(inbox.deliver(Target::Topic("blue"), "remote"), 1);
    assert_eq!(ann.next().await, "remote");
    assert_eq!(inbox.deliver(Target::All, "remote all"), 2);
    assert_eq!(ann.next().await, "remote all");
    assert_eq!(bob.next().await, "remote all");
    assert_eq!(recorder.log().len(), 5, "{:?}", recorder.log());
}

#[test]
fn the_inbox_does_not_keep_the_hub_alive() {
    let recorder = Recorder::default();
    let hub = Broadcast::with_backend(recorder.clone());
    let inbox = recorder.inbox();
    assert!(inbox.is_alive());
    assert_eq!(inbox.deliver(Target::All, "nobody here"), 0);
    drop(hub);
    assert!(!inbox.is_alive());
    assert_eq!(inbox.deliver(Target::All, "nobody"), 0);
    assert!(inbox.topics().is_empty());
}

/// Two nodes sharing topics through Redis. Needs `--features redis` and a Redis server at
/// `SOCKJS_REDIS_URL` (e.g. `redis://127.0.0.1:6379/`); skipped otherwise.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_carries_topics_between_nodes() {
    let Ok(url) = std::env::var("SOCKJS_REDIS_URL") else {
        eprintln!("SOCKJS_REDIS_URL not set: skipping the Redis test");
        return;
    };
    // A prefix of its own, so parallel runs on one Redis do not meet.
    let prefix = format!(
        "sockjs-test-{}-{:?}:",
        std::process::id(),
        std::time::Instant::now()
    );
    let backend = |url: &str| {
        sockjs_tokio::broadcast::RedisBackend::new(url)
            .expect("url")
            .channel_prefix(&prefix)
    };
    let a = node(Broadcast::with_backend(backend(&url))).await;
    let b = node(Broadcast::with_backend(backend(&url))).await;
    eventually("both nodes connected to redis", || {
        a.hub.is_connected() && b.hub.is_connected()
    })
    .await;

    let mut ann = Client::connect(&a).await;
    let mut bob = Client::connect(&b).await;
    let mut cid = Client::connect(&b).await;
    assert_eq!(ann.ask("join red").await, "joined red true");
    assert_eq!(bob.ask("join red").await, "joined red true");
    assert_eq!(cid.ask("join blue").await, "joined blue true");
    // Subscriptions follow joins asynchronously: publish until bob sees one.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "red never reached node b"
        );
        a.hub.publish("red", "probe");
        assert_eq!(ann.next().await, "probe");
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(100), bob.ws.next()).await
        {
            assert_eq!(t.as_str(), "probe");
            break;
        }
    }
    // Drain late probes.
    while let Ok(Some(Ok(_))) =
        tokio::time::timeout(Duration::from_millis(200), bob.ws.next()).await
    {}

    // In order, exactly once on each node, and not to other topics.
    for i in 0..20 {
        ann.say(&format!("pub red m{i}")).await;
    }
    for i in 0..20 {
        assert_eq!(ann.next().await, format!("m{i}"));
        assert_eq!(ann.next().await, "sent 1");
        assert_eq!(bob.next().await, format!("m{i}"));
    }
    assert_eq!(bob.ask("all to everyone").await, "to everyone");
    assert_eq!(bob.next().await, "sent 2");
    assert_eq!(cid.next().await, "to everyone");
    assert_eq!(ann.next().await, "to everyone");
    ann.quiet(Duration::from_millis(200)).await;
    cid.quiet(Duration::from_millis(10)).await;
}

/// Redis unreachable: publishing still reaches this node's members, nothing fails, and the
/// hub says it is not connected. Needs only the `redis` feature.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_down_degrades_to_local_delivery() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let hub = Broadcast::redis(&format!("redis://127.0.0.1:{port}/")).expect("valid url");
    let node = node(hub).await;
    let mut ann = Client::connect(&node).await;
    let mut bob = Client::connect(&node).await;
    assert_eq!(ann.ask("join red").await, "joined red true");
    assert_eq!(bob.ask("join red").await, "joined red true");
    for i in 0..50 {
        ann.say(&format!("pub red m{i}")).await;
    }
    for i in 0..50 {
        assert_eq!(ann.next().await, format!("m{i}"));
        assert_eq!(ann.next().await, "sent 2");
        assert_eq!(bob.next().await, format!("m{i}"));
    }
    assert!(!node.hub.is_connected());
    assert!(Broadcast::redis("not a url").is_err());
}
