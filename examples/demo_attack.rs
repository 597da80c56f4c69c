//! `make demo-attack`: a scripted abusive chat user against the running `make run` demo. It
//! signs in, chats through Palisade next to a staff member's client, and explains each step:
//! a clean message delivered, evasive abuse dropped while the connection stays up, an abusive
//! profile refused, repeated abuse leading to probation (429) and a ban (403) that follows
//! the account to a new address, and a message the origin itself sends kept from staff. Then
//! it prints the alerts from the telemetry file and the relevant metrics.
//!
//! `demo_attack [--proxy ADDR] [--origin ADDR] [--metrics ADDR] [--telemetry FILE]`; the defaults
//! are those of deploy/demo/palisade.yaml and the Makefile. Exits 1 when Palisade did not do
//! what the demo expects (for example a build without the moderation stage), 2 when the demo
//! is not running.

#[path = "demo/wire.rs"]
#[allow(dead_code)]
mod wire;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wire::{Client, Event, Handshake, Reply};

/// How long to wait for a message to reach the staff client before calling it not delivered.
const DELIVERY_WAIT: Duration = Duration::from_secs(3);
/// Abusive messages sent at most while waiting for the ban, so a Palisade that never bans
/// does not keep the script going.
const MAX_ABUSE: usize = 20;
/// A browser's user agent: the demo's actors are people, not scripts.
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 (palisade demo-attack)";

/// Evasions of terms on policies/lists/example-terms.txt, each with how it hides the term.
const EVASIONS: &[(&str, &str)] = &[
    ("you are a b.a.d.w.o.r.d", "separators inside the word"),
    ("B4DW0RD!!!", "capitals and leetspeak"),
    // Cyrillic а (U+0430) and о (U+043E) in place of the Latin letters.
    ("total b\u{0430}dw\u{043E}rd", "look-alike (Cyrillic) letters"),
];
/// What the abuser keeps sending once the evasions failed.
const ABUSE: &[&str] = &["jerk", "go   away", "ur an IDIOT", "cruuuud", "l o s e r"];

fn main() {
    let demo = match Demo::from_args() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo-attack: {e}");
            std::process::exit(2);
        }
    };
    match demo.run() {
        Ok(unexpected) if unexpected.is_empty() => {
            println!("\nEverything happened as the demo expects.");
        }
        Ok(unexpected) => {
            println!("\n{} step(s) did not go as expected:", unexpected.len());
            for u in &unexpected {
                println!("  - {u}");
            }
            println!(
                "Is this a Palisade build with the moderation stage, running deploy/demo/palisade.yaml \
                 (`make run`)? Restart it if an earlier run left this session banned."
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("\ndemo-attack: {e}");
            eprintln!("Is the demo running? Start it with `make run` in another terminal.");
            std::process::exit(2);
        }
    }
}

struct Demo {
    proxy: String,
    origin: String,
    metrics: String,
    telemetry: PathBuf,
    /// The abuser's address and the staff member's, as Palisade's trusted local proxy
    /// (127.0.0.1, see `trusted_proxies`) names them in X-Forwarded-For. Fresh ones each run,
    /// from the benchmarking range 198.18.0.0/15, so a ban from an earlier run does not carry over.
    attacker_ip: String,
    staff_ip: String,
}

/// One chat line as a client receives it.
#[derive(Debug, Clone)]
struct Said {
    user: String,
    message: String,
}

/// The staff member's chat client: a thread reads the room, the script watches what arrives.
struct Staff {
    heard: mpsc::Receiver<Option<Said>>,
    log: Vec<Said>,
}

impl Demo {
    fn from_args() -> Result<Demo, String> {
        let mut demo = Demo {
            proxy: "127.0.0.1:8080".into(),
            origin: "127.0.0.1:8081".into(),
            metrics: "127.0.0.1:9100".into(),
            telemetry: PathBuf::from("run/telemetry.jsonl"),
            attacker_ip: format!("198.18.{}.{}", fastrand::u8(1..255), fastrand::u8(1..255)),
            staff_ip: format!("198.19.0.{}", fastrand::u8(1..255)),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--proxy" => demo.proxy = value,
                "--origin" => demo.origin = value,
                "--metrics" => demo.metrics = value,
                "--telemetry" => demo.telemetry = value.into(),
                _ => return Err(format!("unknown option {flag} (see the file's header)")),
            }
        }
        Ok(demo)
    }

    /// Play the scenario; the steps that did not go as expected.
    fn run(&self) -> io::Result<Vec<String>> {
        let mut unexpected = Vec::new();
        let mut expect = |ok: bool, what: &str| {
            println!("  {} {what}", if ok { "ok:" } else { "UNEXPECTED:" });
            if !ok {
                unexpected.push(what.to_string());
            }
        };

        heading("The scene");
        println!(
            "  Palisade {} in front of the demo streaming platform {}.\n  \
             The abuser, 'mallory', connects as {}; a staff member, 'mod-sam', as {}.\n  \
             (Both addresses are named in X-Forwarded-For, which Palisade trusts from 127.0.0.1.)",
            self.proxy, self.origin, self.attacker_ip, self.staff_ip
        );
        let page = self.get("/", &self.attacker_ip, None)?;
        if page.status != 200 {
            return Err(io::Error::other(format!(
                "GET / through Palisade answered {}",
                page.status
            )));
        }

        heading("1. Sign in");
        let session = self.login("mallory", &self.attacker_ip)?;
        let staff_session = self.login("mod-sam", &self.staff_ip)?;
        println!(
            "  POST /login username=mallory -> session cookie {}… ; Palisade counts strikes against\n  \
             this session as well as the address (offenders.identity: cookie:session).",
            &session[..8.min(session.len())]
        );
        let cookie = format!("session={session}");
        let mut staff = Staff::join(self, &format!("session={staff_session}"))?;
        println!("  mod-sam opens the chat room: everything below marked 'staff sees' is what reached staff.");
        let mut chat = self.join_chat(&self.attacker_ip, &cookie)?;
        println!("  mallory opens the chat room (WebSocket /chat, route `chat`).");

        heading("2. A clean message is delivered");
        let clean = "hi all, loving the stream tonight!";
        println!("  mallory says: {clean:?}");
        chat.send_text(clean)?;
        let seen = staff.watch(|s| s.message == clean, DELIVERY_WAIT);
        expect(seen.is_some(), "the clean message reached staff");

        heading("3. Abuse, disguised, is dropped; the connection stays up");
        for (n, (text, how)) in EVASIONS.iter().enumerate() {
            println!("  mallory says: {text:?}   ({how})");
            let delivery = self.say(&mut chat, &mut staff, text, n)?;
            expect(
                delivery == Delivery::DroppedConnectionUp,
                &format!("{text:?} dropped by Palisade, and the next message on the same connection delivered"),
            );
        }
        println!(
            "  Palisade folds case, look-alike letters, leetspeak and separators before matching the\n  \
             demo list, drops the message (rule chat-abuse, action drop) and counts a strike."
        );

        heading("4. An abusive profile is refused");
        let headers = [("cookie", cookie.as_str()), ("content-type", "application/json")];
        let fine = r#"{"display_name": "mallory", "bio": "I speedrun platformers."}"#;
        let r = self.post("/api/profile", &self.attacker_ip, &headers, fine)?;
        println!("  POST /api/profile {fine} -> {}", r.status);
        expect(r.status == 200, "a clean profile update is accepted (200)");
        let abusive = r#"{"display_name": "mallory", "bio": "everyone watching is a L.0.S.E.R"}"#;
        let r = self.post("/api/profile", &self.attacker_ip, &headers, abusive)?;
        println!("  POST /api/profile {abusive} -> {}", r.status);
        expect(
            r.status == 403,
            "the abusive bio is refused (403, rule profile-abuse) before it reaches the origin",
        );

        heading("5. Repeated abuse: strikes, probation, ban");
        println!(
            "  mallory keeps going. After each message, a harmless request from mallory\n  \
             (GET /api/stream) shows where the strikes stand: 200 fine, 429 probation, 403 banned."
        );
        let (mut throttled, mut banned, mut delivered) = (false, false, 0);
        for (n, text) in ABUSE.iter().cycle().take(MAX_ABUSE).enumerate() {
            let delivery = self.say(&mut chat, &mut staff, text, EVASIONS.len() + n)?;
            let probe = self.get("/api/stream", &self.attacker_ip, Some(&cookie))?;
            println!(
                "  mallory says: {text:<14?} -> {delivery}; GET /api/stream -> {}",
                probe.status
            );
            if delivery == Delivery::Delivered {
                delivered += 1;
            }
            if delivered == ABUSE.len() && probe.status == 200 {
                println!(
                    "    every one delivered and nothing counted: this Palisade does not moderate; stopping here."
                );
                break;
            }
            if probe.status == 429 && !throttled {
                throttled = true;
                println!(
                    "    probation: every request from this address or session now gets 429 (Retry-After: {}s),\n    \
                     and each one refused is another strike.",
                    probe.header("retry-after").unwrap_or("?")
                );
            }
            if probe.status == 403 {
                banned = true;
                println!("    banned: 403 (rule repeat-offender-ban) for 2 minutes, longer for each further ban.");
                break;
            }
            if delivery == Delivery::Closed {
                println!("    Palisade closed mallory's chat connection.");
                let probe = self.get("/api/stream", &self.attacker_ip, Some(&cookie))?;
                banned = probe.status == 403;
                throttled |= probe.status == 429;
                break;
            }
        }
        expect(throttled, "mallory was put on probation (429) on the way");
        expect(banned, "mallory is banned (403)");

        heading("6. The ban holds, by address and by account");
        let again = self.open_chat(&self.attacker_ip, Some(&cookie))?;
        let status = handshake_status(&again);
        println!("  mallory reconnects to the chat room -> {status}");
        expect(status == 403, "a banned user's new chat connection is refused (403)");
        let elsewhere = format!("198.19.1.{}", fastrand::u8(1..255));
        let r = self.get("/", &elsewhere, Some(&cookie))?;
        println!(
            "  mallory's session from a new address {elsewhere}: GET / -> {}",
            r.status
        );
        expect(
            r.status == 403,
            "the ban follows the session cookie to another address (403)",
        );
        let bystander = format!("198.19.2.{}", fastrand::u8(1..255));
        let r = self.get("/", &bystander, None)?;
        println!("  someone else, {bystander}, no session: GET / -> {}", r.status);
        expect(r.status == 200, "other viewers are not affected (200)");
        println!("  mallory's first chat connection: {}", chat_state(&mut chat));

        heading("7. What the origin sends is moderated too");
        println!(
            "  Something reaches the origin without passing Palisade (here: a POST straight to\n  \
             {}, as a careless integration might), and the origin announces it in the room.",
            self.origin
        );
        let origin_headers = [("cookie", cookie.as_str()), ("content-type", "application/json")];
        let abusive_title = r#"{"title": "go away, every one of you"}"#;
        let r = wire::http(
            &self.origin,
            "POST",
            "/api/stream/title",
            &origin_headers,
            abusive_title,
        )?;
        println!(
            "  POST {}/api/stream/title {abusive_title} -> {} (origin)",
            self.origin, r.status
        );
        let calm_title = r#"{"title": "Speedrunning, chill vibes"}"#;
        wire::http(&self.origin, "POST", "/api/stream/title", &origin_headers, calm_title)?;
        let seen = staff.watch(|s| s.message.ends_with("Speedrunning, chill vibes"), DELIVERY_WAIT);
        let leaked = seen
            .as_ref()
            .is_some_and(|s| s.iter().any(|m| m.message.contains("every one of you")));
        expect(
            seen.is_some() && !leaked,
            "the origin's abusive announcement was dropped on its way to staff; the next one arrived",
        );

        heading("8. What staff saw");
        let from_mallory: Vec<&Said> = staff
            .log
            .iter()
            .filter(|s| s.user == "mallory" && !s.message.starts_with("(still here"))
            .collect();
        println!(
            "  {} messages in all; mallory's, apart from the '(still here N)' follow-ups:",
            staff.log.len()
        );
        for s in &from_mallory {
            println!("    {:?}", s.message);
        }
        let abuse_seen = from_mallory.iter().any(|s| s.message != clean);
        expect(!abuse_seen, "no abusive message from mallory reached staff");

        heading("9. Telemetry: the alerts (tail of the telemetry file)");
        self.print_alerts(&[&self.attacker_ip, &self.staff_ip, &elsewhere]);

        heading("10. Metrics");
        self.print_metrics();
        Ok(unexpected)
    }

    fn login(&self, user: &str, ip: &str) -> io::Result<String> {
        let r = self.post(
            "/login",
            ip,
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("username={user}"),
        )?;
        r.set_cookie("session")
            .ok_or_else(|| io::Error::other(format!("POST /login answered {} without a session cookie", r.status)))
    }

    fn open_chat(&self, ip: &str, cookie: Option<&str>) -> io::Result<Handshake> {
        let mut headers = vec![("x-forwarded-for", ip), ("user-agent", UA)];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        Client::connect(&self.proxy, "/chat", &headers)
    }

    /// Open the chat room and read its welcome. A connection that ends right after its `101`
    /// is Pingora's upgrade race (cloudflare/pingora#946); like a browser's user, try again.
    fn join_chat(&self, ip: &str, cookie: &str) -> io::Result<Client> {
        for _ in 0..5 {
            let mut c = match self.open_chat(ip, Some(cookie))? {
                Handshake::Open(c) => c,
                Handshake::Refused(r) => {
                    return Err(io::Error::other(format!("the chat room refused {ip}: {}", r.status)))
                }
            };
            match c.recv(DELIVERY_WAIT)? {
                Some(Event::Text(_)) => return Ok(c),
                Some(Event::Closed(_)) => {
                    println!("  (the chat connection ended right after it opened: pingora#946; again)")
                }
                None => return Err(io::Error::other("the chat room sent no welcome")),
            }
        }
        Err(io::Error::other(
            "the chat connection kept ending right after it opened",
        ))
    }

    fn get(&self, path: &str, ip: &str, cookie: Option<&str>) -> io::Result<Reply> {
        let mut headers = vec![("x-forwarded-for", ip), ("user-agent", UA)];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        wire::http(&self.proxy, "GET", path, &headers, "")
    }

    fn post(&self, path: &str, ip: &str, extra: &[(&str, &str)], body: &str) -> io::Result<Reply> {
        let mut headers = vec![("x-forwarded-for", ip), ("user-agent", UA)];
        headers.extend_from_slice(extra);
        wire::http(&self.proxy, "POST", path, &headers, body)
    }

    /// Send `text`, then a harmless follow-up on the same connection: once staff have the
    /// follow-up, everything sent before it has been through Palisade, so whether `text` came
    /// too is known without guessing at timeouts.
    fn say(&self, chat: &mut Client, staff: &mut Staff, text: &str, n: usize) -> io::Result<Delivery> {
        let follow_up = format!("(still here {})", n + 1);
        if chat.send_text(text).and_then(|()| chat.send_text(&follow_up)).is_err() {
            return Ok(Delivery::Closed);
        }
        Ok(match staff.watch(|s| s.message == follow_up, DELIVERY_WAIT) {
            Some(seen) if seen.iter().any(|s| s.message == text) => Delivery::Delivered,
            Some(_) => Delivery::DroppedConnectionUp,
            None => match chat.recv(Duration::from_millis(200)) {
                Ok(Some(Event::Closed(_))) | Err(_) => Delivery::Closed,
                _ => Delivery::Lost,
            },
        })
    }

    /// The last alerts of the telemetry file about this run's clients: refusals, and every
    /// finding of a stage.
    fn print_alerts(&self, clients: &[&str]) {
        println!(
            "  {}, alerts about this run's clients, last 15 (the file has one JSON event per request):",
            self.telemetry.display()
        );
        // The file sink writes in the background; give it a moment to catch up.
        std::thread::sleep(Duration::from_millis(500));
        let text = match std::fs::read_to_string(&self.telemetry) {
            Ok(t) => t,
            Err(e) => {
                println!("  cannot read it: {e} (run `make demo-attack` from the repository root)");
                return;
            }
        };
        let alerts: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"]["kind"] == "alert")
            .filter(|e| e["client"]["ip"].as_str().is_some_and(|ip| clients.contains(&ip)))
            .collect();
        for e in &alerts[alerts.len().saturating_sub(15)..] {
            let time = e["@timestamp"].as_str().unwrap_or("").get(11..19).unwrap_or("");
            let p = &e["palisade"];
            let mut line = format!(
                "  {time} client={} route={} {} {} status={}",
                e["client"]["ip"].as_str().unwrap_or("-"),
                p["route"].as_str().unwrap_or("-"),
                e["event"]["action"].as_str().unwrap_or("-"),
                p["decision"]["rule"].as_str().unwrap_or(""),
                e["http"]["response"]["status_code"],
            );
            if let Some(findings) = p["findings"].as_array() {
                for f in findings {
                    line.push_str(&format!("\n      finding {}", compact(f, 150)));
                }
            }
            println!("{line}");
        }
        if alerts.is_empty() {
            println!("  (no alerts yet)");
        }
    }

    fn print_metrics(&self) {
        println!(
            "  GET http://{}/metrics, the moderation and offender lines:",
            self.metrics
        );
        let text = match wire::http(&self.metrics, "GET", "/metrics", &[], "") {
            Ok(r) => r.body,
            Err(e) => {
                println!("  cannot read the metrics: {e}");
                return;
            }
        };
        let wanted = |l: &&str| {
            l.starts_with("palisade_findings_total")
                || l.starts_with("palisade_active_bans")
                || (l.starts_with("palisade_policy_decisions_total")
                    && ["abuse", "repeat-offender"].iter().any(|w| l.contains(w)))
        };
        for l in text.lines().filter(wanted) {
            println!("  {l}");
        }
    }
}

/// What became of a chat message, as staff saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Delivered,
    /// Not delivered, and the message after it on the same connection was.
    DroppedConnectionUp,
    /// The connection is gone.
    Closed,
    /// Neither it nor the follow-up arrived, and the connection looks open.
    Lost,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Delivery::Delivered => "DELIVERED",
            Delivery::DroppedConnectionUp => "dropped",
            Delivery::Closed => "connection closed",
            Delivery::Lost => "nothing arrived",
        })
    }
}

impl Staff {
    fn join(demo: &Demo, cookie: &str) -> io::Result<Staff> {
        let client = demo.join_chat(&demo.staff_ip, cookie)?;
        let (tx, heard) = mpsc::channel();
        std::thread::spawn(move || {
            let mut client = client;
            loop {
                match client.recv(Duration::from_secs(1)) {
                    Ok(Some(Event::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                        let said = Said {
                            user: v["user"].as_str().unwrap_or("?").to_string(),
                            message: v["message"].as_str().unwrap_or(&t).to_string(),
                        };
                        if tx.send(Some(said)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Ok(Some(Event::Closed(_))) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                }
            }
        });
        Ok(Staff { heard, log: Vec::new() })
    }

    /// Print what reaches staff until a message `until` accepts (returned with those before
    /// it), or `None` after `wait`.
    fn watch(&mut self, until: impl Fn(&Said) -> bool, wait: Duration) -> Option<Vec<Said>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.heard.recv_timeout(left) {
                Ok(Some(s)) => {
                    println!("      staff sees | {}: {}", s.user, s.message);
                    self.log.push(s.clone());
                    let done = until(&s);
                    seen.push(s);
                    if done {
                        return Some(seen);
                    }
                }
                Ok(None) => {
                    println!("      staff's connection closed");
                    return None;
                }
                Err(_) => return None,
            }
        }
    }
}

fn heading(title: &str) {
    println!("\n== {title}");
}

fn handshake_status(h: &Handshake) -> u16 {
    match h {
        Handshake::Open(_) => 101,
        Handshake::Refused(r) => r.status,
    }
}

/// Whether a chat connection is still open, and what it last heard.
fn chat_state(chat: &mut Client) -> String {
    let mut last = None;
    loop {
        match chat.recv(Duration::from_millis(300)) {
            Ok(Some(Event::Text(t))) => last = Some(t),
            Ok(Some(Event::Closed(code))) => {
                return format!(
                    "closed by Palisade (close code {})",
                    code.map_or("none".into(), |c| c.to_string())
                );
            }
            Ok(None) => {
                return format!(
                    "still open (it was accepted before the ban); last heard {}",
                    last.as_deref().map_or("nothing", |l| l)
                )
            }
            Err(e) => return format!("broken: {e}"),
        }
    }
}

/// JSON on one line, cut to `max` characters.
fn compact(v: &Value, max: usize) -> String {
    let s = v.to_string();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}
