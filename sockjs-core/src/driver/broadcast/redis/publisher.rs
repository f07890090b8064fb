//! The publishing connection's task.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use super::retry::*;
use super::*;
use crate::driver::Runtime;
use crate::driver::runtime::later;

/// The publishing connection's task.
pub(super) struct Publisher {
    pub(super) client: Client,
    pub(super) shared: Arc<Shared>,
    pub(super) runtime: Arc<dyn Runtime>,
    pub(super) seed: u64,
}

impl Publisher {
    pub(super) async fn run(self) {
        let shared = &*self.shared;
        // The timeouts are the clock's, on the driver's runtime.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let mut clock = Clock::new(self.runtime.clone());
        let mut backoff = Backoff::new(self.seed);
        let mut outage = Outage::new(PUBLISH);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let connect = self
                .client
                .get_multiplexed_async_connection_with_config(&config);
            let connected = async {
                let mut connection = clock
                    .within(shared, Role::Publisher, CONNECT_TIMEOUT, connect)
                    .await?;
                // A server that takes the connection but refuses its commands (a password
                // or an ACL it wants) fails here, not at every publish.
                let ping = redis::cmd("PING");
                let pong = ping.query_async::<redis::Value>(&mut connection);
                clock
                    .within(shared, Role::Publisher, RESPONSE_TIMEOUT, pong)
                    .await?;
                Ok(connection)
            };
            let mut connection = match connected.await {
                Ok(connection) => connection,
                Err(Lost::Stopped) => return,
                Err(error) => {
                    outage.down(clock.now(), shared, &shared.publisher_up, &error);
                    if !self.wait_dropping(&mut clock, backoff.next_delay()).await {
                        return;
                    }
                    continue;
                }
            };
            outage.up(clock.now(), shared, &shared.publisher_up);
            let (lost, worked) = self.serve(&mut clock, &mut connection, &mut batch).await;
            if let Lost::Stopped = lost {
                return;
            }
            outage.down(clock.now(), shared, &shared.publisher_up, &lost);
            // A connection that served is retried soon (the backoff's first, jittered
            // delay, so that nodes losing one Redis together do not come back at one
            // instant); one that failed its first command waits as a failed connect does.
            if worked {
                backoff.reset();
            }
            if !self.wait_dropping(&mut clock, backoff.next_delay()).await {
                return;
            }
        }
    }

    /// Waits `delay` before the next attempt, dropping what is queued meanwhile (it reached
    /// this node only). `false` if the backend was dropped.
    pub(super) async fn wait_dropping(&self, clock: &mut Clock, delay: Duration) -> bool {
        let shared = &*self.shared;
        let deadline = later(clock.now(), delay);
        clock.timer.as_mut().reset(deadline);
        let timer = &mut clock.timer;
        let mut discard = Vec::new();
        poll_fn(|cx| {
            loop {
                match shared.poll_outbox(cx, &mut discard, usize::MAX) {
                    Poll::Ready(None) => return Poll::Ready(false),
                    Poll::Ready(Some(n)) => {
                        shared.lost(n);
                        discard.clear();
                    }
                    Poll::Pending => break,
                }
            }
            timer.as_mut().poll(cx).map(|()| true)
        })
        .await
    }

    /// Publishes batches as they come, pinging an idle connection, until it fails; and
    /// whether any command went through before that.
    pub(super) async fn serve(
        &self,
        clock: &mut Clock,
        connection: &mut MultiplexedConnection,
        batch: &mut Vec<Outgoing>,
    ) -> (Lost, bool) {
        let mut worked = false;
        let shared = &*self.shared;
        let mut ping = self.runtime.timer(clock.now() + PING_EVERY);
        loop {
            enum Wake {
                Batch,
                Ping,
                Stopped,
            }
            batch.clear();
            let wake = poll_fn(|cx| match shared.poll_outbox(cx, batch, BATCH) {
                Poll::Ready(Some(_)) => Poll::Ready(Wake::Batch),
                Poll::Ready(None) => Poll::Ready(Wake::Stopped),
                // An idle connection that died is noticed before the next message is lost.
                Poll::Pending => ping.as_mut().poll(cx).map(|()| Wake::Ping),
            })
            .await;
            let result = match wake {
                Wake::Stopped => return (Lost::Stopped, worked),
                Wake::Ping => {
                    let command = redis::cmd("PING");
                    let ping = command.query_async::<redis::Value>(connection);
                    clock
                        .within(shared, Role::Publisher, RESPONSE_TIMEOUT, ping)
                        .await
                        .map(drop)
                }
                Wake::Batch => {
                    // Each PUBLISH answered on its own: one the server refuses (a channel
                    // an ACL forbids) is lost alone, on a connection that goes on serving.
                    let mut pipe = redis::pipe();
                    pipe.ignore_errors();
                    for message in batch.iter() {
                        pipe.cmd("PUBLISH")
                            .arg(&message.channel)
                            .arg(&message.payload);
                    }
                    let sent =
                        pipe.query_async::<Vec<redis::RedisResult<redis::Value>>>(connection);
                    let result = clock
                        .within(shared, Role::Publisher, RESPONSE_TIMEOUT, sent)
                        .await;
                    match &result {
                        Err(_) => shared.lost(batch.len()),
                        Ok(answers) => refused(shared, batch, answers),
                    }
                    result.map(drop)
                }
            };
            if let Err(lost) = result {
                return (lost, worked);
            }
            worked = true;
            ping.as_mut().reset(clock.now() + PING_EVERY);
        }
    }
}

/// Counts and logs the publications of `batch` the server refused (`answers`, one each).
fn refused(shared: &Shared, batch: &[Outgoing], answers: &[redis::RedisResult<redis::Value>]) {
    let mut failed = answers
        .iter()
        .zip(batch)
        .filter_map(|(answer, message)| answer.as_ref().err().map(|error| (error, message)));
    let Some((error, message)) = failed.next() else {
        return;
    };
    let count = 1 + failed.count();
    shared.lost(count);
    tracing::warn!(
        %error,
        channel = %message.channel,
        count,
        "redis refused publications: dropped"
    );
}
