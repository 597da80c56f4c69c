//! The response cache against a real origin on loopback: a cacheable page reaches the origin
//! once, revalidates with a conditional request when stale, stale content is served while
//! revalidating and when the origin is down, `Set-Cookie` and `Authorization` stay out of it,
//! `Vary` keeps variants apart, concurrent misses make one origin fetch, purges work, the byte
//! budget evicts, and a banned client is refused even for a cached page.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "correct-horse-battery-staple";
const HOST: &str = "cache.test";

/// A scripted page: the origin answers it with these headers and body; with an `etag`, a
/// matching `If-None-Match` gets a 304.
#[derive(Clone, Default)]
struct Page {
    headers: Vec<(&'static str, String)>,
    body: String,
    etag: Option<&'static str>,
    /// The body ends with this request header's value.
    echo: Option<&'static str>,
    delay: Duration,
}

/// One request as the origin saw it.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: BTreeMap<String, String>,
}

/// An origin serving scripted pages, recording what reached it; `down` makes it close every
/// connection without answering.
#[derive(Clone, Default)]
struct CacheOrigin {
    addr: Option<SocketAddr>,
    pages: Arc<Mutex<HashMap<String, Page>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    down: Arc<AtomicBool>,
}

impl CacheOrigin {
    fn spawn() -> CacheOrigin {
        on_own_runtime(2, |tx| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let origin = CacheOrigin {
                addr: Some(listener.local_addr().expect("addr")),
                ..CacheOrigin::default()
            };
            tx.send(origin.clone()).expect("send");
            while let Ok((stream, _)) = listener.accept().await {
                let o = origin.clone();
                tokio::spawn(async move {
                    let _ = o.serve(stream).await;
                });
            }
        })
    }

    fn page(&self, path: &str, page: Page) {
        self.pages.lock().expect("pages").insert(path.to_string(), page);
    }

    /// Requests that reached the origin for exactly this target.
    fn hits(&self, target: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|s| s.target == target)
            .cloned()
            .collect()
    }

    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut r = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if self.down.load(Ordering::SeqCst) {
                return Ok(());
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let Some(headers) = common::origin::read_headers(&mut r).await? else {
                return Ok(());
            };
            if target == "/healthz" {
                r.get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await?;
                continue;
            }
            let seen = Seen { target, headers };
            self.seen.lock().expect("seen").push(seen.clone());
            let page = self.pages.lock().expect("pages").get(&seen.target).cloned();
            let Some(page) = page else {
                r.get_mut()
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await?;
                continue;
            };
            tokio::time::sleep(page.delay).await;
            let mut head = String::new();
            for (k, v) in &page.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if let Some(etag) = page.etag {
                head.push_str(&format!("etag: {etag}\r\n"));
                if seen.headers.get("if-none-match").is_some_and(|v| v == etag) {
                    let out = format!("HTTP/1.1 304 Not Modified\r\n{head}\r\n");
                    r.get_mut().write_all(out.as_bytes()).await?;
                    continue;
                }
            }
            let mut body = page.body.clone();
            if let Some(h) = page.echo {
                body.push_str(seen.headers.get(h).map_or("", String::as_str));
            }
            let out = format!("HTTP/1.1 200 OK\r\n{head}content-length: {}\r\n\r\n{body}", body.len());
            r.get_mut().write_all(out.as_bytes()).await?;
        }
    }
}

fn page(cache_control: &str, body: &str) -> Page {
    Page {
        headers: vec![("cache-control", cache_control.to_string())],
        body: body.to_string(),
        ..Page::default()
    }
}

/// Palisade with one caching route in front of `origin`, an admin listener, and `extra`
/// top-level config (e.g. `cache:`, `trusted_proxies:`).
fn start(origin: &CacheOrigin, route_cache: &str, extra: &str) -> (Proxy, String) {
    let admin = free_addr();
    let cfg = format!(
        "{extra}admin:\n  address: {admin}\n  token_file: token.txt\npolicies: [p.yaml]\nupstreams:\n  app:\n    backends: [\"{}\"]\nroutes:\n  - name: app\n    upstream: app\n    cache:\n{route_cache}",
        origin.addr.expect("origin addr")
    );
    let p = Proxy::start(&cfg, &[("token.txt", TOKEN), ("p.yaml", "rules: []\n")]);
    eventually("the admin listener", || std::net::TcpStream::connect(admin).ok());
    (p, format!("http://{admin}"))
}

fn get(p: &Proxy, path: &str, headers: &[(&str, &str)]) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client().get(p.url(path)).header("host", HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().expect("request");
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, r.text().expect("body"), h)
}

/// How the cache answered the request with this response's id (telemetry `palisade.cache`).
fn cache_status(p: &Proxy, h: &reqwest::header::HeaderMap) -> String {
    let id = h
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id");
    p.event_for(id)["palisade"]["cache"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

fn purge(admin: &str, body: &str) -> serde_json::Value {
    let r = client()
        .post(format!("{admin}/api/cache/purge"))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .expect("purge");
    assert_eq!(r.status(), 200);
    r.json().expect("json")
}

#[test]
fn a_cacheable_page_reaches_the_origin_once() {
    let origin = CacheOrigin::spawn();
    origin.page("/hit", page("max-age=300", "cached body"));
    let (p, _) = start(&origin, "      {}\n", "");
    let (status, body, h) = get(&p, "/hit", &[]);
    assert_eq!((status, body.as_str()), (200, "cached body"));
    assert_eq!(cache_status(&p, &h), "miss");
    for _ in 0..20 {
        let (status, body, _) = get(&p, "/hit", &[]);
        assert_eq!((status, body.as_str()), (200, "cached body"));
    }
    let (_, _, h) = get(&p, "/hit", &[]);
    assert_eq!(cache_status(&p, &h), "hit");
    assert!(h.get("x-request-id").is_some(), "per-request headers are set on hits");
    assert_eq!(origin.hits("/hit").len(), 1);
    assert_eq!(
        p.metric("palisade_cache_requests_total{route=\"app\",status=\"hit\"}"),
        Some(21.0)
    );
    assert_eq!(
        p.metric("palisade_cache_requests_total{route=\"app\",status=\"miss\"}"),
        Some(1.0)
    );
    // Another query string is another page.
    origin.page("/hit?v=2", page("max-age=300", "second"));
    assert_eq!(get(&p, "/hit?v=2", &[]).1, "second");
    assert_eq!(origin.hits("/hit?v=2").len(), 1);
}

#[test]
fn a_stale_page_is_revalidated_with_its_etag() {
    let origin = CacheOrigin::spawn();
    origin.page(
        "/reval",
        Page {
            etag: Some("\"v1\""),
            ..page("max-age=0, must-revalidate", "revalidated body")
        },
    );
    let (p, _) = start(&origin, "      {}\n", "");
    assert_eq!(get(&p, "/reval", &[]).1, "revalidated body");
    let (status, body, h) = get(&p, "/reval", &[]);
    assert_eq!((status, body.as_str()), (200, "revalidated body"));
    assert_eq!(cache_status(&p, &h), "revalidated");
    let hits = origin.hits("/reval");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].headers.get("if-none-match"), None);
    assert_eq!(hits[1].headers.get("if-none-match").map(String::as_str), Some("\"v1\""));
}

#[test]
fn stale_while_revalidate_answers_from_the_cache_and_refreshes_behind() {
    let origin = CacheOrigin::spawn();
    origin.page(
        "/swr",
        Page {
            etag: Some("\"s1\""),
            ..page("max-age=0, stale-while-revalidate=300", "swr body")
        },
    );
    let (p, _) = start(&origin, "      {}\n", "");
    assert_eq!(get(&p, "/swr", &[]).1, "swr body");
    let (status, body, h) = get(&p, "/swr", &[]);
    assert_eq!((status, body.as_str()), (200, "swr body"));
    assert_eq!(cache_status(&p, &h), "stale_updating");
    // The refresh is a conditional request the client did not wait for.
    eventually("the background revalidation", || {
        let hits = origin.hits("/swr");
        (hits.len() == 2).then_some(())
    });
    assert_eq!(
        origin.hits("/swr")[1].headers.get("if-none-match").map(String::as_str),
        Some("\"s1\"")
    );
}

#[test]
fn stale_if_error_serves_the_stale_page_when_the_origin_is_down() {
    let origin = CacheOrigin::spawn();
    origin.page("/sie", page("max-age=0, stale-if-error=300", "kept body"));
    origin.page("/fresh-only", page("max-age=0", "gone"));
    let (p, _) = start(&origin, "      {}\n", "");
    assert_eq!(get(&p, "/sie", &[]).1, "kept body");
    assert_eq!(get(&p, "/fresh-only", &[]).1, "gone");
    origin.down.store(true, Ordering::SeqCst);
    let (status, body, h) = get(&p, "/sie", &[]);
    assert_eq!((status, body.as_str()), (200, "kept body"));
    assert_eq!(cache_status(&p, &h), "stale");
    // Without a stale-if-error window the failure is the answer.
    assert_eq!(get(&p, "/fresh-only", &[]).0, 502);
}

#[test]
fn set_cookie_responses_are_never_cached() {
    let origin = CacheOrigin::spawn();
    origin.page(
        "/cookie",
        Page {
            headers: vec![
                ("cache-control", "public, max-age=300".into()),
                ("set-cookie", "session=secret".into()),
            ],
            body: "personal".into(),
            ..Page::default()
        },
    );
    let (p, _) = start(&origin, "      {}\n", "");
    for _ in 0..5 {
        let (status, _, h) = get(&p, "/cookie", &[]);
        assert_eq!(status, 200);
        assert_eq!(
            h.get("set-cookie").and_then(|v| v.to_str().ok()),
            Some("session=secret")
        );
    }
    assert_eq!(origin.hits("/cookie").len(), 5);
}

#[test]
fn authorization_requests_bypass_the_cache() {
    let origin = CacheOrigin::spawn();
    origin.page(
        "/private",
        Page {
            echo: Some("authorization"),
            ..page("public, max-age=300", "for ")
        },
    );
    let (p, _) = start(&origin, "      {}\n", "");
    assert_eq!(
        get(&p, "/private", &[("authorization", "Bearer alice")]).1,
        "for Bearer alice"
    );
    let (_, body, h) = get(&p, "/private", &[("authorization", "Bearer bob")]);
    assert_eq!(body, "for Bearer bob");
    assert_eq!(cache_status(&p, &h), "bypass");
    // What an authorized request fetched was not stored for anyone else either.
    assert_eq!(get(&p, "/private", &[]).1, "for ");
    assert_eq!(origin.hits("/private").len(), 3);
}

#[test]
fn vary_keeps_variants_apart() {
    let origin = CacheOrigin::spawn();
    origin.page(
        "/vary",
        Page {
            headers: vec![
                ("cache-control", "max-age=300".into()),
                ("vary", "Accept-Language".into()),
            ],
            body: "lang=".into(),
            echo: Some("accept-language"),
            ..Page::default()
        },
    );
    let (p, _) = start(&origin, "      {}\n", "");
    for _ in 0..3 {
        assert_eq!(get(&p, "/vary", &[("accept-language", "fr")]).1, "lang=fr");
        assert_eq!(get(&p, "/vary", &[("accept-language", "de")]).1, "lang=de");
        assert_eq!(get(&p, "/vary", &[]).1, "lang=");
    }
    assert_eq!(origin.hits("/vary").len(), 3, "one fetch per variant");
}

#[test]
fn concurrent_misses_make_one_origin_fetch() {
    let origin = CacheOrigin::spawn();
    origin.page(
        "/stampede",
        Page {
            delay: Duration::from_millis(400),
            ..page("max-age=300", "once")
        },
    );
    let (p, _) = start(&origin, "      {}\n", "");
    let p = Arc::new(p);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || get(&p, "/stampede", &[]))
        })
        .collect();
    for t in threads {
        let (status, body, _) = t.join().expect("thread");
        assert_eq!((status, body.as_str()), (200, "once"));
    }
    assert_eq!(origin.hits("/stampede").len(), 1);
}

#[test]
fn purge_by_key_and_by_prefix() {
    let origin = CacheOrigin::spawn();
    for path in ["/img/1", "/img/2", "/index"] {
        origin.page(path, page("max-age=300", path));
    }
    let (p, admin) = start(&origin, "      {}\n", "");
    let warm = || {
        for path in ["/img/1", "/img/2", "/index"] {
            assert_eq!(get(&p, path, &[]).1, path);
        }
    };
    warm();
    warm();
    let count = |path| origin.hits(path).len();
    assert_eq!((count("/img/1"), count("/img/2"), count("/index")), (1, 1, 1));

    // The token is needed, as for every admin change.
    let r = client()
        .post(format!("{admin}/api/cache/purge"))
        .body("{\"prefix\":\"cache.test/\"}")
        .send()
        .expect("purge");
    assert_eq!(r.status(), 401);

    assert_eq!(purge(&admin, "{\"key\":\"cache.test/img/1\"}")["purged"], 1);
    warm();
    assert_eq!((count("/img/1"), count("/img/2"), count("/index")), (2, 1, 1));
    assert_eq!(purge(&admin, "{\"prefix\":\"cache.test/img/\"}")["purged"], 2);
    warm();
    assert_eq!((count("/img/1"), count("/img/2"), count("/index")), (3, 2, 1));
    let r = client()
        .post(format!("{admin}/api/cache/purge"))
        .bearer_auth(TOKEN)
        .body("{\"url\":\"x\"}")
        .send()
        .expect("purge");
    assert_eq!(r.status(), 400);
}

#[test]
fn the_byte_budget_evicts() {
    let origin = CacheOrigin::spawn();
    let body = "x".repeat(20 * 1024);
    for i in 0..12 {
        origin.page(&format!("/big/{i}"), page("max-age=300", &body));
    }
    let (p, _) = start(&origin, "      {}\n", "cache:\n  max_size: 64KiB\n");
    for i in 0..12 {
        assert_eq!(get(&p, &format!("/big/{i}"), &[]).1.len(), body.len());
    }
    let stored = p.metric("palisade_cache_stored_bytes").expect("stored bytes");
    assert!(stored > 0.0 && stored <= 65536.0, "stored {stored}");
    assert!(p.metric("palisade_cache_evictions").expect("evictions") >= 9.0);
    // Twelve 20 KiB pages do not fit in 64 KiB: a second round goes back to the origin.
    for i in 0..12 {
        get(&p, &format!("/big/{i}"), &[]);
    }
    let fetched: usize = (0..12).map(|i| origin.hits(&format!("/big/{i}")).len()).sum();
    assert!(fetched >= 12 + 9, "fetched {fetched}");
}

#[test]
fn a_banned_client_is_refused_even_for_a_cached_page() {
    let origin = CacheOrigin::spawn();
    origin.page("/warm", page("max-age=300", "public page"));
    let (p, admin) = start(&origin, "      {}\n", "trusted_proxies: [127.0.0.1]\n");
    let as_client = |ip: &str| get(&p, "/warm", &[("x-forwarded-for", ip)]);
    let r = client()
        .post(format!("{admin}/bans?ip=203.0.113.5&for=10m"))
        .bearer_auth(TOKEN)
        .send()
        .expect("ban");
    assert_eq!(r.status(), 200);
    // Warm the cache from another client, then from the banned one.
    assert_eq!(as_client("198.51.100.1").1, "public page");
    assert_eq!(cache_status(&p, &as_client("198.51.100.1").2), "hit");
    let (status, body, h) = as_client("203.0.113.5");
    assert_eq!(status, 403);
    assert_ne!(body, "public page");
    assert_eq!(cache_status(&p, &h), "bypass");
    assert_eq!(origin.hits("/warm").len(), 1);
}

#[test]
fn a_route_may_store_set_cookie_responses_without_the_cookie() {
    let origin = CacheOrigin::spawn();
    origin.page(
        "/tracked",
        Page {
            headers: vec![
                ("cache-control", "public, max-age=300".into()),
                ("set-cookie", "visitor=abc".into()),
            ],
            body: "same for all".into(),
            ..Page::default()
        },
    );
    let (p, _) = start(&origin, "      cache_set_cookie: true\n", "");
    let (_, body, first) = get(&p, "/tracked", &[]);
    assert_eq!(body, "same for all");
    assert_eq!(cache_status(&p, &first), "miss");
    assert_eq!(
        first.get("set-cookie").and_then(|v| v.to_str().ok()),
        Some("visitor=abc"),
        "the client whose request filled the cache gets its cookie"
    );
    for _ in 0..3 {
        let (status, body, h) = get(&p, "/tracked", &[]);
        assert_eq!((status, body.as_str()), (200, "same for all"));
        assert!(
            h.get("set-cookie").is_none(),
            "one client's cookie is never handed to another"
        );
    }
    assert_eq!(origin.hits("/tracked").len(), 1);
}

#[test]
fn a_route_may_let_authorized_requests_share_public_responses() {
    let origin = CacheOrigin::spawn();
    origin.page("/shared", page("public, max-age=300", "shared"));
    origin.page("/mine", page("max-age=300", "mine"));
    let (p, _) = start(&origin, "      cache_authorized: true\n", "");
    for who in ["Bearer alice", "Bearer bob"] {
        assert_eq!(get(&p, "/shared", &[("authorization", who)]).1, "shared");
        assert_eq!(get(&p, "/mine", &[("authorization", who)]).1, "mine");
    }
    assert_eq!(origin.hits("/shared").len(), 1, "public: stored once");
    assert_eq!(
        origin.hits("/mine").len(),
        2,
        "not public: never stored for authorized requests"
    );
}

#[test]
fn a_response_over_max_object_size_passes_through_uncached() {
    let origin = CacheOrigin::spawn();
    let big = "y".repeat(4096);
    origin.page("/large", page("max-age=300", &big));
    origin.page("/small", page("max-age=300", "small"));
    let (p, _) = start(&origin, "      max_object_size: 1KiB\n", "");
    for _ in 0..3 {
        assert_eq!(get(&p, "/large", &[]).1, big, "the client still gets all of it");
        assert_eq!(get(&p, "/small", &[]).1, "small");
    }
    assert_eq!(origin.hits("/large").len(), 3);
    assert_eq!(origin.hits("/small").len(), 1);
}
