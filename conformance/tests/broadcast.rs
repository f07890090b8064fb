//! The in-process broadcast hub (`sockjs_core::driver::broadcast`, which both adapters
//! re-export) with real sessions over loopback sockets, against both adapters: topics,
//! publishing to a topic and to everyone, leaving, cleanup when sessions end, a custom
//! backend, and the backend's inbox.

mod support;

use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockjs_core::Options;
use sockjs_core::driver::broadcast::{Backend, Broadcast, Inbox, Target};
use sockjs_core::driver::{Config, Session};
use support::{ADAPTERS, Adapter, Mount, handler, sleep, start_services, within};
use tungstenite::{Message, WebSocket};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(5);

/// A node: a SockJS service at `/hub` whose sessions obey a tiny command language:
/// `join T`, `leave T` (answered `joined T true|false` / `left T true|false`), `pub T TEXT`
/// and `all TEXT` (answered `sent N`, the local delivery count), `topics` (answered
/// `topics A,B`), `linger` (keep the member for a while after the session ends). Each
/// handler reports `ended` once its session has ended.
struct Node {
    target: support::Target,
    hub: Broadcast,
    ended: Receiver<()>,
}

fn node(adapter: Adapter, hub: Broadcast) -> Node {
    let (tx, ended) = mpsc::channel();
    let handler_hub = hub.clone();
    let chat = handler(move |mut session: Session| {
        let (hub, tx): (Broadcast, Sender<()>) = (handler_hub.clone(), tx.clone());
        async move {
            let member = hub.member(session.sender());
            let _ = session.send("ready");
            let mut linger = false;
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
                    "linger" => {
                        linger = true;
                        "lingering".to_owned()
                    }
                    _ => "?".to_owned(),
                };
                let _ = session.send(reply);
            }
            let _ = tx.send(());
            if linger {
                // The member outlives its session for a while.
                sleep(Duration::from_secs(1)).await;
            }
            drop(member);
        }
    });
    let target = start_services(
        adapter,
        Config::default(),
        vec![Mount::new("/hub", Options::default(), chat)],
    );
    Node { target, hub, ended }
}

struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    /// A raw WebSocket session (`/hub/websocket`), once the server said `ready`.
    fn connect(node: &Node) -> Client {
        let mut client = Client {
            ws: node.target.raw_ws("/hub/websocket", &[]),
        };
        assert_eq!(client.next(), "ready");
        client
    }

    fn next(&mut self) -> String {
        support::ws_text(&mut self.ws).expect("a text message")
    }

    fn say(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    fn ask(&mut self, text: &str) -> String {
        self.say(text);
        self.next()
    }

    /// Nothing was delivered to this client since its last message: the answer to a
    /// question comes first (deliveries to a session keep their order).
    fn got_nothing(&mut self) {
        let answer = self.ask("topics");
        assert!(
            answer.starts_with("topics "),
            "expected nothing, got {answer:?}"
        );
    }

    /// Closes the WebSocket with a close handshake.
    fn leave(mut self) {
        let _ = self.ws.close(None);
        while support::ws_text(&mut self.ws).is_some() {}
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn topics_reach_their_members_only_in_order() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let node = node(adapter, Broadcast::new());
            let mut ann = Client::connect(&node);
            let mut bob = Client::connect(&node);
            let mut cid = Client::connect(&node);
            assert_eq!(ann.ask("join red"), "joined red true");
            assert_eq!(ann.ask("join red"), "joined red false");
            assert_eq!(bob.ask("join red"), "joined red true");
            assert_eq!(cid.ask("join blue"), "joined blue true");
            assert_eq!(node.hub.topic_len("red"), 2);
            assert_eq!(node.hub.topic_len("blue"), 1);
            assert_eq!(node.hub.len(), 3);

            // Ten messages from ann to red: ann and bob get all of them in order, cid none.
            for i in 0..10 {
                ann.say(&format!("pub red m{i}"));
            }
            for i in 0..10 {
                assert_eq!(ann.next(), format!("m{i}"), "{adapter:?}");
                assert_eq!(ann.next(), "sent 2");
                assert_eq!(bob.next(), format!("m{i}"), "{adapter:?}");
            }
            cid.got_nothing();
            bob.got_nothing();

            // A topic nobody is in.
            assert_eq!(cid.ask("pub green hello"), "sent 0");
            // From outside any session.
            assert_eq!(node.hub.publish("blue", "from the server"), 1);
            assert_eq!(cid.next(), "from the server");
            ann.got_nothing();
        }
    });
}

#[test]
fn publish_all_reaches_every_member_even_without_topics() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let node = node(adapter, Broadcast::new());
            let mut ann = Client::connect(&node);
            let mut bob = Client::connect(&node);
            assert_eq!(ann.ask("join red"), "joined red true");
            bob.say("all hello everyone");
            assert_eq!(ann.next(), "hello everyone", "{adapter:?}");
            assert_eq!(bob.next(), "hello everyone");
            assert_eq!(bob.next(), "sent 2");
            assert_eq!(node.hub.publish_all("from the server"), 2);
            assert_eq!(ann.next(), "from the server");
            assert_eq!(bob.next(), "from the server");
        }
    });
}

#[test]
fn leaving_and_ended_sessions_stop_delivery_and_forget_topics() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let node = node(adapter, Broadcast::new());
            let mut ann = Client::connect(&node);
            let mut bob = Client::connect(&node);
            assert_eq!(ann.ask("join red"), "joined red true");
            assert_eq!(ann.ask("join blue"), "joined blue true");
            assert_eq!(bob.ask("join red"), "joined red true");
            assert_eq!(ann.ask("topics"), "topics blue,red");

            assert_eq!(ann.ask("leave red"), "left red true");
            assert_eq!(ann.ask("leave red"), "left red false");
            assert_eq!(bob.ask("pub red only bob"), "only bob");
            assert_eq!(bob.next(), "sent 1");
            ann.got_nothing();

            // ann hangs up: once its session ends, the handler returns, the Member drops,
            // and blue (ann's last topic) is forgotten.
            ann.leave();
            node.ended.recv_timeout(WAIT).expect("ann's session ended");
            eventually("ann's member is dropped", || node.hub.len() == 1);
            assert_eq!(node.hub.topic_len("blue"), 0);
            assert_eq!(node.hub.topics(), vec!["red".to_owned()]);
            assert_eq!(node.hub.publish_all("still here?"), 1);
            assert_eq!(bob.next(), "still here?");

            // cid's member outlives its session: it stays registered but gets nothing.
            let mut cid = Client::connect(&node);
            assert_eq!(cid.ask("join red"), "joined red true");
            assert_eq!(cid.ask("linger"), "lingering");
            cid.leave();
            node.ended.recv_timeout(WAIT).expect("cid's session ended");
            assert_eq!(node.hub.topic_len("red"), 2, "{adapter:?}");
            assert_eq!(node.hub.publish("red", "who is there?"), 1);
            assert_eq!(bob.next(), "who is there?");
            eventually("cid's member is dropped", || node.hub.len() == 1);
            assert_eq!(node.hub.topic_len("red"), 1);
        }
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
        self.log.lock().expect("lock").clone()
    }

    fn inbox(&self) -> Inbox {
        self.inbox.lock().expect("lock").clone().expect("started")
    }

    fn push(&self, entry: String) {
        self.log.lock().expect("lock").push(entry);
    }
}

impl Backend for Recorder {
    fn start(&self, inbox: Inbox) {
        *self.inbox.lock().expect("lock") = Some(inbox);
    }
    fn publish(&self, target: Target<'_>, text: &str) {
        self.push(format!("publish {target:?} {text}"));
    }
    fn subscribe(&self, topic: &str) {
        self.push(format!("subscribe {topic}"));
    }
    fn unsubscribe(&self, topic: &str) {
        self.push(format!("unsubscribe {topic}"));
    }
}

#[test]
fn a_backend_sees_first_joins_last_leaves_and_publishes_and_delivers_from_other_nodes() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
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
                ],
                "{adapter:?}"
            );

            // What another node published: delivered here, not published again.
            let inbox = recorder.inbox();
            assert_eq!(ann.ask("join blue"), "joined blue true");
            assert_eq!(inbox.topics(), vec!["blue".to_owned()]);
            assert_eq!(inbox.deliver(Target::Topic("blue"), "remote"), 1);
            assert_eq!(ann.next(), "remote");
            bob.got_nothing();
            assert_eq!(inbox.deliver(Target::All, "remote all"), 2);
            assert_eq!(ann.next(), "remote all");
            assert_eq!(bob.next(), "remote all");
            assert_eq!(recorder.log().len(), 5, "{:?}", recorder.log());
            assert_eq!(recorder.log()[4], "subscribe blue");

            // The last member leaving (its session ending) unsubscribes.
            ann.leave();
            eventually("blue is unsubscribed", || {
                recorder.log().last().map(String::as_str) == Some("unsubscribe blue")
            });
        }
    });
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
