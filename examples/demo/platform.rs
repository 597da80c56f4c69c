//! The demo live-streaming platform that `make run` puts behind Palisade
//! (examples/demo_origin.rs; tests/demo.rs starts it in-process on a free port).
//!
//! Paths: `GET /` (and `GET /login`) the stream page with its chat box · `POST /login` (form
//! `username`) sets a random `session` cookie and redirects to `/` · `POST /api/profile` (JSON
//! `display_name`, `bio`; `GET` reads it back) · `POST /api/stream/title` (JSON `title`, announced in the room) ·
//! `GET /api/stream` · `GET /chat` the chat room over WebSocket: every text message is broadcast
//! to everyone in the room as `{"user": .., "message": ..}`, and user `system` speaks now and
//! then · `GET /healthz`. Any other path echoes the request as JSON, as tests/common/origin.rs
//! does, so the demo still shows what Palisade forwards.
//!
//! It believes whatever it receives, as many origins do: keeping abuse out is Palisade's job.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use crate::wire::{self, Incoming};

/// Messages the room holds for a slow reader before it skips ahead.
const ROOM_BACKLOG: usize = 256;
/// Longest accepted username, display name, bio and title, in characters.
const MAX_NAME: usize = 32;
const MAX_TEXT: usize = 500;
/// Largest request body read, in bytes: the API takes small JSON objects.
const MAX_BODY: usize = 64 * 1024;

/// What the room says on its own, in turn, every `system_every`.
const SYSTEM_LINES: &[&str] = &[
    "Welcome to the stream! Be kind in chat.",
    "Reminder: staff read this chat. Abuse gets you removed.",
    "Enjoying the stream? Tell a friend.",
];

/// A running platform.
#[derive(Clone)]
pub struct Platform {
    pub addr: SocketAddr,
}

/// Everything the platform remembers: sessions, the stream title, the room's broadcast channel.
struct Room {
    sessions: Mutex<HashMap<String, String>>,
    /// Saved profiles by username.
    profiles: Mutex<HashMap<String, Value>>,
    title: Mutex<String>,
    say: broadcast::Sender<String>,
    viewers: AtomicUsize,
    /// CSP sources allowing exactly the page's own inline script and style.
    script_hash: String,
    style_hash: String,
}

impl Platform {
    /// Start on `addr` (port 0 for any free port) inside the current tokio runtime; the room's
    /// own `system` message comes every `system_every`.
    pub async fn start(addr: &str, system_every: Duration) -> io::Result<Platform> {
        let listener = TcpListener::bind(addr).await?;
        let (say, _) = broadcast::channel(ROOM_BACKLOG);
        let room = Arc::new(Room {
            sessions: Mutex::new(HashMap::new()),
            profiles: Mutex::new(HashMap::new()),
            title: Mutex::new("Speedrunning, chill vibes".into()),
            say,
            viewers: AtomicUsize::new(0),
            script_hash: csp_hash(SCRIPT),
            style_hash: csp_hash(STYLE),
        });
        let platform = Platform {
            addr: listener.local_addr()?,
        };
        let r = room.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(system_every);
            every.tick().await;
            for line in SYSTEM_LINES.iter().cycle() {
                every.tick().await;
                let viewers = r.viewers.load(Ordering::Relaxed);
                r.announce(&format!("{line} ({viewers} watching)"));
            }
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let room = room.clone();
                tokio::spawn(async move {
                    let _ = room.serve(stream).await;
                });
            }
        });
        Ok(platform)
    }

    /// Start on its own thread and runtime, for synchronous callers.
    pub fn spawn(addr: &str, system_every: Duration) -> io::Result<Platform> {
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = addr.to_string();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let _ = tx.send(Platform::start(&addr, system_every).await);
                std::future::pending::<()>().await;
            });
        });
        rx.recv().map_err(io::Error::other)?
    }
}

/// One request as read off the connection.
struct Request {
    method: String,
    target: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn header_has(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
    }
}

/// An answer to an HTTP request.
struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Response {
    fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    fn error(status: u16, message: &str) -> Response {
        Response::json(status, json!({ "error": message }))
    }
}

impl Room {
    async fn serve(self: Arc<Room>, stream: TcpStream) -> io::Result<()> {
        // Head and body go out in two writes; without this, Nagle holds the body back.
        stream.set_nodelay(true)?;
        let mut conn = BufReader::new(stream);
        while let Some(req) = read_request(&mut conn).await? {
            if req.path() == "/chat" && req.header_has("upgrade", "websocket") {
                return self.chat(conn, &req).await;
            }
            let resp = self.answer(&req);
            write_response(conn.get_mut(), &req, &resp).await?;
            if req.header_has("connection", "close") {
                break;
            }
        }
        Ok(())
    }

    fn answer(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path()) {
            ("GET" | "HEAD", "/healthz") => Response::json(200, json!({ "ok": true })),
            ("GET" | "HEAD", "/" | "/login") => self.page(req),
            ("POST", "/login") => self.login(req),
            ("POST", "/api/profile") => self.profile(req),
            ("GET" | "HEAD", "/api/profile") => match self.user(req) {
                Some(user) => {
                    let saved = self.profiles.lock().ok().and_then(|p| p.get(&user).cloned());
                    Response::json(200, json!({ "user": user, "profile": saved }))
                }
                None => Response::error(401, "sign in first"),
            },
            ("POST", "/api/stream/title") => self.set_title(req),
            ("GET" | "HEAD", "/api/stream") => Response::json(
                200,
                json!({ "title": self.title(), "viewers": self.viewers.load(Ordering::Relaxed) }),
            ),
            (_, "/chat") => Response::error(426, "the chat room speaks WebSocket"),
            _ => echo(req),
        }
    }

    fn user(&self, req: &Request) -> Option<String> {
        let session = req.cookie("session")?;
        self.sessions.lock().ok()?.get(session).cloned()
    }

    fn title(&self) -> String {
        self.title.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Say something in the room as user `system`.
    fn announce(&self, message: &str) {
        // No receiver (an empty room) is not an error worth reporting.
        let _ = self
            .say
            .send(json!({ "user": "system", "message": message }).to_string());
    }

    fn page(&self, req: &Request) -> Response {
        let who = match self.user(req) {
            Some(u) => format!("Signed in as <b>{}</b>.", escape(&u)),
            None => "Not signed in: you can watch, sign in to chat as yourself.".into(),
        };
        let body = PAGE
            .replace("{STYLE}", STYLE)
            .replace("{SCRIPT}", SCRIPT)
            .replace("{WHO}", &who)
            .replace("{TITLE}", &escape(&self.title()));
        // The page brings its own policy: Palisade's default `default-src 'none'` would stop
        // its inline script, and `'unsafe-inline'` would let an injected one run too.
        let mut connect = "'self'".to_string();
        if let Some(host) = req.header("host").filter(|h| is_plain_host(h)) {
            // 'self' covers ws: only in recent browsers; naming the host covers the rest.
            connect.push_str(&format!(" ws://{host} wss://{host}"));
        }
        let csp = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src {connect}; img-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            self.script_hash, self.style_hash
        );
        Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: vec![("content-security-policy", csp)],
            body,
        }
    }

    fn login(&self, req: &Request) -> Response {
        let form = String::from_utf8_lossy(&req.body);
        let username = form
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "username")
            .map(|(_, v)| url_decode(v))
            .unwrap_or_default();
        let username = username.trim();
        let valid = (1..=MAX_NAME).contains(&username.chars().count())
            && username.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Response::error(400, "username: 1 to 32 letters, digits, _ or -");
        }
        let session = format!("{:032x}", fastrand::u128(..));
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(session.clone(), username.to_string());
        }
        let mut resp = Response::json(200, json!({ "user": username }));
        // A browser's form post lands back on the stream page; scripts read the cookie.
        resp.status = 303;
        resp.headers.push(("location", "/".into()));
        resp.headers.push((
            "set-cookie",
            format!("session={session}; Path=/; HttpOnly; SameSite=Lax"),
        ));
        resp
    }

    fn profile(&self, req: &Request) -> Response {
        let Some(user) = self.user(req) else {
            return Response::error(401, "sign in first");
        };
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return Response::error(400, "expected a JSON object");
        };
        let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or("").to_string();
        let (display_name, bio) = (field("display_name"), field("bio"));
        if display_name.chars().count() > MAX_NAME || bio.chars().count() > MAX_TEXT {
            return Response::error(400, "display_name or bio too long");
        }
        let profile = json!({ "display_name": display_name, "bio": bio });
        if let Ok(mut p) = self.profiles.lock() {
            p.insert(user.clone(), profile.clone());
        }
        Response::json(200, json!({ "user": user, "profile": profile }))
    }

    fn set_title(&self, req: &Request) -> Response {
        let Some(user) = self.user(req) else {
            return Response::error(401, "sign in first");
        };
        let title = serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|b| b.get("title").and_then(Value::as_str).map(str::to_string));
        let Some(title) = title.filter(|t| (1..=MAX_TEXT).contains(&t.chars().count())) else {
            return Response::error(400, "expected {\"title\": \"…\"}");
        };
        if let Ok(mut t) = self.title.lock() {
            t.clone_from(&title);
        }
        self.announce(&format!("{user} changed the stream title to: {title}"));
        Response::json(200, json!({ "title": title }))
    }

    /// The chat room, after checking and answering the opening handshake (RFC 6455 §4.2).
    async fn chat(self: Arc<Room>, mut conn: BufReader<TcpStream>, req: &Request) -> io::Result<()> {
        let key = req.header("sec-websocket-key").filter(|k| !k.is_empty());
        let valid = req.method == "GET"
            && req.header_has("connection", "upgrade")
            && req.header("sec-websocket-version") == Some("13");
        let Some(key) = key.filter(|_| valid) else {
            let resp = Response::error(400, "not a WebSocket handshake");
            return write_response(conn.get_mut(), req, &resp).await;
        };
        let user = self
            .user(req)
            .unwrap_or_else(|| format!("guest-{:04}", fastrand::u16(..10_000)));
        // No extension is accepted, whatever the client offers: frames stay uncompressed.
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: {}\r\nserver: demo-origin/1.0\r\n\r\n",
            wire::accept_key(key)
        );
        // Joined before the 101 goes out: a client may speak as soon as it has it.
        let mut heard = self.say.subscribe();
        conn.get_mut().write_all(head.as_bytes()).await?;
        let _viewer = Viewer::new(&self.viewers);
        let welcome = json!({
            "user": "system",
            "message": format!("Hi {user}! Now live: {}", self.title()),
        });
        send(&mut conn, wire::OP_TEXT, welcome.to_string().as_bytes()).await?;

        let mut buf = Vec::with_capacity(4096);
        let mut assembler = wire::Assembler::default();
        loop {
            tokio::select! {
                read = conn.read_buf(&mut buf) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    loop {
                        let incoming = match wire::decode(&buf) {
                            Ok(Some((frame, used))) => {
                                buf.drain(..used);
                                if !frame.masked {
                                    return close(&mut conn, wire::CLOSE_PROTOCOL_ERROR).await;
                                }
                                assembler.push(frame)
                            }
                            Ok(None) => break,
                            Err(e) => Err(e),
                        };
                        match incoming {
                            Err(e) => return close(&mut conn, e.close_code()).await,
                            Ok(Incoming::Text(message)) => {
                                let said = json!({ "user": user, "message": message });
                                let _ = self.say.send(said.to_string());
                            }
                            Ok(Incoming::Ping(payload)) => send(&mut conn, wire::OP_PONG, &payload).await?,
                            Ok(Incoming::Close(code)) => {
                                return close(&mut conn, code.unwrap_or(wire::CLOSE_NORMAL)).await;
                            }
                            // Binary messages have no meaning in this chat; ignoring them is
                            // what many chat servers do.
                            Ok(Incoming::Pending | Incoming::Binary(_) | Incoming::Pong) => {}
                        }
                    }
                }
                said = heard.recv() => match said {
                    Ok(text) => send(&mut conn, wire::OP_TEXT, text.as_bytes()).await?,
                    // A reader that fell behind misses some lines, as in any busy chat.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}

/// Counts a chat participant for as long as it is alive.
struct Viewer<'a>(&'a AtomicUsize);

impl<'a> Viewer<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Viewer(count)
    }
}

impl Drop for Viewer<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn send(conn: &mut BufReader<TcpStream>, opcode: u8, payload: &[u8]) -> io::Result<()> {
    conn.get_mut().write_all(&wire::encode(opcode, payload, None)).await
}

/// Answer or start the closing handshake with `code`, then end the connection.
async fn close(conn: &mut BufReader<TcpStream>, code: u16) -> io::Result<()> {
    let code = if wire::is_sendable_close_code(code) {
        code
    } else {
        wire::CLOSE_PROTOCOL_ERROR
    };
    conn.get_mut().write_all(&wire::encode_close(code, None)).await?;
    conn.get_mut().shutdown().await
}

/// The next request, or `None` when the client closed the connection between requests.
async fn read_request(conn: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if req.header_has("transfer-encoding", "chunked") {
        req.body = read_chunked(conn).await?;
    } else {
        let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if len > MAX_BODY {
            return Err(io::Error::other("request body too large"));
        }
        req.body = vec![0; len];
        conn.read_exact(&mut req.body).await?;
    }
    Ok(Some(req))
}

/// A chunked request body, decoded (extensions and trailers are read and dropped).
async fn read_chunked(conn: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await?;
        let size = line.trim_end().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size.trim(), 16).map_err(io::Error::other)?;
        if size == 0 {
            loop {
                let mut t = String::new();
                if conn.read_line(&mut t).await? == 0 || t.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(io::Error::other("request body too large"));
        }
        let start = body.len();
        body.resize(start + size + 2, 0);
        conn.read_exact(&mut body[start..]).await?;
        body.truncate(start + size);
    }
}

async fn write_response(w: &mut TcpStream, req: &Request, resp: &Response) -> io::Result<()> {
    // `server` and `x-powered-by` are there for Palisade to remove, as the demo shows.
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nserver: demo-origin/1.0\r\nx-powered-by: demo\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).await?;
    if req.method != "HEAD" {
        w.write_all(resp.body.as_bytes()).await?;
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        426 => "Upgrade Required",
        _ => "Other",
    }
}

/// The request as JSON, in the shape tests/common/origin.rs answers with.
fn echo(req: &Request) -> Response {
    let headers: serde_json::Map<String, Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Response::json(
        200,
        json!({ "method": req.method, "target": req.target, "headers": headers }),
    )
}

/// A CSP source (`'sha256-…'`) allowing exactly this inline script or style.
fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", wire::base64(&Sha256::digest(text.as_bytes())))
}

/// A `Host` value safe to repeat in a header: name or address and port, nothing else.
fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `application/x-www-form-urlencoded` value decoding; bad escapes are kept as they are.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Palisade demo stream</title>
<style>{STYLE}</style>
</head>
<body>
<header><span class="live">LIVE</span> <h1 id="title">{TITLE}</h1></header>
<main>
<section class="stream">
  <div class="video">The stream would play here.</div>
  <p>{WHO}</p>
  <form method="post" action="/login">
    <label>Username <input name="username" maxlength="32" required></label>
    <button>Sign in</button>
  </form>
  <form id="profile">
    <label>Display name <input name="display_name" maxlength="32"></label>
    <label>Bio <input name="bio" maxlength="500"></label>
    <button>Save profile</button> <output></output>
  </form>
  <form id="stream-title">
    <label>Stream title <input name="title" maxlength="500" required></label>
    <button>Set title</button> <output></output>
  </form>
</section>
<section class="chat">
  <p id="state">connecting…</p>
  <ul id="log"></ul>
  <form id="say">
    <input id="message" autocomplete="off" maxlength="500" placeholder="Say something nice">
    <button>Send</button>
  </form>
</section>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"#;

const STYLE: &str = "
body { font: 15px system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
header { display: flex; align-items: center; gap: 1em; padding: 0.5em 1em; background: #222; }
h1 { font-size: 1.2em; margin: 0; }
.live { background: #c00; color: #fff; padding: 0.1em 0.5em; border-radius: 3px; font-weight: bold; }
main { display: flex; gap: 1em; padding: 1em; }
.stream { flex: 2; } .chat { flex: 1; display: flex; flex-direction: column; min-width: 18em; }
.video { aspect-ratio: 16 / 9; background: #000; display: grid; place-items: center; color: #666; }
form { margin: 0.7em 0; } label { margin-right: 0.5em; }
#log { list-style: none; padding: 0; margin: 0; height: 28em; overflow-y: auto; background: #1b1b1b; }
#log li { padding: 0.2em 0.5em; } #log .system { color: #8ab; font-style: italic; }
#log b { color: #fc6; } #state { color: #999; margin: 0 0 0.5em; }
";

const SCRIPT: &str = "
const log = document.getElementById('log');
const state = document.getElementById('state');
function add(user, message) {
  const li = document.createElement('li');
  if (user === 'system') li.className = 'system';
  const who = document.createElement('b');
  who.textContent = user + ': ';
  li.append(who, document.createTextNode(message));
  log.append(li);
  log.scrollTop = log.scrollHeight;
}
let ws;
function connect() {
  ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat');
  ws.onopen = () => { state.textContent = 'connected to the chat room'; };
  ws.onmessage = (e) => {
    try { const m = JSON.parse(e.data); add(String(m.user), String(m.message)); } catch (_) {}
  };
  ws.onclose = (e) => { state.textContent = 'disconnected (close code ' + e.code + '); reload to rejoin'; };
}
connect();
document.getElementById('say').onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById('message');
  if (input.value && ws.readyState === WebSocket.OPEN) { ws.send(input.value); input.value = ''; }
};
function explain(status) {
  if (status === 403) return 'refused by Palisade (403)';
  if (status === 429) return 'slow down: throttled by Palisade (429)';
  return status < 300 ? 'saved' : 'error ' + status;
}
for (const [id, path] of [['profile', '/api/profile'], ['stream-title', '/api/stream/title']]) {
  const form = document.getElementById(id);
  form.onsubmit = async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(new FormData(form));
    const out = form.querySelector('output');
    try {
      const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      out.textContent = explain(r.status);
      if (r.ok && id === 'stream-title') document.getElementById('title').textContent = body.title;
    } catch (err) { out.textContent = 'no answer: ' + err; }
  };
}
";
