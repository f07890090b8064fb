//! The broadcast hub with real sessions, on both adapters: topics, publishing to a topic and
//! to all, leaving, cleanup when sessions end, a custom backend; and the Redis backend
//! (`redis_*`): nodes on either adapter sharing topics through a real Redis, an outage and
//! the recovery after it, and Redis unreachable.
//!
//! The Redis tests start their own `redis-server` on a free loopback port; without the
//! binary they print why and pass, unless `SOCKJS_REQUIRE_REDIS=1` (deploy/test-cluster.sh
//! sets it) makes that a failure. `redis_down_degrades_to_local_delivery` needs no server.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockjs_core::Options;
use sockjs_core::driver::Config;
use sockjs_core::driver::broadcast::{Backend, Broadcast, Inbox, Target};
use support::{ADAPTERS, Adapter, Mount, handler, start_services};
use tungstenite::{Message, WebSocket};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A node: a SockJS service at `/hub` whose sessions obey a tiny command language.
/// `join T`, `leave T` (answered `joined T true|false` / `left T true|false`), `pub T TEXT`
/// and `all TEXT` (answered `sent N` with the local delivery count), `topics`.
struct Node {
    target: support::Target,
    hub: Broadcast,
    /// The runtime a tokio hub's Redis tasks run on.
    _runtime: Option<tokio::runtime::Runtime>,
}

fn node(adapter: Adapter, hub: Broadcast) -> Node {
    node_with(adapter, hub, None)
}

fn node_with(adapter: Adapter, hub: Broadcast, runtime: Option<tokio::runtime::Runtime>) -> Node {
    let handler_hub = hub.clone();
    let service = handler(move |mut session| {
        let hub = handler_hub.clone();
        async move {
            let member = hub.member(session.sender());
            let _ = session.send("ready").await;
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
                let _ = session.send(reply).await;
            }
        }
    });
    let mount = Mount::new("/hub", Options::default(), service);
    let target = start_services(adapter, Config::default(), vec![mount]);
    Node {
        target,
        hub,
        _runtime: runtime,
    }
}

/// A raw WebSocket session on a node (`/hub/websocket`).
struct Client {
    ws: WebSocket<Restarting>,
}

/// A socket whose reads and writes go on after a signal. Reads on a socket with a timeout
/// fail with `EINTR` when any signal handler runs, even one installed with `SA_RESTART`,
/// and these tests start and stop `redis-server` children (`SIGCHLD`) while others read.
struct Restarting(TcpStream);

impl std::io::Read for Restarting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }
}

impl std::io::Write for Restarting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Client {
    /// Connects, once the server said `ready`.
    fn connect(node: &Node) -> Client {
        Client::connect_to(node.target.addr)
    }

    fn connect_to(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let url = format!("ws://{addr}/hub/websocket");
        let (ws, _) = tungstenite::client(url.as_str(), Restarting(stream)).expect("handshake");
        let mut client = Client { ws };
        assert_eq!(client.next(), "ready");
        client
    }

    fn next(&mut self) -> String {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => return text.as_str().to_owned(),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next message if one arrives within `wait`.
    fn within(&mut self, wait: Duration) -> Option<String> {
        self.ws.get_ref().0.set_read_timeout(Some(wait)).unwrap();
        let message = loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => break Some(text.as_str().to_owned()),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break None;
                }
                other => panic!("expected a text message or nothing, got {other:?}"),
            }
        };
        self.ws.get_ref().0.set_read_timeout(Some(TIMEOUT)).unwrap();
        message
    }

    /// Nothing arrives for a while.
    fn quiet(&mut self, wait: Duration) {
        if let Some(message) = self.within(wait) {
            panic!("expected nothing, got {message:?}");
        }
    }

    fn say(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    fn ask(&mut self, text: &str) -> String {
        self.say(text);
        self.next()
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `speaker` publishes `count` messages to red in a row: each comes back to it followed by
/// `sent N` (the delivery count on its node), and reaches `listener` in order.
fn in_order(speaker: &mut Client, count: usize, sent: usize, listener: &mut Client) {
    for i in 0..count {
        speaker.say(&format!("pub red m{i}"));
    }
    for i in 0..count {
        assert_eq!(speaker.next(), format!("m{i}"));
        assert_eq!(speaker.next(), format!("sent {sent}"));
        assert_eq!(listener.next(), format!("m{i}"));
    }
}

/// Runs `check` on each adapter: a fresh node on `hub()` and `N` sessions on it.
fn on_each_adapter<const N: usize>(hub: fn() -> Broadcast, check: impl Fn(&Node, [Client; N])) {
    for adapter in ADAPTERS {
        println!("{adapter:?}");
        let node = node(adapter, hub());
        check(&node, std::array::from_fn(|_| Client::connect(&node)));
    }
}

#[test]
fn topics_reach_their_members_only_in_order() {
    on_each_adapter(Broadcast::new, |node, [mut ann, mut bob, mut cid]| {
        assert_eq!(ann.ask("join red"), "joined red true");
        assert_eq!(ann.ask("join red"), "joined red false");
        assert_eq!(bob.ask("join red"), "joined red true");
        assert_eq!(cid.ask("join blue"), "joined blue true");
        assert_eq!(node.hub.topic_len("red"), 2);
        assert_eq!(node.hub.topic_len("blue"), 1);
        assert_eq!(node.hub.len(), 3);

        // Ten messages from ann to red: ann and bob get all of them in order, cid none.
        in_order(&mut ann, 10, 2, &mut bob);
        cid.quiet(Duration::from_millis(100));

        // A topic nobody is in.
        assert_eq!(cid.ask("pub green hello"), "sent 0");
        // From outside any session.
        assert_eq!(node.hub.publish("blue", "from the server"), 1);
        assert_eq!(cid.next(), "from the server");
    });
}

#[test]
fn publish_all_reaches_every_member_even_without_topics() {
    on_each_adapter(Broadcast::new, |_, [mut ann, mut bob]| {
        assert_eq!(ann.ask("join red"), "joined red true");
        bob.say("all hello everyone");
        assert_eq!(ann.next(), "hello everyone");
        assert_eq!(bob.next(), "hello everyone");
        assert_eq!(bob.next(), "sent 2");
    });
}

#[test]
fn leaving_and_ending_sessions_stop_delivery_and_forget_topics() {
    on_each_adapter(Broadcast::new, |node, [mut ann, mut bob]| {
        assert_eq!(ann.ask("join red"), "joined red true");
        assert_eq!(ann.ask("join blue"), "joined blue true");
        assert_eq!(bob.ask("join red"), "joined red true");
        assert_eq!(ann.ask("topics"), "topics blue,red");

        assert_eq!(ann.ask("leave red"), "left red true");
        assert_eq!(ann.ask("leave red"), "left red false");
        assert_eq!(bob.ask("pub red only bob"), "only bob");
        assert_eq!(bob.next(), "sent 1");
        ann.quiet(Duration::from_millis(100));

        // ann hangs up: once its session ends, the handler returns, the Member drops, and
        // blue (ann's last topic) is forgotten.
        drop(ann);
        eventually("ann's member is dropped", || node.hub.len() == 1);
        assert_eq!(node.hub.topic_len("blue"), 0);
        assert_eq!(node.hub.topics(), ["red"]);
        assert_eq!(node.hub.publish_all("still here?"), 1);
        assert_eq!(bob.next(), "still here?");
    });
}

/// A backend that records what the hub asked of it.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    inbox: Arc<Mutex<Option<Inbox>>>,
}

impl Recorder {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn inbox(&self) -> Inbox {
        self.inbox.lock().unwrap().clone().expect("started")
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

impl Backend for Recorder {
    fn start(&self, inbox: Inbox) {
        *self.inbox.lock().unwrap() = Some(inbox);
    }
    fn publish(&self, target: Target<'_>, text: &str) {
        self.note(format!("publish {target:?} {text}"));
    }
    fn subscribe(&self, topic: &str) {
        self.note(format!("subscribe {topic}"));
    }
    fn unsubscribe(&self, topic: &str) {
        self.note(format!("unsubscribe {topic}"));
    }
}

#[test]
fn a_backend_sees_first_joins_last_leaves_and_publishes_and_delivers_from_other_nodes() {
    for adapter in ADAPTERS {
        println!("{adapter:?}");
        let recorder = Recorder::default();
        let node = node(adapter, Broadcast::with_backend(recorder.clone()));
        let mut ann = Client::connect(&node);
        let mut bob = Client::connect(&node);
        assert_eq!(ann.ask("join red"), "joined red true");
        assert_eq!(bob.ask("join red"), "joined red true");
        assert_eq!(ann.ask("pub red hi"), "hi");
        assert_eq!(ann.next(), "sent 2");
        assert_eq!(bob.next(), "hi");
        assert_eq!(bob.ask("all everyone"), "everyone");
        assert_eq!(bob.next(), "sent 2");
        assert_eq!(ann.next(), "everyone");
        assert_eq!(ann.ask("leave red"), "left red true");
        assert_eq!(bob.ask("leave red"), "left red true");
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
        assert_eq!(ann.ask("join blue"), "joined blue true");
        assert_eq!(inbox.topics(), ["blue"]);
        assert_eq!(inbox.deliver(Target::Topic("blue"), "remote"), 1);
        assert_eq!(ann.next(), "remote");
        assert_eq!(inbox.deliver(Target::All, "remote all"), 2);
        assert_eq!(ann.next(), "remote all");
        assert_eq!(bob.next(), "remote all");
        assert_eq!(recorder.log().len(), 5, "{:?}", recorder.log());
    }
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

// ---------------------------------------------------------------------------------------
// Redis.

/// A `redis-server` of the test's own on a free loopback port; killed when dropped.
struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Extra arguments for `redis-server`.
    args: Vec<String>,
}

impl RedisServer {
    /// Starts one, or says why not (no binary) and returns `None`; with
    /// `SOCKJS_REQUIRE_REDIS=1` a missing binary fails the test instead.
    fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// As [`start`](RedisServer::start), with extra `redis-server` arguments.
    fn start_with(args: &[&str]) -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let args = args.iter().map(|a| a.to_string()).collect();
        let mut server = RedisServer {
            port,
            child: None,
            args,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let reason = "no redis-server binary on PATH (apt-get install redis-server)";
                assert!(
                    std::env::var("SOCKJS_REQUIRE_REDIS").as_deref() != Ok("1"),
                    "SOCKJS_REQUIRE_REDIS=1 but {reason}"
                );
                println!("skipping the Redis part: {reason}");
                None
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        }
    }

    /// (Re)starts the server on its port and waits until it accepts connections.
    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A channel prefix of the test's own, so that runs sharing a Redis do not meet.
fn unique_prefix(name: &str) -> String {
    format!(
        "sockjs-test-{name}-{}-{:?}:",
        std::process::id(),
        Instant::now()
    )
}

/// A node on `adapter` whose hub shares topics through Redis at `url` under `prefix`:
/// the adapter's own `broadcast::redis_backend`.
fn redis_node(adapter: Adapter, url: &str, prefix: &str) -> Node {
    match adapter {
        Adapter::Smol => {
            let backend = sockjs_smol::broadcast::redis_backend(url)
                .unwrap()
                .channel_prefix(prefix);
            node(adapter, Broadcast::with_backend(backend))
        }
        Adapter::Tokio => {
            // The tokio backend's tasks are spawned on the runtime it is started in.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let hub = {
                let _inside = runtime.enter();
                let backend = sockjs_tokio::broadcast::redis_backend(url)
                    .unwrap()
                    .channel_prefix(prefix);
                Broadcast::with_backend(backend)
            };
            node_with(adapter, hub, Some(runtime))
        }
    }
}

/// Publishes `probe` to `topic` from `from` until `to` hears it (subscriptions follow
/// joins asynchronously, and reconnect with backoff), then lets late probes drain.
fn until_heard(from: &Node, speaker: &mut Client, topic: &str, to: &mut Client) -> Duration {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < 2 * TIMEOUT,
            "{topic} never reached the other node"
        );
        from.hub.publish(topic, "probe");
        assert_eq!(speaker.next(), "probe");
        if let Some(heard) = to.within(Duration::from_millis(100)) {
            assert_eq!(heard, "probe");
            break;
        }
    }
    let took = start.elapsed();
    while to.within(Duration::from_millis(200)).is_some() {}
    while speaker.within(Duration::from_millis(10)).is_some() {}
    took
}

/// Takes the probes that other members heard.
fn drain<const N: usize>(clients: [&mut Client; N]) {
    for client in clients {
        while client.within(Duration::from_millis(50)).is_some() {}
    }
}

#[test]
fn redis_carries_topics_between_nodes_on_either_adapter() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let pairs = [
        (Adapter::Smol, Adapter::Smol),
        (Adapter::Tokio, Adapter::Tokio),
        (Adapter::Smol, Adapter::Tokio),
        (Adapter::Tokio, Adapter::Smol),
    ];
    for (on_a, on_b) in pairs {
        println!("node a on {on_a:?}, node b on {on_b:?}");
        let prefix = unique_prefix("carry");
        let a = redis_node(on_a, &redis.url(), &prefix);
        let b = redis_node(on_b, &redis.url(), &prefix);
        // A node under another prefix: it shares the Redis, not the topics.
        let elsewhere = redis_node(on_b, &redis.url(), &unique_prefix("elsewhere"));
        eventually("every node connected to redis", || {
            a.hub.is_connected() && b.hub.is_connected() && elsewhere.hub.is_connected()
        });

        let mut ann = Client::connect(&a);
        let mut bob = Client::connect(&b);
        let mut cid = Client::connect(&b);
        let mut eve = Client::connect(&elsewhere);
        assert_eq!(ann.ask("join red"), "joined red true");
        assert_eq!(bob.ask("join red"), "joined red true");
        assert_eq!(cid.ask("join blue"), "joined blue true");
        assert_eq!(eve.ask("join red"), "joined red true");
        until_heard(&a, &mut ann, "red", &mut bob);

        // In order, exactly once on each node (a node skips its own messages), and not to
        // other topics or prefixes.
        in_order(&mut ann, 20, 1, &mut bob);
        assert_eq!(bob.ask("all to everyone"), "to everyone");
        assert_eq!(bob.next(), "sent 2");
        assert_eq!(cid.next(), "to everyone");
        assert_eq!(ann.next(), "to everyone");
        ann.quiet(Duration::from_millis(200));
        cid.quiet(Duration::from_millis(10));
        eve.quiet(Duration::from_millis(10));

        // Leaving unsubscribes: bob's node no longer gets red.
        assert_eq!(bob.ask("leave red"), "left red true");
        eventually("node b unsubscribed from red", || {
            b.hub.topic_len("red") == 0
        });
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(ann.ask("pub red after bob left"), "after bob left");
        assert_eq!(ann.next(), "sent 1");
        bob.quiet(Duration::from_millis(200));
    }
}

#[test]
fn redis_outage_degrades_to_local_delivery_and_recovers_on_either_adapter() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let prefix = unique_prefix("outage");
    let a = redis_node(Adapter::Smol, &redis.url(), &prefix);
    let b = redis_node(Adapter::Tokio, &redis.url(), &prefix);
    eventually("both nodes connected to redis", || {
        a.hub.is_connected() && b.hub.is_connected()
    });
    let mut ann = Client::connect(&a);
    let mut ada = Client::connect(&a);
    let mut bob = Client::connect(&b);
    let mut ben = Client::connect(&b);
    for client in [&mut ann, &mut ada, &mut bob, &mut ben] {
        assert_eq!(client.ask("join red"), "joined red true");
    }
    until_heard(&a, &mut ann, "red", &mut bob);
    drain([&mut ada, &mut ben]);

    redis.stop();
    eventually("both nodes noticed the outage", || {
        !a.hub.is_connected() && !b.hub.is_connected()
    });
    // Each node still reaches its own members, and publishing never fails or waits.
    let local_only = |node: &Node, members: [&mut Client; 2], elsewhere: &mut Client| {
        let started = Instant::now();
        assert_eq!(node.hub.publish("red", "while down"), 2);
        assert!(started.elapsed() < Duration::from_millis(500));
        for member in members {
            assert_eq!(member.next(), "while down");
        }
        elsewhere.quiet(Duration::from_millis(300));
    };
    local_only(&a, [&mut ann, &mut ada], &mut bob);
    local_only(&b, [&mut bob, &mut ben], &mut ada);

    redis.spawn().unwrap();
    eventually("both nodes reconnected", || {
        a.hub.is_connected() && b.hub.is_connected()
    });
    // Both ways again, resubscribed to red.
    let back = until_heard(&a, &mut ann, "red", &mut bob);
    until_heard(&b, &mut ben, "red", &mut ada);
    drain([&mut ann, &mut ada, &mut bob, &mut ben]);
    println!("cross-node delivery back {back:?} after both reconnected");
    assert_eq!(ann.ask("pub red everyone again"), "everyone again");
    assert_eq!(ann.next(), "sent 2");
    for client in [&mut ada, &mut bob, &mut ben] {
        assert_eq!(client.next(), "everyone again");
    }
}

/// Connections the server has accepted so far (`INFO stats`), asked with `password`.
fn redis_connections(redis: &RedisServer, password: &str) -> u64 {
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let command = format!(
        "*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n",
        password.len()
    );
    std::io::Write::write_all(&mut stream, command.as_bytes()).unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    while !answer.contains("total_connections_received:") || !answer.ends_with("\r\n") {
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        assert!(n > 0, "redis closed: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    answer
        .lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// A Redis that takes connections but refuses every command (it wants a password the URL
/// does not give) is retried with backoff, not reconnected to for every publish.
#[test]
fn redis_that_refuses_commands_is_retried_with_backoff_on_either_adapter() {
    let Some(redis) = RedisServer::start_with(&["--requirepass", "secret"]) else {
        return;
    };
    for adapter in ADAPTERS {
        let before = redis_connections(&redis, "secret");
        let node = redis_node(adapter, &redis.url(), &unique_prefix("refused"));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            node.hub.publish("red", "nobody hears this");
            assert!(!node.hub.is_connected(), "{adapter:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(node);
        // Two connections (publishing, subscribing), each retried after 0.1, 0.2, 0.4,
        // 0.8 s (with jitter): about ten in two seconds; one per publish would be hundreds.
        let made = redis_connections(&redis, "secret") - before - 1;
        println!("{adapter:?}: {made} connections in 2 s");
        assert!(made <= 20, "{adapter:?}: {made} connections in 2 s");
    }
}

/// A Redis whose ACL forbids subscribing (the publishing connection works) is not counted
/// as connected: the subscribing connection's refused SUBSCRIBE, which the redis crate
/// reports as taken, is seen and retried with backoff, so `is_connected` stays false
/// instead of reporting a node that never hears the others.
#[test]
fn redis_refusing_the_subscription_is_not_connected_on_either_adapter() {
    let Some(redis) = redis_with_acl(&["&*", "+@all", "-subscribe"]) else {
        return;
    };
    for adapter in ADAPTERS {
        let node = redis_node(adapter, &redis.url(), &unique_prefix("nosub"));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            assert!(!node.hub.is_connected(), "{adapter:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Two nodes of `adapter` sharing `redis`, once both are connected to it, and a client of
/// each (Ann on the first, Bob on the second).
fn two_connected_nodes(
    adapter: Adapter,
    redis: &RedisServer,
    prefix: &str,
) -> (Node, Node, Client, Client) {
    let a = redis_node(adapter, &redis.url(), prefix);
    let b = redis_node(adapter, &redis.url(), prefix);
    eventually("both nodes connected to redis", || {
        a.hub.is_connected() && b.hub.is_connected()
    });
    let (ann, bob) = (Client::connect(&a), Client::connect(&b));
    (a, b, ann, bob)
}

/// A Redis whose ACL lets clients use only two channels of `prefix`: the `all` channel
/// and topic `ok`'s.
fn redis_allowing_only_all_and_ok(prefix: &str) -> Option<RedisServer> {
    let (all, ok) = (format!("&{prefix}all"), format!("&{prefix}t:ok"));
    redis_with_acl(&["resetchannels", &all, &ok, "+@all"])
}

/// A Redis whose default user (no password, every key) has these further ACL rules.
fn redis_with_acl(rules: &[&str]) -> Option<RedisServer> {
    let mut args = vec!["--user", "default", "on", "nopass", "~*"];
    args.extend_from_slice(rules);
    RedisServer::start_with(&args)
}

/// A publication the server refuses (here an ACL that allows only some channels) is lost
/// alone, and counted: the connection goes on serving, so the ones around it arrive, in
/// order.
#[test]
fn redis_refusing_a_publication_loses_only_that_one_on_either_adapter() {
    let prefix = format!("sockjs-acl-{}:", std::process::id());
    let Some(redis) = redis_allowing_only_all_and_ok(&prefix) else {
        return;
    };
    for adapter in ADAPTERS {
        let (a, b, mut ann, mut bob) = two_connected_nodes(adapter, &redis, &prefix);
        assert_eq!(ann.ask("join ok"), "joined ok true");
        assert_eq!(bob.ask("join ok"), "joined ok true");
        until_heard(&a, &mut ann, "ok", &mut bob);
        let before = a.hub.dropped();
        for i in 0..20 {
            a.hub.publish("forbidden", "refused");
            a.hub.publish("ok", &format!("m{i}"));
        }
        for i in 0..20 {
            assert_eq!(bob.next(), format!("m{i}"), "{adapter:?}");
        }
        eventually("the refusals counted", || a.hub.dropped() - before == 20);
        assert!(a.hub.is_connected(), "{adapter:?}");
        assert_eq!(b.hub.dropped(), 0, "{adapter:?}");
    }
}

/// A subscription the server refuses (the same ACL) costs that topic's messages from other
/// nodes and nothing more, after a reconnection too, where the node subscribes to all its
/// topics at once: before, they went in one command, which the server refused whole (and
/// the redis crate reported as done), so the allowed topic was lost with the forbidden one.
#[test]
fn redis_refusing_a_subscription_loses_only_that_topic_on_either_adapter() {
    let prefix = format!("sockjs-acl-sub-{}:", std::process::id());
    let Some(mut redis) = redis_allowing_only_all_and_ok(&prefix) else {
        return;
    };
    for adapter in ADAPTERS {
        let (a, b, mut ann, mut bob) = two_connected_nodes(adapter, &redis, &prefix);
        assert_eq!(bob.ask("join forbidden"), "joined forbidden true");
        assert_eq!(bob.ask("join ok"), "joined ok true");
        assert_eq!(ann.ask("join ok"), "joined ok true");
        until_heard(&a, &mut ann, "ok", &mut bob);
        // Redis restarts: both nodes reconnect and subscribe again to what they have.
        redis.stop();
        eventually("both nodes noticed", || {
            !a.hub.is_connected() && !b.hub.is_connected()
        });
        redis.spawn().expect("redis restarted");
        eventually("both nodes connected again", || {
            a.hub.is_connected() && b.hub.is_connected()
        });
        until_heard(&a, &mut ann, "ok", &mut bob);
        for i in 0..20 {
            a.hub.publish("ok", &format!("m{i}"));
        }
        for i in 0..20 {
            assert_eq!(bob.next(), format!("m{i}"), "{adapter:?}");
        }
        assert!(b.hub.is_connected(), "{adapter:?}");
        drop(ann);
        drop(bob);
    }
}

/// Every command a Redis server runs, as its `MONITOR` shows them (one line each: a
/// timestamp, the client, and the command's words, each quoted), gathered by a thread.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    fn start(redis: &RedisServer) -> Monitor {
        use std::io::{BufRead, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = std::io::BufReader::new(Restarting(stream));
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                seen.lock().unwrap().push(line);
            }
        });
        Monitor { lines }
    }

    /// The words of each `verb` command run so far that names a channel under `prefix`.
    fn commands(&self, verb: &str, prefix: &str) -> Vec<Vec<String>> {
        let verb = format!("\"{verb}\"");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| {
                let words: Vec<String> = line
                    .split_once("] ")?
                    .1
                    .split(' ')
                    .map(str::to_owned)
                    .collect();
                let named = words.iter().any(|w| w.contains(prefix));
                (words.first()?.eq_ignore_ascii_case(&verb) && named).then_some(words)
            })
            .collect()
    }
}

/// Redis answers an UNSUBSCRIBE of several channels with one reply a channel, and the
/// redis crate takes each reply as the answer to one waiting command: the backend
/// unsubscribes one channel a command, as it subscribes, so that no extra reply answers
/// the next command (a SUBSCRIBE, the liveness ping) before its own answer comes. Seen
/// through `MONITOR`: a session in two topics ends, so both are left at once, and each
/// channel gets an UNSUBSCRIBE of its own, on either adapter.
#[test]
fn redis_unsubscribes_one_channel_a_command_on_either_adapter() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let monitor = Monitor::start(&redis);
    for adapter in ADAPTERS {
        // No spaces: MONITOR's words are split at them.
        let prefix = format!("sockjs-unsub-{}-{adapter:?}:", std::process::id());
        let node = redis_node(adapter, &redis.url(), &prefix);
        let mut client = Client::connect(&node);
        assert_eq!(client.ask("join one"), "joined one true");
        assert_eq!(client.ask("join two"), "joined two true");
        let subscribed = |topic: &str| {
            let channel = format!("\"{prefix}t:{topic}\"");
            let commands = monitor.commands("SUBSCRIBE", &prefix);
            commands.iter().any(|words| words.contains(&channel))
        };
        eventually("both topics subscribed", || {
            subscribed("one") && subscribed("two")
        });
        drop(client);
        let unsubscribed = || {
            let mut channels: Vec<String> = monitor
                .commands("UNSUBSCRIBE", &prefix)
                .into_iter()
                .flat_map(|words| words.into_iter().skip(1))
                .collect();
            channels.sort();
            channels
        };
        eventually("both topics unsubscribed", || unsubscribed().len() >= 2);
        assert_eq!(
            unsubscribed(),
            [format!("\"{prefix}t:one\""), format!("\"{prefix}t:two\"")],
            "{adapter:?}"
        );
        for words in monitor.commands("UNSUBSCRIBE", &prefix) {
            assert_eq!(
                words.len(),
                2,
                "{adapter:?}: one channel a command: {words:?}"
            );
        }
        assert!(node.hub.is_connected(), "{adapter:?}");
    }
}

/// Redis unreachable: publishing still reaches this node's members, nothing fails, and the
/// hub says it is not connected. Needs no Redis.
#[test]
fn redis_down_degrades_to_local_delivery() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    // Outside any tokio runtime the tokio backend's tasks would have nowhere to run: an
    // error, not a hub that stays on this node alone without saying so.
    let outside = sockjs_tokio::broadcast::redis(&url);
    assert!(
        outside
            .as_ref()
            .is_err_and(|e| e.to_string().contains("tokio runtime")),
        "{:?}",
        outside.map(|hub| hub.is_connected())
    );
    for adapter in ADAPTERS {
        println!("{adapter:?}");
        let node = match adapter {
            Adapter::Smol => {
                assert!(sockjs_smol::broadcast::redis("not a url").is_err());
                node(adapter, sockjs_smol::broadcast::redis(&url).unwrap())
            }
            Adapter::Tokio => {
                assert!(sockjs_tokio::broadcast::redis("not a url").is_err());
                let runtime = tokio::runtime::Runtime::new().unwrap();
                let hub = runtime.block_on(async { sockjs_tokio::broadcast::redis(&url) });
                node_with(adapter, hub.unwrap(), Some(runtime))
            }
        };
        let mut ann = Client::connect(&node);
        let mut bob = Client::connect(&node);
        assert_eq!(ann.ask("join red"), "joined red true");
        assert_eq!(bob.ask("join red"), "joined red true");
        in_order(&mut ann, 50, 2, &mut bob);
        assert!(!node.hub.is_connected());
    }
}
