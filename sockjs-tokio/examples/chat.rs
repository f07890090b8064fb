//! A chat room: a SockJS service mounted in axum, and a single page that talks to it with
//! sockjs-client over the transport of your choice.
//!
//! ```text
//! cargo run --release -p sockjs-tokio --example chat -- [ADDR] [--sockjs-url URL]
//!     [--node NAME] [--redis URL]
//! ```
//!
//! Then open http://127.0.0.1:8080 (the default ADDR) in a few browser tabs. `--sockjs-url`
//! changes where the page (and the service's iframe page) loads sockjs-client from.
//!
//! Several instances share one room through Redis pub/sub (build with `--features redis`):
//!
//! ```text
//! cargo run --release -p sockjs-tokio --features redis --example chat -- \
//!     127.0.0.1:8081 --node a --redis redis://127.0.0.1:6379/
//! cargo run --release -p sockjs-tokio --features redis --example chat -- \
//!     127.0.0.1:8082 --node b --redis redis://127.0.0.1:6379/
//! ```
//!
//! and put a load balancer with sticky routing in front of them (see DEPLOYMENT.md). Each
//! instance names itself (`--node`, default its address) in an `X-Node` response header
//! and in what it sends, so you can see where each session lives. SIGTERM or Ctrl-C shuts
//! an instance down gracefully: its sessions get `1001 "Server shutting down"`.

use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::{Html, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use serde_json::{Value, json};
use sockjs_tokio::broadcast::Broadcast;
use sockjs_tokio::{Options, Session, SockJs};

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_SOCKJS_URL: &str = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";
/// The one topic everybody joins.
const ROOM: &str = "room";

fn clean(text: &str, max: usize) -> String {
    text.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

async fn chat(hub: Broadcast, node: String, mut session: Session) {
    let transport = session.transport().name();
    let _ = session.send(json!({"type": "welcome", "node": node}).to_string());
    // The first message names the user: {"nick": "..."}.
    let nick = loop {
        let Some(text) = session.recv().await else {
            return;
        };
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let nick = clean(parsed["nick"].as_str().unwrap_or(""), 24);
        if !nick.is_empty() {
            break nick;
        }
    };
    // Everyone in the room, on this node and (with Redis) on every other one. The member
    // leaves the room when it is dropped, at the end of this function.
    let member = hub.member(session.sender());
    member.join(ROOM);
    let said = |message: Value| hub.publish(ROOM, &message.to_string());
    said(json!({"type": "join", "nick": nick, "transport": transport, "node": node}));
    while let Some(text) = session.recv().await {
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let text = clean(parsed["text"].as_str().unwrap_or(""), 2000);
        if text.is_empty() {
            continue;
        }
        said(
            json!({"type": "say", "nick": nick, "transport": transport, "node": node, "text": text}),
        );
    }
    drop(member);
    said(json!({"type": "leave", "nick": nick, "node": node}));
}

fn usage(problem: &str) -> ! {
    eprintln!("usage: chat [ADDR] [--sockjs-url URL] [--node NAME] [--redis URL] ({problem})");
    std::process::exit(2);
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() {
    // Session opens and closes, Redis outages and recoveries: to stderr.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .init();
    let mut addr = DEFAULT_ADDR.to_owned();
    let mut sockjs_url = DEFAULT_SOCKJS_URL.to_owned();
    let mut node = None;
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--sockjs-url" => sockjs_url = value("--sockjs-url"),
            "--node" => node = Some(value("--node")),
            "--redis" => redis = Some(value("--redis")),
            other if !other.starts_with('-') => addr = other.to_owned(),
            other => usage(&format!("unknown argument {other}")),
        }
    }

    let hub = match redis {
        None => Broadcast::new(),
        #[cfg(feature = "redis")]
        Some(url) => match sockjs_tokio::broadcast::redis(&url) {
            Ok(hub) => hub,
            Err(error) => usage(&format!("bad Redis URL {url}: {error}")),
        },
        #[cfg(not(feature = "redis"))]
        Some(_) => usage("--redis needs the redis feature: cargo run --features redis ..."),
    };

    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot bind {addr}: {error}");
            std::process::exit(1);
        }
    };
    let local = listener
        .local_addr()
        .map_or(addr.clone(), |a| a.to_string());
    let node = node.unwrap_or_else(|| local.clone());
    let node_header = HeaderValue::from_str(&node).unwrap_or_else(|_| usage("bad --node"));

    let options = Options {
        sockjs_url: sockjs_url.clone(),
        ..Options::default()
    };
    // The three lines that matter: build the service, mount it, serve.
    let chat_node = node.clone();
    let service = SockJs::new(options, move |session| {
        chat(hub.clone(), chat_node.clone(), session)
    });
    let page = PAGE.replace("SOCKJS_URL", &sockjs_url);
    let app = axum::Router::new()
        .route("/", get(move || async move { Html(page) }))
        .nest_service("/chat", service.clone())
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let node = node_header.clone();
                async move {
                    response.headers_mut().insert("x-node", node);
                    response
                }
            },
        ));

    println!("chat on http://{local} (node {node})");
    let closing = service.clone();
    // Streaming transports write one small chunk per frame: without TCP_NODELAY, Nagle's
    // algorithm holds each one back until the previous is acknowledged (~200 ms with
    // delayed ACKs). sockjs_tokio::serve sets it; under axum::serve, ask for it.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop_signal().await;
            println!("node {node}: shutting down");
            // Polls and streams get the close frame and end, so the drain can finish;
            // WebSockets get it and close.
            closing.close_all(1001, "Server shutting down");
        })
        .await;
    if let Err(error) = served {
        eprintln!("server failed: {error}");
        std::process::exit(1);
    }
    // WebSockets live outside the HTTP connections the drain waited for: give them a moment
    // to send their close frames.
    service.close_all(1001, "Server shutting down");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while service.session_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SockJS chat</title>
<style>
  :root { --bg:#0f172a; --panel:#111827; --line:#1f2937; --text:#e5e7eb; --muted:#94a3b8;
          --accent:#38bdf8; --ok:#34d399; --bad:#f87171; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
         background:radial-gradient(circle at top, #1e293b, var(--bg)); color:var(--text);
         min-height:100vh; display:flex; justify-content:center; }
  main { width:min(760px, 100%); padding:24px 16px; display:flex; flex-direction:column; gap:14px; }
  h1 { margin:0; font-size:22px; letter-spacing:.3px; }
  h1 span { color:var(--accent); }
  .card { background:rgba(17,24,39,.85); border:1px solid var(--line); border-radius:14px; padding:14px; }
  .row { display:flex; gap:10px; flex-wrap:wrap; align-items:center; }
  label { color:var(--muted); font-size:13px; }
  input, select, button { font:inherit; color:var(--text); background:#0b1220; border:1px solid var(--line);
         border-radius:9px; padding:8px 11px; }
  input:focus, select:focus { outline:2px solid var(--accent); outline-offset:-1px; }
  button { background:var(--accent); color:#04111d; border:none; font-weight:600; cursor:pointer; }
  button.secondary { background:#1f2937; color:var(--text); }
  button:disabled { opacity:.5; cursor:default; }
  #status { display:flex; gap:8px; align-items:center; font-size:13px; color:var(--muted); }
  #dot { width:9px; height:9px; border-radius:50%; background:var(--bad); }
  #dot.on { background:var(--ok); box-shadow:0 0 8px var(--ok); }
  .badge { background:#0b1220; border:1px solid var(--line); border-radius:99px; padding:2px 9px;
           color:var(--accent); font-family:ui-monospace, monospace; font-size:12px; }
  #log { height:55vh; overflow-y:auto; display:flex; flex-direction:column; gap:8px; }
  .msg { padding:8px 11px; border-radius:10px; background:#0b1220; border:1px solid var(--line); max-width:85%; }
  .msg.mine { align-self:flex-end; border-color:#0e7490; background:#082f49; }
  .msg .meta { font-size:12px; color:var(--muted); margin-bottom:2px; }
  .msg .meta b { color:var(--text); }
  .sys { align-self:center; font-size:12px; color:var(--muted); }
  #say { flex:1; min-width:200px; }
</style>
</head>
<body>
<main>
  <h1>SockJS <span>chat</span></h1>
  <div class="card row">
    <label>Nickname <input id="nick" maxlength="24" placeholder="your name"></label>
    <label>Transport
      <select id="transport">
        <option value="">auto (best available)</option>
        <option>websocket</option>
        <option>xhr-streaming</option>
        <option>xdr-streaming</option>
        <option>eventsource</option>
        <option>iframe-eventsource</option>
        <option>htmlfile</option>
        <option>iframe-htmlfile</option>
        <option>xhr-polling</option>
        <option>xdr-polling</option>
        <option>iframe-xhr-polling</option>
        <option>jsonp-polling</option>
      </select>
    </label>
    <button id="connect">Join</button>
    <button id="leave" class="secondary" disabled>Leave</button>
  </div>
  <div id="status"><div id="dot"></div><span id="state">disconnected</span>
    <span class="badge" id="used">no transport</span><span class="badge" id="node" hidden></span></div>
  <div class="card" id="log"></div>
  <form class="card row" id="form">
    <input id="say" placeholder="Say something…" autocomplete="off" disabled>
    <button id="send" disabled>Send</button>
  </form>
</main>
<script src="SOCKJS_URL"></script>
<script>
  const $ = (id) => document.getElementById(id);
  let sock = null, me = "";
  $("nick").value = localStorage.getItem("nick") || "guest" + Math.floor(Math.random() * 1000);

  function line(html, cls) {
    const div = document.createElement("div");
    div.className = cls;
    div.innerHTML = html;
    $("log").appendChild(div);
    $("log").scrollTop = $("log").scrollHeight;
  }
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) =>
    ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));

  function setConnected(on) {
    $("dot").className = on ? "on" : "";
    $("say").disabled = $("send").disabled = $("leave").disabled = !on;
    $("connect").disabled = on;
    $("nick").disabled = $("transport").disabled = on;
  }

  $("connect").onclick = () => {
    me = $("nick").value.trim() || "guest";
    localStorage.setItem("nick", me);
    const chosen = $("transport").value;
    const options = chosen ? { transports: [chosen] } : {};
    $("state").textContent = "connecting…";
    sock = new SockJS(location.origin + "/chat", null, options);
    sock.onopen = () => {
      setConnected(true);
      $("state").textContent = "connected";
      $("used").textContent = sock.transport || chosen || "?";
      sock.send(JSON.stringify({ nick: me }));
      if (params.get("say")) sock.send(JSON.stringify({ text: params.get("say") }));
      $("say").focus();
    };
    sock.onmessage = (e) => {
      const m = JSON.parse(e.data);
      const where = m.node ? " on node " + esc(m.node) : "";
      if (m.type === "welcome") {
        $("node").textContent = "node " + m.node;
        $("node").hidden = false;
      } else if (m.type === "say") {
        line('<div class="meta"><b>' + esc(m.nick) + '</b> via ' + esc(m.transport) + where + '</div>' + esc(m.text),
             "msg" + (m.nick === me ? " mine" : ""));
      } else if (m.type === "join") {
        line(esc(m.nick) + " joined via " + esc(m.transport) + where, "sys");
      } else if (m.type === "leave") {
        line(esc(m.nick) + " left" + where, "sys");
      }
    };
    sock.onclose = (e) => {
      setConnected(false);
      $("state").textContent = "disconnected (" + e.code + " " + e.reason + ")";
      $("used").textContent = "no transport";
      $("node").hidden = true;
      sock = null;
    };
  };
  $("leave").onclick = () => sock && sock.close();
  // Links such as /?transport=xhr-polling&nick=ann&join=1 pre-fill the form (and join).
  const params = new URLSearchParams(location.search);
  if (params.get("nick")) $("nick").value = params.get("nick");
  if (params.get("transport")) $("transport").value = params.get("transport");
  if (params.get("join")) $("connect").onclick();
  $("form").onsubmit = (e) => {
    e.preventDefault();
    const text = $("say").value.trim();
    if (sock && text) sock.send(JSON.stringify({ text }));
    $("say").value = "";
  };
</script>
</body>
</html>
"##;
