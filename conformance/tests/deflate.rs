//! permessage-deflate (RFC 7692) over real sockets on both adapters: the conformance check
//! negotiates it when the service offers it (and is skipped when it does not), compressed
//! messages flow both ways in both context-takeover modes, and what a client may not send
//! closes the socket with the right code.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use conformance::deflate::{CHROMIUM_OFFER, DeflateWs, Frame};
use conformance::runner::Status;
use sockjs_core::driver::Config;
use sockjs_core::driver::Session;
use sockjs_core::{DeflateOptions, Options};
use support::{ADAPTERS, Adapter, Mount, Target, handler, start_services, suite, within};

const LIMIT: Duration = Duration::from_secs(60);

fn start(adapter: Adapter, deflate: Option<DeflateOptions>) -> Target {
    let base = Options {
        permessage_deflate: deflate,
        max_message_size: 64 * 1024,
        ..Options::default()
    };
    start_services(adapter, Config::default(), suite(&base))
}

fn takeover() -> DeflateOptions {
    DeflateOptions {
        server_context_takeover: true,
        client_context_takeover: true,
        ..DeflateOptions::default()
    }
}

/// The outcomes of the conformance checks of permessage-deflate against `target` (the
/// Chromium offer, and an offer with a small server window).
fn checks(target: &Target) -> Vec<Status> {
    let config =
        conformance::Config::new(format!("http://{}", target.addr)).filter("permessage_deflate");
    let report = conformance::run_checks(&config, conformance::selected_checks(&config));
    assert_eq!(report.results.len(), 2, "{}", report.table(true));
    report.results.iter().map(|r| r.status.clone()).collect()
}

fn open(target: &Target, offer: Option<&str>) -> DeflateWs {
    let path = format!(
        "/echo/000/{}/websocket",
        conformance::util::random_session_id()
    );
    let mut ws =
        DeflateWs::connect(&target.host(), &path, offer, Duration::from_secs(5)).expect("upgraded");
    assert_eq!(ws.recv_text().expect("open frame").0, "o");
    ws
}

/// The close frame the server ends with (after any messages).
fn close_code(ws: &mut DeflateWs) -> Option<u16> {
    loop {
        match ws.recv() {
            Ok(Some(Frame::Close(close))) => return close.map(|(code, _)| code),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

#[test]
fn the_conformance_check_negotiates_it_when_offered_on_both_adapters() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let on = start(adapter, Some(DeflateOptions::default()));
            assert_eq!(
                checks(&on),
                [Status::Pass, Status::Pass],
                "{adapter:?} with deflate"
            );
            let with_takeover = start(adapter, Some(takeover()));
            assert_eq!(
                checks(&with_takeover),
                [Status::Pass, Status::Pass],
                "{adapter:?} takeover"
            );
            let off = start(adapter, None);
            assert!(
                checks(&off).iter().all(|s| matches!(s, Status::Skip(_))),
                "{adapter:?} without deflate: skipped"
            );
        }
    });
}

#[test]
fn messages_flow_compressed_both_ways_in_both_modes() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            for (mode, settings) in [
                ("reset", DeflateOptions::default()),
                ("takeover", takeover()),
            ] {
                let target = start(adapter, Some(settings));
                let mut ws = open(&target, Some(CHROMIUM_OFFER));
                let answer = ws.answer.clone().expect("negotiated");
                let expected = if mode == "reset" {
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                } else {
                    "permessage-deflate"
                };
                assert_eq!(answer, expected, "{adapter:?} {mode}");
                let item = r#"{\"id\":1,\"name\":\"a user\",\"tags\":[\"x\",\"y\"]}"#;
                let body = format!("[\"{}\"]", vec![item; 30].join(","));
                let (mut wire_in, mut wire_out) = (Vec::new(), Vec::new());
                for round in 0..5 {
                    let (in0, out0) = (ws.bytes_in, ws.bytes_out);
                    ws.send(&body, true).expect("send");
                    let (echo, compressed) = ws.recv_text().expect("echo");
                    assert_eq!(echo, format!("a{body}"), "{adapter:?} {mode} round {round}");
                    assert!(compressed, "{adapter:?} {mode}: the echo came compressed");
                    wire_in.push(ws.bytes_in - in0);
                    wire_out.push(ws.bytes_out - out0);
                }
                // Small messages go uncompressed (below the minimum size).
                ws.send(r#"["hi"]"#, false).expect("send");
                assert_eq!(ws.recv_text().expect("echo"), (r#"a["hi"]"#.into(), false));
                println!(
                    "{adapter:?} {mode}: {} B message, wire in {wire_in:?}, out {wire_out:?}",
                    body.len()
                );
                assert!(wire_in[0] < body.len() as u64 / 4, "{wire_in:?}");
                if mode == "takeover" {
                    // The window carries the earlier messages: later ones shrink.
                    assert!(wire_in[4] < wire_in[0] / 2, "{wire_in:?}");
                    assert!(wire_out[4] < wire_out[0] / 2, "{wire_out:?}");
                }
                ws.close(1000).expect("close");
                assert_eq!(close_code(&mut ws), Some(1000));
            }
        }
    });
}

#[test]
fn what_a_client_may_not_send_closes_the_socket() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let off = start(adapter, None);
            // RFC 7692 §6: RSV1 without the extension negotiated is a protocol error.
            let mut ws = open(&off, Some(CHROMIUM_OFFER));
            assert_eq!(ws.answer, None, "{adapter:?}: not offered");
            let mut codec = conformance::deflate::Codec::new(Some(Default::default()));
            let payload = codec.compress(br#"["x"]"#);
            let mut frame = Vec::new();
            codec.encode_frame(0xC1, &payload, &mut frame);
            ws.write(&frame).expect("write");
            assert_eq!(close_code(&mut ws), Some(1002), "{adapter:?} RSV1 off");

            let on = start(adapter, Some(DeflateOptions::default()));
            // RSV1 on a control frame.
            let mut ws = open(&on, Some(CHROMIUM_OFFER));
            let mut frame = Vec::new();
            codec.encode_frame(0xC9, b"", &mut frame);
            ws.write(&frame).expect("write");
            assert_eq!(close_code(&mut ws), Some(1002), "{adapter:?} RSV1 ping");
            // Data that does not inflate.
            let mut ws = open(&on, Some(CHROMIUM_OFFER));
            let mut frame = Vec::new();
            codec.encode_frame(0xC1, &[0xff, 0xff, 0xff, 0xff], &mut frame);
            ws.write(&frame).expect("write");
            assert_eq!(close_code(&mut ws), Some(1007), "{adapter:?} bad data");
            // A bomb: 4 MiB of spaces in a few kilobytes, over the 64 KiB bound once
            // inflated: 1009, and the session ends.
            let mut ws = open(&on, Some(CHROMIUM_OFFER));
            let bomb = format!("[\"{}\"]", " ".repeat(4 << 20));
            let before = ws.bytes_out;
            ws.send(&bomb, true).expect("send");
            assert!(
                ws.bytes_out - before < 16 * 1024,
                "{}",
                ws.bytes_out - before
            );
            assert_eq!(close_code(&mut ws), Some(1009), "{adapter:?} bomb");
        }
    });
}

/// A compressed read inflates to far more than it holds: it is handed to the application
/// a read's worth of text at a time, with the inbound bound looked at in between, so a
/// read of small frames that inflate to megabytes is held back like any fast writer
/// (SECURITY.md, `max_session_inbound_bytes`), not queued whole, and nothing is lost.
#[test]
fn a_compressed_read_is_held_back_at_the_inbound_bound() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            // The application takes nothing until the test has counted what was queued:
            // each message taken frees its room for the next.
            let go = Arc::new(AtomicBool::new(false));
            let app_go = go.clone();
            let app = handler(move |mut session: Session| {
                let tx = ready_tx.clone();
                let go = app_go.clone();
                async move {
                    while !go.load(Ordering::Acquire) {
                        support::sleep(Duration::from_millis(10)).await;
                    }
                    let mut messages = Vec::new();
                    while messages.len() < 40 {
                        match session.recv().await {
                            Some(text) => messages.push(text),
                            None => break,
                        }
                    }
                    let whole = messages.iter().enumerate().all(|(n, text)| {
                        text.len() == 64 * 1024 - 8 && text.starts_with(&format!("{n:02}"))
                    });
                    let _ = tx.send((messages.len(), whole, session.close_reason()));
                }
            });
            let options = Options {
                permessage_deflate: Some(DeflateOptions::default()),
                max_message_size: 64 * 1024,
                ..Options::default()
            };
            let config = Config {
                max_session_inbound_bytes: 64 * 1024,
                ..Config::default()
            };
            let target = start_services(adapter, config, vec![Mount::new("/app", options, app)]);
            let path = format!(
                "/app/000/{}/websocket",
                conformance::util::random_session_id()
            );
            let mut ws = DeflateWs::connect(
                &target.host(),
                &path,
                Some(CHROMIUM_OFFER),
                Duration::from_secs(10),
            )
            .expect("upgraded");
            assert_eq!(ws.recv_text().expect("open frame").0, "o");
            let mut codec = conformance::deflate::Codec::new(ws.agreed());
            // 40 messages of 64 KiB less a few bytes: 2.5 MiB once inflated, a few
            // kilobytes on the wire, in one write.
            let mut frames = Vec::new();
            for n in 0..40 {
                let text = format!("{n:02}{}", " ".repeat(64 * 1024 - 10));
                codec.encode_text(&format!("[\"{text}\"]"), true, &mut frames);
            }
            assert!(frames.len() < 8 * 1024, "{}", frames.len());
            ws.write(&frames).expect("write");
            // What the session queued (the service counts a message as it queues it), once
            // the read has begun and had time to go on unbounded.
            let queued = || target.metrics_of("/app").messages_received;
            let begun = std::time::Instant::now();
            while queued() == 0 && begun.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(500));
            let queued = queued();
            go.store(true, Ordering::Release);
            // At most the bound and one feed (16 KiB and one message) was queued at once.
            assert!(
                (1..=3).contains(&queued),
                "{adapter:?}: {queued} of 40 queued at once"
            );
            let (taken, whole, reason) = ready_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the application's report");
            assert_eq!((taken, whole, reason), (40, true, None), "{adapter:?}");
        }
    });
}

/// RFC 6455 §5.5.1: once the server's close is out it only looks for the client's. What
/// the client still sends is framed, not inflated: a compressed frame that would not
/// inflate (or would inflate to megabytes) neither costs the server its inflating nor
/// hides the client's close behind it, which ends the connection at once, long before the
/// close linger.
#[test]
fn after_the_servers_close_compressed_frames_are_not_inflated_and_the_clients_close_is_seen() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let base = Options {
                permessage_deflate: Some(DeflateOptions::default()),
                ..Options::default()
            };
            let config = Config {
                close_linger: Duration::from_secs(8),
                ..Config::default()
            };
            let target = start_services(adapter, config, suite(&base));
            let mut ws = open(&target, Some(CHROMIUM_OFFER));
            // Broken framing: the server closes with 3000 and waits for the client's close.
            ws.send("[broken", false).expect("send");
            assert_eq!(close_code(&mut ws), Some(3000), "{adapter:?}");
            let mut codec = conformance::deflate::Codec::new(Some(Default::default()));
            let mut frame = Vec::new();
            codec.encode_frame(0xC1, &[0xff, 0xff, 0xff, 0xff], &mut frame);
            ws.write(&frame).expect("write");
            let started = std::time::Instant::now();
            ws.close(1000).expect("close");
            let end = loop {
                match ws.recv() {
                    Ok(Some(_)) => continue,
                    other => break other,
                }
            };
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{adapter:?}: the connection ended after {:?} ({end:?})",
                started.elapsed()
            );
        }
    });
}
