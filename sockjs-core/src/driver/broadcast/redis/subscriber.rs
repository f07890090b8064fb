//! The subscribing connection's task.

use std::collections::HashSet;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Client, Msg, RedisResult};

use super::connect;
use super::meter::Meter;
use super::retry::*;
use super::*;
use crate::driver::Runtime;
use crate::driver::runtime::yield_now;

/// Messages delivered before the task lets others run.
const DELIVER_BEFORE_YIELD: u32 = 64;
/// Most messages delivered before a change of topics is looked at, and (each change costing
/// a round trip) at least as many between two changes: neither starves the other.
const DELIVER_BETWEEN_SYNCS: u32 = 64;

/// The subscribing connection's task.
pub(super) struct Subscriber {
    pub(super) client: Client,
    pub(super) shared: Arc<Shared>,
    pub(super) runtime: Arc<dyn Runtime>,
    pub(super) inbox: Inbox,
    pub(super) prefix: String,
    pub(super) origin: u64,
}

impl Subscriber {
    pub(super) async fn run(self) {
        // Timers are made on the task, inside the runtime (tokio's need one).
        let mut clock = Clock::new(self.runtime.clone());
        let mut backoff = Backoff::new(self.origin.rotate_left(32));
        let mut outage = Outage::new(SUBSCRIBE);
        while self.inbox.is_alive() {
            let lost = self.session(&mut clock, &mut backoff, &mut outage).await;
            if let Lost::Stopped = lost {
                return;
            }
            let shared = &*self.shared;
            outage.down(clock.now(), shared, &shared.subscriber_up, &lost);
            let delay = backoff.next_delay();
            if !clock.pause(shared, Role::Subscriber, delay).await {
                return;
            }
        }
    }

    /// One connection: connect, subscribe, deliver until it fails.
    pub(super) async fn session(
        &self,
        clock: &mut Clock,
        backoff: &mut Backoff,
        outage: &mut Outage,
    ) -> Lost {
        let shared = &*self.shared;
        let role = Role::Subscriber;
        let meter = Arc::new(Meter::default());
        let connect = connect::pubsub(&self.client, meter.clone());
        let (mut sink, mut stream) =
            match clock.within(shared, role, CONNECT_TIMEOUT, connect).await {
                Ok(pubsub) => pubsub.split(),
                Err(lost) => return lost,
            };
        let all = channel(&self.prefix, Target::All);
        let topic_prefix = format!("{}t:", self.prefix);
        let mut inflow = Inflow {
            stream: &mut stream,
            meter: &meter,
            all: &all,
            topic_prefix: &topic_prefix,
            heard: false,
        };
        let mut subscribed = HashSet::new();
        let subscribe_all = sink.subscribe(&all);
        if let Err(lost) = self.command(clock, &mut inflow, subscribe_all).await {
            return lost;
        }
        // The redis crate reports a refused SUBSCRIBE as taken (and any error reply to
        // the pub/sub connection as a value): a ping tells whether the connection is
        // subscribed, or refused (it wants a password, an ACL forbids `all`), which is
        // retried with backoff rather than counted as up and never delivering anything.
        if let Err(lost) = self.check(clock, &mut sink, &mut inflow, true).await {
            return lost;
        }
        if let Err(lost) = self
            .sync(clock, &mut sink, &mut inflow, &mut subscribed)
            .await
        {
            return lost;
        }
        outage.up(clock.now(), shared, &shared.subscriber_up);
        let mut ping = self.runtime.timer(clock.now() + PING_EVERY);
        let mut delivered = 0u32;
        let mut since_topics = 0u32;
        loop {
            enum Wake {
                Message(Option<Msg>),
                TopicsChanged,
                Ping,
                Stopped,
            }
            let wake = poll_fn(|cx| {
                // The ping on time, busy or not: it is what resets the backoff once the
                // connection has held for a ping period, and a cluster that never pauses
                // would otherwise leave the next loss retried after the last outage's
                // longest delay.
                if ping.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Ping);
                }
                // Messages first, but a change of topics waits for no more than a few: a
                // steady churn of topics (a sync each) does not hold the cluster's
                // messages back, nor a busy cluster the new topics.
                if since_topics < DELIVER_BETWEEN_SYNCS {
                    if let Poll::Ready(message) = inflow.poll_next(cx) {
                        return Poll::Ready(Wake::Message(message));
                    }
                }
                since_topics = 0;
                if let Poll::Ready(changed) = shared.poll_topics_changed(cx) {
                    return Poll::Ready(if changed {
                        Wake::TopicsChanged
                    } else {
                        Wake::Stopped
                    });
                }
                if let Poll::Ready(message) = inflow.poll_next(cx) {
                    return Poll::Ready(Wake::Message(message));
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Message(None) => return Lost::Closed,
                Wake::Message(Some(message)) => {
                    since_topics += 1;
                    self.deliver(&message, inflow.all, inflow.topic_prefix);
                    // The client's channel may always have more (a busy cluster), and not
                    // every runtime makes a task that never waits give way.
                    delivered = delivered.wrapping_add(1);
                    if delivered % DELIVER_BEFORE_YIELD == 0 {
                        yield_now().await;
                    }
                }
                Wake::TopicsChanged => {
                    if let Err(lost) = self
                        .sync(clock, &mut sink, &mut inflow, &mut subscribed)
                        .await
                    {
                        return lost;
                    }
                }
                Wake::Ping => {
                    if let Err(lost) = self.check(clock, &mut sink, &mut inflow, false).await {
                        return lost;
                    }
                    // The connection held for a ping period: the next loss is retried from
                    // the first delay (one dropped at once after subscribing is not).
                    backoff.reset();
                    ping.as_mut().reset(clock.now() + PING_EVERY);
                }
                Wake::Stopped => return Lost::Stopped,
            }
        }
    }

    /// Pings the server: an error reply is a refusal, and so is, right after the first
    /// SUBSCRIBE (`subscribing`), a reply that shows no subscription: on RESP2 a subscribed
    /// connection answers `["pong", ""]`, an unsubscribed one `PONG` (RESP3 answers both
    /// alike: there only error replies tell).
    async fn check(
        &self,
        clock: &mut Clock,
        sink: &mut PubSubSink,
        inflow: &mut Inflow<'_>,
        subscribing: bool,
    ) -> Result<(), Lost> {
        let pong = sink.ping::<redis::Value>();
        let reply = self.command(clock, inflow, pong).await?;
        let resp2 = self
            .client
            .get_connection_info()
            .redis_settings()
            .protocol()
            == redis::ProtocolVersion::RESP2;
        match reply {
            redis::Value::ServerError(error) => Err(Lost::Refused(error.to_string())),
            redis::Value::Array(_) | redis::Value::Push { .. } => Ok(()),
            _ if subscribing && resp2 => Err(Lost::Refused(
                "SUBSCRIBE not taken (an ACL may forbid it)".to_owned(),
            )),
            _ => Ok(()),
        }
    }

    /// Delivers a message from another node to this node's members.
    pub(super) fn deliver(&self, message: &Msg, all: &str, topic_prefix: &str) {
        let name = message.get_channel_name();
        let target = if name == all {
            Target::All
        } else if let Some(topic) = name.strip_prefix(topic_prefix) {
            Target::Topic(topic)
        } else {
            return;
        };
        match decode(message.get_payload_bytes()) {
            Some((origin, _)) if origin == self.origin => {}
            Some((_, text)) => {
                self.inbox.deliver(target, text);
            }
            None => tracing::debug!(channel = name, "redis broadcast: malformed message ignored"),
        }
    }

    /// Brings the subscriptions in line with the hub's topics.
    async fn sync(
        &self,
        clock: &mut Clock,
        sink: &mut PubSubSink,
        inflow: &mut Inflow<'_>,
        subscribed: &mut HashSet<String>,
    ) -> Result<(), Lost> {
        let wanted: HashSet<String> = self
            .inbox
            .topics()
            .into_iter()
            .map(|t| channel(&self.prefix, Target::Topic(&t)))
            .collect();
        let add: Vec<String> = wanted.difference(subscribed).cloned().collect();
        // One channel a command: the server refuses a SUBSCRIBE whole when one of its
        // channels is forbidden (an ACL's `NOPERM`), and the redis crate reports that as
        // success, so the others would be lost with it, silently. Alone, a refused channel
        // costs only its own topic's messages from other nodes. (A reconnection to a node
        // with many topics takes a round trip for each.)
        for channel in add {
            let request = sink.subscribe(&channel);
            self.command(clock, inflow, request).await?;
            subscribed.insert(channel);
        }
        // One channel a command too: the server answers an UNSUBSCRIBE of several channels
        // with one reply each, and the redis crate matches each reply to one waiting
        // command, so the extra replies would complete the next commands (a SUBSCRIBE, the
        // ping that checks the connection) before their own answers came.
        let remove: Vec<String> = subscribed.difference(&wanted).cloned().collect();
        for channel in remove {
            let request = sink.unsubscribe(&channel);
            self.command(clock, inflow, request).await?;
            subscribed.remove(&channel);
        }
        Ok(())
    }

    /// A command's answer, delivering the messages that come meanwhile: the socket is read
    /// no further ahead of this task than its meter lets it, so the answer may wait behind
    /// them. It fails after the response timeout without an answer or a message (or part
    /// of one): a node busy delivering what it is sent is not cut for being behind
    /// (Redis's own limit on what it holds for a subscriber does that).
    async fn command<T>(
        &self,
        clock: &mut Clock,
        inflow: &mut Inflow<'_>,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Lost> {
        inflow.heard = false;
        let deliver = |cx: &mut Context<'_>| {
            let mut delivered = 0;
            while delivered < DELIVER_BEFORE_YIELD {
                match inflow.poll_next(cx) {
                    Poll::Ready(Some(message)) => {
                        self.deliver(&message, inflow.all, inflow.topic_prefix);
                        delivered += 1;
                    }
                    Poll::Ready(None) => return Err(Lost::Closed),
                    Poll::Pending if delivered > 0 || std::mem::take(&mut inflow.heard) => {
                        return Ok(Beside::Progress);
                    }
                    Poll::Pending => return Ok(Beside::Idle),
                }
            }
            Ok(Beside::More)
        };
        let shared = &*self.shared;
        clock
            .within_busy(shared, Role::Subscriber, RESPONSE_TIMEOUT, request, deliver)
            .await
    }
}

/// The messages of one connection, and what its task needs to deliver them.
pub(super) struct Inflow<'a> {
    stream: &'a mut PubSubStream,
    meter: &'a Meter,
    all: &'a str,
    topic_prefix: &'a str,
    /// Part of a message (one larger than the meter's bound) was read since this was last
    /// cleared: the connection is busy, not silent.
    heard: bool,
}

impl Inflow<'_> {
    /// The next message; finding none waiting, the socket may be read further
    /// ([`Meter::caught_up`]), and `heard` tells whether part of one came meanwhile.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Msg>> {
        let next = Pin::new(&mut *self.stream).poll_next(cx);
        if next.is_pending() && self.meter.caught_up(cx) {
            self.heard = true;
        }
        next
    }
}
