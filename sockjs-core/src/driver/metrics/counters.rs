//! The counters behind [`Metrics`](super::Metrics): plain integers in each shard's state,
//! bumped under the lock every input already holds, and relaxed atomics on a shard's own
//! cache lines for what happens outside that lock (WebSocket pumps, adapters' answers).
//!
//! Every label is an index into a fixed table, so an event costs an add: no allocation, no
//! hashing, no formatting. The tables are summed over the shards when a snapshot is taken.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{CloseReason, Transport};

use super::Endpoint;

/// Transports, in [`Transport::ALL`]'s order.
pub(crate) const TRANSPORTS: usize = Transport::ALL.len();

/// Statuses with a series of their own; any other is counted as `other`.
pub(crate) const STATUSES: [(u16, &str); 19] = [
    (101, "101"),
    (200, "200"),
    (204, "204"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (413, "413"),
    (414, "414"),
    (429, "429"),
    (431, "431"),
    (500, "500"),
    (501, "501"),
    (502, "502"),
    (503, "503"),
    (505, "505"),
];
/// [`STATUSES`] and `other`.
pub(crate) const STATUS_SLOTS: usize = STATUSES.len() + 1;

/// The label of a status slot.
pub(crate) fn status_label(slot: usize) -> &'static str {
    STATUSES.get(slot).map_or("other", |&(_, label)| label)
}

pub(crate) fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&(s, _)| s == status)
        .unwrap_or(STATUSES.len())
}

/// Why a session ended and with which close code: the `reason` and `code` labels of
/// `sockjs_sessions_closed_total`. Closes by the application (or the driver: shutdown,
/// inbound overflow) carry their code; codes outside this table are `other`. `none`: no
/// close frame carried a code the server knows of.
pub(crate) const CLOSES: [(&str, &str); 20] = [
    ("closed", "1000"),
    ("closed", "1001"),
    ("closed", "1002"),
    ("closed", "1003"),
    ("closed", "1007"),
    ("closed", "1008"),
    ("closed", "1009"),
    ("closed", "1011"),
    ("closed", "1012"),
    ("closed", "1013"),
    ("closed", "3000"),
    ("closed", "other"),
    ("timeout", "none"),
    ("client_closed", "none"),
    ("aborted", "none"),
    ("broken_framing", "3000"),
    ("message_too_big", "1009"),
    ("unsupported_data", "1003"),
    ("peer_unresponsive", "3000"),
    ("message_timeout", "1008"),
];

/// The slot of an application close code in [`CLOSES`].
const CLOSED_CODES: [u16; 11] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 3000,
];

fn close_slot(reason: &CloseReason) -> usize {
    let other = CLOSED_CODES.len();
    match reason {
        CloseReason::Closed { code, .. } => {
            CLOSED_CODES.iter().position(|c| c == code).unwrap_or(other)
        }
        CloseReason::Timeout => other + 1,
        CloseReason::ClientClosed => other + 2,
        CloseReason::Aborted => other + 3,
        CloseReason::BrokenFraming => other + 4,
        CloseReason::MessageTooBig => other + 5,
        CloseReason::UnsupportedData => other + 6,
        CloseReason::PeerUnresponsive => other + 7,
        CloseReason::MessageTimeout => other + 8,
    }
}

/// Per-request matrix: endpoint by status.
pub(crate) type Requests = [[u64; STATUS_SLOTS]; Endpoint::ALL.len()];

/// One shard's plain counters, kept in its state under its lock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) opened: [u64; TRANSPORTS],
    pub(crate) ended: [u64; TRANSPORTS],
    pub(crate) closes: [u64; CLOSES.len()],
    pub(crate) requests: Requests,
    pub(crate) messages_received: u64,
    pub(crate) message_bytes_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) message_bytes_sent: u64,
    pub(crate) wire_received: u64,
    pub(crate) wire_sent: u64,
    pub(crate) connection_overflows: u64,
    pub(crate) queue_full: u64,
    pub(crate) inbound_overflows: u64,
    pub(crate) aborts: u64,
    pub(crate) heartbeats: u64,
}

impl Counters {
    pub(crate) fn opened(&mut self, transport: Transport) {
        self.opened[transport as usize] += 1;
    }

    pub(crate) fn ended(&mut self, transport: Transport, reason: &CloseReason) {
        self.ended[transport as usize] += 1;
        self.closes[close_slot(reason)] += 1;
    }

    pub(crate) fn answered(&mut self, endpoint: Endpoint, status: u16) {
        self.requests[endpoint as usize][status_slot(status)] += 1;
    }

    /// Adds `other` into `self` (summing shards).
    pub(crate) fn add(&mut self, other: &Counters) {
        fn sum<const N: usize>(into: &mut [u64; N], from: &[u64; N]) {
            for (a, b) in into.iter_mut().zip(from) {
                *a += b;
            }
        }
        sum(&mut self.opened, &other.opened);
        sum(&mut self.ended, &other.ended);
        sum(&mut self.closes, &other.closes);
        for (into, from) in self.requests.iter_mut().zip(&other.requests) {
            sum(into, from);
        }
        let scalars = [
            (&mut self.messages_received, other.messages_received),
            (
                &mut self.message_bytes_received,
                other.message_bytes_received,
            ),
            (&mut self.messages_sent, other.messages_sent),
            (&mut self.message_bytes_sent, other.message_bytes_sent),
            (&mut self.wire_received, other.wire_received),
            (&mut self.wire_sent, other.wire_sent),
            (&mut self.connection_overflows, other.connection_overflows),
            (&mut self.queue_full, other.queue_full),
            (&mut self.inbound_overflows, other.inbound_overflows),
            (&mut self.aborts, other.aborts),
            (&mut self.heartbeats, other.heartbeats),
        ];
        for (into, from) in scalars {
            *into += from;
        }
    }
}

/// One shard's counters for what is counted outside its lock, on cache lines of their own
/// so that shards do not contend: relaxed adds, read at snapshot time.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Outside {
    /// Bytes read from WebSocket connections.
    wire_received: AtomicU64,
    /// Bytes written to WebSocket connections.
    wire_sent: AtomicU64,
    /// Answers written by the adapter (a body too large, shutting down, ...).
    answers: [[AtomicU64; STATUS_SLOTS]; Endpoint::ALL.len()],
}

impl Outside {
    pub(crate) fn received(&self, bytes: usize) {
        self.wire_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.wire_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn answered(&self, endpoint: Endpoint, status: u16) {
        self.answers[endpoint as usize][status_slot(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what this shard counted outside its lock into `into`.
    pub(crate) fn add_to(&self, into: &mut Counters) {
        into.wire_received += self.wire_received.load(Ordering::Relaxed);
        into.wire_sent += self.wire_sent.load(Ordering::Relaxed);
        for (row, answers) in into.requests.iter_mut().zip(&self.answers) {
            for (count, answer) in row.iter_mut().zip(answers) {
                *count += answer.load(Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_has_a_labelled_slot() {
        let reasons = [
            CloseReason::Closed {
                code: 1013,
                reason: String::new(),
            },
            CloseReason::Closed {
                code: 4321,
                reason: String::new(),
            },
            CloseReason::Timeout,
            CloseReason::ClientClosed,
            CloseReason::Aborted,
            CloseReason::BrokenFraming,
            CloseReason::MessageTooBig,
            CloseReason::UnsupportedData,
            CloseReason::PeerUnresponsive,
            CloseReason::MessageTimeout,
        ];
        let labels: Vec<_> = reasons.iter().map(|r| CLOSES[close_slot(r)]).collect();
        assert_eq!(labels[0], ("closed", "1013"));
        assert_eq!(labels[1], ("closed", "other"));
        assert_eq!(labels[2], ("timeout", "none"));
        assert_eq!(labels[6], ("message_too_big", "1009"));
        assert_eq!(labels[8], ("peer_unresponsive", "3000"));
        assert_eq!(labels[9], ("message_timeout", "1008"));
        for (code, slot) in CLOSED_CODES.iter().zip(0..) {
            assert_eq!(CLOSES[slot], ("closed", code.to_string().as_str()));
        }
    }

    /// Every status the server answers with itself (the engine's, the HTTP/1 connection's
    /// refusals, the admission hook's default refusals) has a series of its own.
    #[test]
    fn every_status_the_server_answers_has_its_own_series() {
        let answered = [
            101, 200, 204, 304, 400, 401, 403, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505,
        ];
        let rejections = [
            crate::Rejection::unauthorized().status().as_u16(),
            crate::Rejection::forbidden().status().as_u16(),
        ];
        for status in answered.into_iter().chain(rejections) {
            assert_eq!(
                status_label(status_slot(status)),
                status.to_string(),
                "{status}"
            );
        }
    }

    #[test]
    fn statuses_outside_the_table_are_other() {
        assert_eq!(status_label(status_slot(413)), "413");
        assert_eq!(status_label(status_slot(418)), "other");
    }
}
