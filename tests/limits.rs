//! Limits on what one client may send, end to end: body size (413, declared and streamed, with
//! a per-route override), minimum body rate (408), WebSocket message size, the header timeout
//! and the per-address connection cap. Each refusal is checked for its metric and, where a
//! request exists, its telemetry reason; and nothing refused reaches the origin.

mod common;
use common::bad_origin::{BadOrigin, Mode};
use common::raw::{exchange, read_response, Reply};
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn config(origin: SocketAddr, limits: &str) -> String {
    format!(
        "\
upstreams:
  app: {{backends: [\"{origin}\"]}}
routes:
  - name: uploads
    path_prefix: /upload
    upstream: app
    limits: {{max_body: 64KiB}}
  - name: app
    upstream: app
policies: [p.yaml]
limits:
{limits}"
    )
}

fn start(origin: SocketAddr, limits: &str) -> Proxy {
    Proxy::start(&config(origin, limits), &[("p.yaml", "rules: []\n")])
}

fn metric(p: &Proxy, sample: &str) -> f64 {
    p.metric(sample).unwrap_or(0.0)
}

/// `GET path` on an open connection: the status of its answer, 0 when none came.
fn get_on(s: &mut TcpStream, path: &str) -> u16 {
    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .is_err()
    {
        return 0;
    }
    Reply { text: read_response(s) }.status()
}

/// Send `bytes` one at a time, 50 ms apart, as a slowloris client does; true when the proxy
/// cut the connection before the last one.
fn trickle(s: &mut TcpStream, bytes: &[u8]) -> bool {
    for b in bytes {
        if s.write_all(&[*b]).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn bodies_over_the_cap_are_refused_before_the_origin_sees_them() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(origin.addr.expect("addr"), "  max_body: 1KiB\n");
    // Declared too large: refused up front, with the reason in telemetry and metrics.
    let big = "x".repeat(2000);
    let r = client()
        .post(p.url("/declared"))
        .body(big.clone())
        .send()
        .expect("post");
    assert_eq!(r.status(), 413);
    let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
    assert_eq!(p.event_for(&id)["event"]["reason"], "body_too_large");
    assert!(origin.seen_path("/declared").is_empty());
    // The same size on the route whose override allows it.
    let r = client().post(p.url("/upload/a")).body(big).send().expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(origin.seen_path("/upload/a")[0].body.len(), 2000);
    // Streamed (chunked, no length up front): counted as it arrives and cut at the cap.
    let mut chunks = Vec::new();
    for _ in 0..4 {
        chunks.extend_from_slice(b"200\r\n");
        chunks.extend(std::iter::repeat_n(b'y', 0x200));
        chunks.extend_from_slice(b"\r\n");
    }
    chunks.extend_from_slice(b"0\r\n\r\n");
    let mut req = b"POST /streamed HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend(chunks);
    let reply = exchange(p.addr, &req, WAIT);
    assert_eq!(reply.status(), 413, "{reply:?}");
    assert!(
        origin.seen_path("/streamed").is_empty(),
        "the origin never gets a complete over-size body"
    );
    assert_eq!(
        metric(&p, "palisade_request_refusals_total{reason=\"body_too_large\"}"),
        2.0
    );
}

#[test]
fn a_stalled_or_trickling_body_is_cut_at_the_minimum_rate() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(
        origin.addr.expect("addr"),
        "  min_body_rate: 1KiB\n  body_rate_grace: 500ms\n",
    );
    // Stalled: half the body, then nothing.
    let started = Instant::now();
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"POST /stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .expect("write");
    let reply = Reply {
        text: read_response(&mut s),
    };
    let took = started.elapsed();
    // One CI run saw the connection closed with no answer after about 1.3 s (not reproduced
    // since): the proxy's log says why, if it happens again.
    assert_eq!(
        reply.status(),
        408,
        "{reply:?} after {took:?}; proxy log:\n{}",
        p.log_text()
    );
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    // Trickling: one byte every 100 ms is 10 B/s, far below 1 KiB/s.
    let started = Instant::now();
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    s.write_all(b"POST /trickle HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    while started.elapsed() < WAIT {
        if s.write_all(b"x").is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !answer.is_empty() {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut after {:?}",
        started.elapsed()
    );
    assert!(origin.seen_path("/stalled").is_empty() && origin.seen_path("/trickle").is_empty());
    assert_eq!(
        metric(&p, "palisade_request_refusals_total{reason=\"body_too_slow\"}"),
        2.0
    );
    // A normal upload on the same proxy is unaffected.
    let r = client()
        .post(p.url("/fine"))
        .body("x".repeat(50_000))
        .send()
        .expect("post");
    assert_eq!(r.status(), 200);
}

/// A masked client frame with `len` payload bytes.
fn ws_frame(opcode: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    if len < 126 {
        f.push(0x80 | len as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    }
    f.extend_from_slice(&[7, 7, 7, 7]);
    f.extend(std::iter::repeat_n(b'm', len));
    f
}

#[test]
fn websocket_messages_over_the_cap_close_the_tunnel() {
    let ws = BadOrigin::spawn(Mode::WebSocket);
    let p = start(ws.addr, "  max_websocket_message: 1000\n");
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("upgrade");
    let head = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    let small = ws_frame(2, 900);
    s.write_all(&small).expect("small message");
    eventually("the small message at the origin", || {
        (ws.tunnel_bytes() == small.len()).then_some(())
    });
    s.write_all(&ws_frame(2, 5000)).expect("big message");
    // The tunnel is closed at once: the read ends (EOF or reset, not a timeout), and the
    // origin got none of the big message.
    let mut buf = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let r = s.read(&mut buf);
    let timed_out = r
        .as_ref()
        .is_err_and(|e| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    assert!(matches!(r, Ok(0) | Err(_)) && !timed_out, "tunnel still open: {r:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        ws.tunnel_bytes(),
        small.len(),
        "the over-size message must not be forwarded"
    );
    assert_eq!(
        metric(
            &p,
            "palisade_request_refusals_total{reason=\"websocket_message_too_large\"}"
        ),
        1.0
    );
    let ev = eventually("the tunnel's event", || {
        p.events().into_iter().find(|e| e["url"]["path"] == "/chat")
    });
    assert_eq!(ev["event"]["reason"], "websocket_message_too_large", "{ev}");
}

#[test]
fn a_request_head_must_arrive_within_the_header_timeout() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(origin.addr.expect("addr"), "  header_timeout: 600ms\n");
    // Slowloris: a valid head, one byte every 50 ms; it would take 2.5 s.
    let head = b"GET /slowloris HTTP/1.1\r\nHost: a\r\nX-Padding: aaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut s = TcpStream::connect(p.addr).expect("connect");
    let cut = trickle(&mut s, head);
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 256];
    let got = s.read(&mut buf);
    assert!(
        cut || matches!(got, Ok(0) | Err(_)),
        "slowloris got an answer: {:?}",
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(origin.seen_path("/slowloris").is_empty());
    // A connection that sends nothing at all is closed too, well before the keep-alive timeout.
    let started = Instant::now();
    let mut idle = TcpStream::connect(p.addr).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "idle connection closed after {took:?}"
    );
    // A keep-alive client sending its requests promptly is never cut, however long it stays.
    let mut ka = TcpStream::connect(p.addr).expect("connect");
    ka.set_read_timeout(Some(WAIT)).expect("timeout");
    for i in 0..4 {
        assert_eq!(get_on(&mut ka, &format!("/ka-{i}")), 200, "request {i}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(metric(&p, "palisade_connection_refusals_total{reason=\"header_timeout\"}") >= 2.0);
}

#[test]
fn each_address_holds_at_most_its_share_of_connections() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(origin.addr.expect("addr"), "  max_connections_per_ip: 3\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    // A connection from `source`, any address of 127.0.0.0/8 (std cannot bind before connecting).
    let open = |source: &'static str| -> TcpStream {
        rt.block_on(async {
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.bind(format!("{source}:0").parse().expect("addr")).expect("bind");
            let s = sock.connect(p.addr).await.expect("connect");
            let s = s.into_std().expect("std");
            s.set_nonblocking(false).expect("blocking");
            s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
            s
        })
    };
    let mut held: Vec<TcpStream> = (0..3).map(|_| open("127.0.0.1")).collect();
    for (i, s) in held.iter_mut().enumerate() {
        assert_eq!(get_on(s, &format!("/held-{i}")), 200);
    }
    // A fourth connection from the same address is closed without an answer.
    let mut fourth = open("127.0.0.1");
    assert_eq!(get_on(&mut fourth, "/fourth"), 0);
    assert!(origin.seen_path("/fourth").is_empty());
    // Another address is not affected.
    let mut other = open("127.0.0.2");
    assert_eq!(get_on(&mut other, "/other"), 200);
    // Closing one gives its slot back.
    drop(held.pop());
    let again = eventually("a freed slot", || {
        let mut s = open("127.0.0.1");
        (get_on(&mut s, "/again") == 200).then_some(s)
    });
    drop(again);
    assert!(
        metric(
            &p,
            "palisade_connection_refusals_total{reason=\"too_many_connections\"}"
        ) >= 1.0
    );
}

/// `palisade check` on this config: exit status and stderr.
fn check(cfg: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("palisade.yaml"), cfg).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c"])
        .arg(dir.path().join("palisade.yaml"))
        .output()
        .expect("check");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_error_at(err: &str, line: usize, field: &str, says: &str) {
    assert!(
        err.lines()
            .any(|l| l.contains(&format!(":{line}:")) && l.contains(&format!("field `{field}`")) && l.contains(says)),
        "no error for {field} at line {line} saying {says:?}:\n{err}"
    );
}

#[test]
fn check_reports_bad_limits_with_their_place() {
    let base = "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  app: {backends: [\"127.0.0.1:9000\"]}
telemetry: {sink: off}
";
    let (code, err) = check(&format!(
        "{base}routes:
  - name: app
    upstream: app
    limits:
      max_body: 0
limits:
  max_headers: 300
  max_header_bytes: 2MiB
  header_timeout: 10ms
"
    ));
    assert_eq!(code, Some(1), "{err}");
    assert_error_at(&err, 10, "routes[0].limits.max_body", "at least 1 byte");
    assert_error_at(&err, 12, "limits.max_headers", "between 1 and 256");
    assert_error_at(&err, 13, "limits.max_header_bytes", "Pingora's own limit");
    assert_error_at(&err, 14, "limits.header_timeout", "at least 100ms");
    // Connection-level keys are global only, and a typo is an error like anywhere else.
    let (code, err) = check(&format!(
        "{base}routes:
  - name: app
    upstream: app
    limits: {{header_timeout: 1s}}
limits: {{max_bodyy: 1}}
"
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unknown field `header_timeout`"), "{err}");
    assert!(err.contains("unknown field `max_bodyy`"), "{err}");
}

/// Between requests a kept-alive connection is held by Palisade's own wait (not Pingora's
/// request state machine): the next request's first bytes are read there and handed on.
/// Whatever arrives that way must reach the origin whole, be timed like any head, and an idle
/// connection must still be closed after the keep-alive timeout.
#[test]
fn kept_alive_connections_between_requests() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let base = BASE.replace("server:\n", "server:\n  client_keepalive: 1s\n");
    let cfg = config(origin.addr.expect("addr"), "  header_timeout: 600ms\n");
    let p = Proxy::start_with(&format!("{base}{cfg}"), &[("p.yaml", "rules: []\n")], &[]);
    let mut buf = [0u8; 256];

    // A second head larger than the first read of the wait (4 KiB) arrives whole, and so does
    // the body after it.
    let mut ka = TcpStream::connect(p.addr).expect("connect");
    ka.set_read_timeout(Some(WAIT)).expect("timeout");
    assert_eq!(get_on(&mut ka, "/first"), 200);
    let padding = "p".repeat(20_000);
    let second = format!("POST /second HTTP/1.1\r\nHost: a\r\nX-Padding: {padding}\r\nContent-Length: 5\r\n\r\nhello");
    ka.write_all(second.as_bytes()).expect("write");
    let r = Reply {
        text: read_response(&mut ka),
    };
    assert_eq!(r.status(), 200, "{r:?}");
    let seen = origin.seen_path("/second");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get("x-padding").map(String::len), Some(20_000));
    assert_eq!(seen[0].body, b"hello");

    // A request after a pause (the wait parked, then woken by the bytes).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get_on(&mut ka, "/third"), 200);

    // A slow head on a kept-alive connection is cut by the header timeout like a first one.
    let started = Instant::now();
    let cut = trickle(
        &mut ka,
        b"GET /slow-second HTTP/1.1\r\nHost: a\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
    );
    let got = ka.read(&mut buf);
    assert!(cut || matches!(got, Ok(0) | Err(_)), "slow head got an answer: {got:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(origin.seen_path("/slow-second").is_empty());

    // An idle kept-alive connection is closed after `client_keepalive`, not before, counted
    // from its last response (to the second): the wait before "/after-pause" was due to end
    // about 400 ms into the last wait, and must not close the connection then.
    let mut idle = TcpStream::connect(p.addr).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    assert_eq!(get_on(&mut idle, "/before-idle"), 200);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(get_on(&mut idle, "/after-pause"), 200);
    let started = Instant::now();
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "idle keep-alive connection closed after {took:?}"
    );
}

/// Idle keep-alive connections close as soon as a graceful shutdown starts: they hold no
/// request, so there is nothing to wait for during the grace period.
#[test]
fn idle_kept_alive_connections_close_when_shutdown_starts() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let base = BASE.replace("  grace_period: 0s\n", "  grace_period: 10s\n  client_keepalive: 60s\n");
    assert!(base.contains("grace_period: 10s"));
    let cfg = config(origin.addr.expect("addr"), "  header_timeout: 5s\n");
    let p = Proxy::start_with(&format!("{base}{cfg}"), &[("p.yaml", "rules: []\n")], &[]);
    let mut idle = TcpStream::connect(p.addr).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    assert_eq!(get_on(&mut idle, "/before-shutdown"), 200);
    // Let the connection reach its idle wait.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    p.signal("TERM");
    let mut buf = [0u8; 64];
    let got = idle.read(&mut buf);
    let took = started.elapsed();
    assert!(matches!(got, Ok(0)), "the idle connection got {got:?} after {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "closed after {took:?}, not when shutdown started"
    );
}
