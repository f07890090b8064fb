//! HTTP sessions: a receiver (xhr-streaming, xhr-polling or eventsource) plus xhr_send.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, oneshot};

use super::LoadError;
use super::args::Transport;
use super::http::Conn;
use super::run::{Ctx, HANDSHAKE_TIMEOUT, current_window, wait_run, wait_stop};
use super::track::{Frame, Stats, Tracker, parse_frame, send_body, short};

/// Largest `xhr_send` or polling response body accepted.
const MAX_SMALL_BODY: usize = 1 << 20;
/// Largest frame accepted on a stream.
const MAX_FRAME: usize = 16 << 20;
/// Length of the xhr_streaming prelude (a line of `h`).
const PRELUDE: usize = 2048;

/// State shared by a session's receiver and sender.
struct Shared {
    tracker: Mutex<Tracker>,
    /// Signalled when echoes free room in the window.
    room: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tracker> {
        // A poisoned lock only means another task panicked; the counters stay usable.
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One session: the receiver opens it, then the sender keeps the window full.
pub(super) async fn session(ctx: Arc<Ctx>, _idx: usize, ready: UnboundedSender<bool>) -> Stats {
    let base = format!(
        "{}/000/{}",
        ctx.cfg.prefix,
        crate::util::random_session_id()
    );
    let shared = Arc::new(Shared {
        tracker: Mutex::new(Tracker::new(ctx.cfg.size, ctx.cfg.window).json(ctx.cfg.json)),
        room: Notify::new(),
    });
    let (open_tx, open_rx) = oneshot::channel();
    let opened = {
        let _permit = ctx.permits.acquire().await;
        let recv = tokio::spawn(receiver(
            Arc::clone(&ctx),
            Arc::clone(&shared),
            base.clone(),
            open_tx,
        ));
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, open_rx).await {
            Ok(Ok(())) => Ok(recv),
            Ok(Err(_)) => Err((recv, None)), // the receiver failed and said why
            Err(_) => Err((recv, Some("the session did not open in time"))),
        }
    };
    let recv = match opened {
        Ok(recv) => recv,
        Err((recv, why)) => {
            recv.abort();
            let _ = recv.await;
            let mut t = shared.lock();
            if let Some(why) = why {
                t.stats.error("timeout", why);
            }
            let _ = ready.send(false);
            return std::mem::take(&mut t.stats);
        }
    };
    shared.lock().stats.opened = 1;
    let _ = ready.send(true);

    let mut phase = ctx.phase.clone();
    if ctx.cfg.idle {
        if ctx.cfg.echo_first {
            if let Err(e) = warm(&ctx, &shared, &format!("{base}/xhr_send")).await {
                shared
                    .lock()
                    .stats
                    .error(e.kind, format!("first echo: {}", e.msg));
            }
        }
        // The receiver holds its request open (and re-opens it when the server ends it).
        if wait_run(&mut phase).await.is_some() {
            wait_stop(ctx.phase.clone()).await;
        }
    } else if wait_run(&mut phase).await.is_some() {
        if let Err(e) = sender(&ctx, &shared, &format!("{base}/xhr_send")).await {
            shared
                .lock()
                .stats
                .error(e.kind, format!("xhr_send: {}", e.msg));
        }
    }
    // The receiver ends on Stop too; bound the wait anyway.
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut recv = recv;
    if tokio::time::timeout_at(deadline, &mut recv).await.is_err() {
        recv.abort();
    }
    std::mem::take(&mut shared.lock().stats)
}

/// Sends one message and waits for the receiver to see its echo (not counted: it is
/// outside any window).
async fn warm(ctx: &Ctx, shared: &Shared, path: &str) -> Result<(), LoadError> {
    let Some(m) = shared.lock().next_message(Instant::now()) else {
        return Ok(());
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        post(ctx, &mut None, path, send_body(&[m]).as_bytes()).await?;
        while shared.lock().in_flight() > 0 {
            shared.room.notified().await;
        }
        Ok(())
    })
    .await
    .map_err(|_| LoadError::new("timeout", "no echo of the first message"))?
}

/// Sends the messages the window allows, one `xhr_send` POST per batch, until stopped.
async fn sender(ctx: &Ctx, shared: &Shared, path: &str) -> Result<(), LoadError> {
    let stop = wait_stop(ctx.phase.clone());
    tokio::pin!(stop);
    let mut conn: Option<Conn> = None;
    loop {
        let batch: Vec<String> = {
            let mut t = shared.lock();
            let now = Instant::now();
            std::iter::from_fn(|| t.next_message(now)).collect()
        };
        if batch.is_empty() {
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                _ = shared.room.notified() => continue,
            }
        }
        let body = send_body(&batch);
        tokio::select! {
            biased;
            _ = &mut stop => return Ok(()),
            r = post(ctx, &mut conn, path, body.as_bytes()) => r?,
        }
    }
}

async fn post(
    ctx: &Ctx,
    conn: &mut Option<Conn>,
    path: &str,
    body: &[u8],
) -> Result<(), LoadError> {
    let c = reuse_or_connect(ctx, conn).await?;
    let head = c.request("POST", path, Some(body)).await?;
    c.read_body(MAX_SMALL_BODY).await?;
    if !c.reusable() {
        *conn = None;
    }
    if head.status != 204 && head.status != 200 {
        return Err(LoadError::new("http", format!("status {}", head.status)));
    }
    Ok(())
}

async fn reuse_or_connect<'a>(
    ctx: &Ctx,
    conn: &'a mut Option<Conn>,
) -> Result<&'a mut Conn, LoadError> {
    if conn.as_ref().is_some_and(|c| !c.reusable()) {
        *conn = None;
    }
    if conn.is_none() {
        *conn = Some(Conn::connect(ctx.cfg.addr, &ctx.cfg.host, HANDSHAKE_TIMEOUT).await?);
    }
    conn.as_mut()
        .ok_or_else(|| LoadError::new("io", "no connection"))
}

/// What ended a receiving response.
enum Ended {
    /// The response ended normally: open the next one.
    Reopen,
    /// The server closed the session.
    Closed,
}

/// Receives frames (re-opening the receiving request whenever the server ends it) until
/// stopped or the session is closed.
async fn receiver(ctx: Arc<Ctx>, shared: Arc<Shared>, base: String, open_tx: oneshot::Sender<()>) {
    let (method, path) = match ctx.cfg.transport {
        Transport::XhrStreaming => ("POST", format!("{base}/xhr_streaming")),
        Transport::EventSource => ("GET", format!("{base}/eventsource")),
        _ => ("POST", format!("{base}/xhr")),
    };
    let stop = wait_stop(ctx.phase.clone());
    tokio::pin!(stop);
    let mut conn: Option<Conn> = None;
    let mut open_tx = Some(open_tx);
    let mut responses = 0u64;
    loop {
        let r = tokio::select! {
            biased;
            _ = &mut stop => return,
            r = response(&ctx, &shared, &mut conn, method, &path, &mut open_tx) => r,
        };
        match r {
            Ok(Ended::Reopen) => {
                responses += 1;
                if responses > 1 {
                    shared.lock().stats.reconnects += 1;
                }
            }
            Ok(Ended::Closed) => return,
            Err(e) => {
                return shared
                    .lock()
                    .stats
                    .error(e.kind, format!("receiver: {}", e.msg));
            }
        }
    }
}

/// One receiving request: reads its frames as they arrive.
async fn response(
    ctx: &Ctx,
    shared: &Shared,
    conn: &mut Option<Conn>,
    method: &str,
    path: &str,
    open_tx: &mut Option<oneshot::Sender<()>>,
) -> Result<Ended, LoadError> {
    let eventsource = ctx.cfg.transport == Transport::EventSource;
    let c = reuse_or_connect(ctx, conn).await?;
    let head = c.request(method, path, None).await?;
    if head.status != 200 {
        let _ = c.read_body(MAX_SMALL_BODY).await;
        return Err(LoadError::new("http", format!("status {}", head.status)));
    }
    let mut lines = Lines::default();
    let mut ended = Ended::Reopen;
    while let Some(piece) = c.body_piece().await? {
        let now = Instant::now();
        for line in lines.push(&piece)? {
            let frame = if eventsource {
                match line.strip_prefix("data: ") {
                    Some(f) => f,
                    None => continue, // the prelude, event separators
                }
            } else if line.is_empty() || (line.len() == PRELUDE && line.bytes().all(|b| b == b'h'))
            {
                continue;
            } else {
                line.as_str()
            };
            match parse_frame(frame) {
                Ok(Frame::Open) => match open_tx.take() {
                    Some(tx) => {
                        let _ = tx.send(());
                    }
                    None => shared.lock().stats.error("protocol", "a second open frame"),
                },
                Ok(Frame::Heartbeat) => shared.lock().stats.heartbeats += 1,
                Ok(Frame::Messages(ms)) => {
                    let window = current_window(&ctx.phase);
                    {
                        let mut t = shared.lock();
                        for m in &ms {
                            t.on_echo(m, now, window.as_ref());
                        }
                    }
                    shared.room.notify_one();
                }
                Ok(Frame::Close(text)) => {
                    shared.lock().stats.error(
                        "closed",
                        format!("server closed the session: {}", short(&text)),
                    );
                    ended = Ended::Closed;
                }
                Err(e) => shared.lock().stats.error("protocol", e),
            }
        }
    }
    if !lines.rest.is_empty() {
        shared.lock().stats.error(
            "protocol",
            format!(
                "response ended inside a frame: {}",
                short(&String::from_utf8_lossy(&lines.rest))
            ),
        );
    }
    if !c.reusable() {
        *conn = None;
    }
    Ok(ended)
}

/// Splits a body into `\n`-terminated lines (a trailing `\r` removed).
#[derive(Debug, Default)]
struct Lines {
    rest: Vec<u8>,
}

impl Lines {
    fn push(&mut self, piece: &[u8]) -> Result<Vec<String>, LoadError> {
        self.rest.extend_from_slice(piece);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(i) = self.rest[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.rest[start..start + i];
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            out.push(
                String::from_utf8(line.to_vec())
                    .map_err(|_| LoadError::new("protocol", "frame is not UTF-8"))?,
            );
            start += i + 1;
        }
        self.rest.drain(..start);
        if self.rest.len() > MAX_FRAME {
            return Err(LoadError::new("protocol", "frame too large"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_pieces() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"o\na[\"x").expect("utf-8"), ["o"]);
        assert_eq!(l.push(b"\"]\r\n\r\nda").expect("utf-8"), ["a[\"x\"]", ""]);
        assert_eq!(l.rest, b"da");
        assert!(l.push(b"\xff\n").is_err());
    }
}
