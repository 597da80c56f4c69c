//! HTTP/2 to origins and gRPC through Palisade: a real HTTP/2 client speaks h2c to a listener
//! with `h2c: true`; Palisade speaks h2c (prior knowledge) or h2 over TLS (ALPN) to a real HTTP/2
//! origin that answers gRPC unary and server-streaming calls, with trailers. HTTP/1.1 clients
//! on the same listener, and WebSocket upgrades to an HTTP/2 pool, still work.

mod common;
use common::ws::{WsClient, WsOrigin};
use common::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use openssl::ssl::{AlpnError, SslAcceptor, SslMethod};
use tokio::net::{TcpListener, TcpStream};

/// A gRPC message on the wire: uncompressed flag, big-endian length, payload.
fn frame(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(0);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

/// The messages in a gRPC body.
fn messages(mut body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push(String::from_utf8_lossy(&body[5..5 + len]).into_owned());
        body = &body[5 + len..];
    }
    out
}

/// What the origin saw of one call.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    tls: bool,
    version: http::Version,
    te: Option<String>,
    request: Vec<String>,
}

/// A gRPC origin: `/chat.Greeter/Hello` answers one message, `/chat.Greeter/Countdown` as many
/// messages as the request names, each followed by `grpc-status: 0` trailers; anything else is
/// `grpc-status: 12` (unimplemented).
#[derive(Clone, Default)]
struct GrpcOrigin {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl GrpcOrigin {
    async fn serve<S>(self, io: S, tls: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let Ok(mut conn) = h2::server::handshake(io).await else {
            return;
        };
        while let Some(Ok((req, respond))) = conn.accept().await {
            let me = self.clone();
            tokio::spawn(async move { me.answer(req, respond, tls).await });
        }
    }

    async fn answer(self, req: Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>, tls: bool) {
        let (parts, mut body) = req.into_parts();
        let mut data = Vec::new();
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let request = messages(&data);
        self.calls.lock().expect("calls").push(Call {
            path: parts.uri.path().to_string(),
            tls,
            version: parts.version,
            te: parts.headers.get("te").map(|v| v.to_str().unwrap_or("").to_string()),
            request: request.clone(),
        });
        let replies: Vec<String> = match parts.uri.path() {
            "/chat.Greeter/Hello" => vec![format!("hello, {}", request.first().map_or("", String::as_str))],
            "/chat.Greeter/Countdown" => {
                let n: usize = request.first().and_then(|m| m.parse().ok()).unwrap_or(0);
                (1..=n).rev().map(|i| format!("tick {i}")).collect()
            }
            _ => Vec::new(),
        };
        let status = if replies.is_empty() { "12" } else { "0" };
        let head = Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .body(())
            .expect("head");
        let Ok(mut send) = respond.send_response(head, false) else {
            return;
        };
        for r in &replies {
            // One DATA frame per message: streaming, not one buffered body.
            if send.send_data(frame(r.as_bytes()), false).is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", status.parse().expect("status"));
        trailers.insert("grpc-message", "done".parse().expect("message"));
        let _ = send.send_trailers(trailers);
    }
}

fn self_signed() -> (openssl::x509::X509, openssl::pkey::PKey<openssl::pkey::Private>) {
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let key = openssl::pkey::PKey::from_rsa(rsa).expect("key");
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "grpc.test").expect("cn");
    let name = name.build();
    let mut b = openssl::x509::X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).expect("time"))
        .expect("na");
    b.sign(&key, openssl::hash::MessageDigest::sha256()).expect("sign");
    (b.build(), key)
}

/// Start the origin in plaintext (h2c) and over TLS offering only `h2` by ALPN.
fn spawn_origins(origin: &GrpcOrigin) -> (SocketAddr, SocketAddr) {
    let origin = origin.clone();
    on_own_runtime(1, move |tx| async move {
        let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        tx.send((plain.local_addr().expect("addr"), tls.local_addr().expect("addr")))
            .expect("send");
        let (cert, key) = self_signed();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        acceptor.set_certificate(&cert).expect("cert");
        acceptor.set_private_key(&key).expect("key");
        acceptor.set_alpn_select_callback(|_, offered| {
            openssl::ssl::select_next_proto(b"\x02h2", offered).ok_or(AlpnError::NOACK)
        });
        let acceptor = Arc::new(acceptor.build());
        let o = origin.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = plain.accept().await {
                tokio::spawn(o.clone().serve(s, false));
            }
        });
        while let Ok((s, _)) = tls.accept().await {
            let (o, acceptor) = (origin.clone(), acceptor.clone());
            tokio::spawn(async move {
                let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                    return;
                };
                let Ok(mut s) = tokio_openssl::SslStream::new(ssl, s) else {
                    return;
                };
                if std::pin::Pin::new(&mut s).accept().await.is_ok() {
                    o.serve(s, true).await;
                }
            });
        }
    })
}

/// One gRPC call through Palisade over h2c: the response status, messages and trailers.
async fn call(palisade: SocketAddr, pool: &str, method: &str, message: &str) -> (u16, Vec<String>, HeaderMap) {
    let tcp = TcpStream::connect(palisade).await.expect("connect");
    let (mut client, conn) = h2::client::handshake(tcp).await.expect("h2c handshake with Palisade");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method("POST")
        .uri(format!("http://grpc.test{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-pool", pool)
        .body(())
        .expect("request");
    let (resp, mut send) = client.send_request(req, false).expect("send");
    send.send_data(frame(message.as_bytes()), true).expect("body");
    let resp = resp.await.expect("response");
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    (status, messages(&data), trailers)
}

fn config(plain: SocketAddr, tls: SocketAddr) -> String {
    format!(
        "
upstreams:
  grpc-h2c: {{backends: [\"{plain}\"], http2: true}}
  grpc-h2: {{backends: [\"{tls}\"], http2: true, tls: {{sni: grpc.test, verify: false}}}}
routes:
  - name: h2c
    upstream: grpc-h2c
  - name: h2
    upstream: grpc-h2
    match:
      headers: {{x-pool: {{equals: h2}}}}
"
    )
}

fn start(config: &str) -> Proxy {
    // The shared base has one plaintext listener; this test's gives it h2c.
    let base = BASE.replace("  - address: {LISTEN}\n", "  - address: {LISTEN}\n    h2c: true\n");
    Proxy::start_with(&format!("{base}{config}"), &[], &[])
}

#[test]
fn grpc_unary_and_server_streaming_calls_pass_through_h2c_and_h2_pools_with_trailers() {
    let origin = GrpcOrigin::default();
    let (plain, tls) = spawn_origins(&origin);
    let p = start(&config(plain, tls));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for pool in ["h2c", "h2"] {
        let (status, msgs, trailers) = rt.block_on(call(p.addr, pool, "/chat.Greeter/Hello", "staff"));
        assert_eq!(status, 200, "{pool}");
        assert_eq!(msgs, ["hello, staff"], "{pool}");
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..]),
            "{pool}: {trailers:?}"
        );
        assert_eq!(
            trailers.get("grpc-message").map(|v| v.as_bytes()),
            Some(&b"done"[..]),
            "{pool}"
        );

        let (status, msgs, trailers) = rt.block_on(call(p.addr, pool, "/chat.Greeter/Countdown", "3"));
        assert_eq!(status, 200);
        assert_eq!(msgs, ["tick 3", "tick 2", "tick 1"], "{pool}");
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..]),
            "{pool}"
        );

        let (_, msgs, trailers) = rt.block_on(call(p.addr, pool, "/chat.Greeter/Nope", "x"));
        assert!(msgs.is_empty());
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"12"[..]),
            "{pool}"
        );
    }
    let calls = origin.calls.lock().expect("calls").clone();
    assert_eq!(calls.len(), 6, "{calls:?}");
    for c in &calls {
        assert_eq!(
            c.version,
            http::Version::HTTP_2,
            "the origin was spoken to in HTTP/2: {c:?}"
        );
        assert_eq!(
            c.te.as_deref(),
            Some("trailers"),
            "gRPC's `te: trailers` reaches the origin: {c:?}"
        );
    }
    assert_eq!(calls[0].request, ["staff"]);
    assert_eq!(calls[0].path, "/chat.Greeter/Hello");
    let over_tls: Vec<bool> = calls.iter().map(|c| c.tls).collect();
    assert_eq!(
        over_tls,
        [false, false, false, true, true, true],
        "h2c pool in plaintext, h2 pool over TLS"
    );
}

#[test]
fn an_h2c_listener_still_serves_http1_and_websocket_goes_to_an_http2_pool_in_http1() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let ws = WsOrigin::spawn();
    let p = start(&format!(
        "
upstreams:
  web: {{backends: [\"{}\"]}}
  chat: {{backends: [\"{}\"], http2: true}}
routes:
  - name: web
    upstream: web
  - name: chat
    path_prefix: /chat
    upstream: chat
",
        origin.addr.expect("addr"),
        ws.addr
    ));
    let r = client()
        .get(p.url("/page"))
        .send()
        .expect("HTTP/1.1 through an h2c listener");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    let mut c = WsClient::connect(p.addr, "/chat", "");
    c.send_text("hello room");
    eventually("the WebSocket origin receives the message", || {
        ws.received_texts().contains(&"hello room".to_string()).then_some(())
    });
    assert!(
        ws.heads().iter().all(|h| h.starts_with("GET /chat HTTP/1.1")),
        "{:?}",
        ws.heads()
    );
}

#[test]
fn an_http1_client_on_an_h2c_listener_is_still_held_to_the_header_timeout() {
    use std::io::{Read, Write};
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(&format!("limits:\n  header_timeout: 300ms\n{}", single_pool(&origin)));
    let mut s = std::net::TcpStream::connect(p.addr).expect("connect");
    // Enough bytes to rule out the HTTP/2 preface, then a head that never ends.
    s.write_all(b"GET /slowloris HTTP/1.1\r\nHost: a\r\nX-A: b\r\n")
        .expect("write");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "the unfinished head got an answer"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    eventually("the header timeout is counted", || {
        p.metric("palisade_connection_refusals_total{reason=\"header_timeout\"}")
            .filter(|n| *n >= 1.0)
    });
    assert!(origin.seen_path("/slowloris").is_empty());
}
