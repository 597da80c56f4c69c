//! WebSocket chat messages per second through Palisade with moderation on and off
//! (docs/performance.md, "WebSocket moderation through the proxy").
//!
//! `ws_moderation_load PALISADE_BINARY [MESSAGES] [ROUNDS]` starts, on 127.0.0.1 and ports picked
//! at run time, the demo platform's chat room (examples/demo/platform.rs: every text message is
//! broadcast back to the room as `{"user": …, "message": …}`) and, in turn, Palisade in front of
//! it with two policies:
//!
//! - `off`: no `moderation:` section;
//! - `on`: one rule judging `client_messages` and `origin_messages` with action `mask` against a
//!   10,000-entry list (the one `benches/moderate.rs` generates, plus a few real terms).
//!
//! One client sends MESSAGES chat lines of about 200 bytes, in windows of [`WINDOW`] (well under
//! the room's backlog), and waits for each window's broadcasts to come back through the proxy:
//! every message crosses Palisade twice (client→origin, then origin→client), and with moderation
//! on both crossings are judged. The rounds alternate `off` and `on`. Printed per round and as
//! medians: messages per second (wall clock, round trips) and Palisade's CPU time per message
//! (utime+stime of the whole process from `/proc/PID/stat`, all threads, over the round), which
//! is what to compare on a shared, busy machine.

#[path = "../benches/support/moderation_chat.rs"]
mod chat;
#[path = "demo/platform.rs"]
mod platform;
#[path = "demo/wire.rs"]
#[allow(dead_code)]
mod wire;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat::{terms, CHAT};
use wire::{Client, Event, Handshake};

/// Messages in flight at once: far below the room's 256-message backlog, so nothing is skipped.
const WINDOW: usize = 64;
/// Longest wait for one broadcast before the run is declared broken.
const WAIT: Duration = Duration::from_secs(10);

/// About 200 bytes of chat, starting at line `seed`.
fn message(seed: usize) -> String {
    let mut msg = String::new();
    let mut i = seed;
    while msg.len() < 190 {
        if !msg.is_empty() {
            msg.push(' ');
        }
        msg.push_str(CHAT[i % CHAT.len()]);
        i += 5;
    }
    msg
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// CPU time (utime + stime, every thread) of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

struct Palisade {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Palisade {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_palisade(bin: &Path, dir: &Path, origin: SocketAddr, moderation: bool) -> Result<Palisade, String> {
    let addr = free_port().map_err(|e| e.to_string())?;
    let config = format!(
        "server:\n  threads: 1\nlisteners:\n  - address: {addr}\ntelemetry:\n  sink: file\n  path: {dir}/telemetry.jsonl\n\
         upstreams:\n  chat:\n    backends: [\"{origin}\"]\nroutes:\n  - name: chat\n    upstream: chat\n\
         policies: [policy.yaml]\n",
        dir = dir.display()
    );
    let policy = if moderation {
        "moderation:\n  lists:\n    abuse: {file: abuse.txt}\n  rules:\n    - id: chat-abuse\n      lists: [abuse]\n      \
         routes: [chat]\n      in: [client_messages, origin_messages]\n      action: mask\n      strike: false\n"
    } else {
        "rules: []\n"
    };
    let write = |name: &str, text: &str| fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"));
    write("palisade.yaml", &config)?;
    write("policy.yaml", policy)?;
    write("abuse.txt", &terms(10_000))?;
    let log = fs::File::create(dir.join(if moderation { "on.log" } else { "off.log" })).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .args(["run", "-c"])
        .arg(dir.join("palisade.yaml"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    let mut p = Palisade { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Err(format!("palisade exited with {status}; see {}", dir.display()));
        }
        if Instant::now() > deadline {
            return Err("palisade did not listen within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(p)
}

struct Round {
    rate: f64,
    cpu_us: f64,
    masked: usize,
}

/// Send `messages` through the proxy and wait for all their broadcasts.
fn round(p: &Palisade, messages: usize) -> Result<Round, String> {
    let addr = p.addr.to_string();
    let mut client = match Client::connect(&addr, "/chat", &[]).map_err(|e| e.to_string())? {
        Handshake::Open(c) => c,
        Handshake::Refused(r) => return Err(format!("handshake refused with {}", r.status)),
    };
    // The room's welcome line.
    client.recv(WAIT).map_err(|e| e.to_string())?;
    let lines: Vec<String> = (0..CHAT.len()).map(message).collect();
    // Warm up (connection pools, automaton pages) outside the measurement.
    exchange(&mut client, &lines, WINDOW.min(messages))?;
    let cpu0 = cpu_seconds(p.child.id()).ok_or("no /proc stat for palisade")?;
    let t0 = Instant::now();
    let masked = exchange(&mut client, &lines, messages)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(p.child.id()).ok_or("no /proc stat for palisade")? - cpu0;
    let _ = client.close();
    Ok(Round {
        rate: messages as f64 / wall,
        cpu_us: cpu * 1e6 / messages as f64,
        masked,
    })
}

/// Send `n` messages in windows and read their broadcasts; returns how many came back masked.
fn exchange(client: &mut Client, lines: &[String], n: usize) -> Result<usize, String> {
    let mut sent = 0;
    let mut masked = 0;
    while sent < n {
        let batch = WINDOW.min(n - sent);
        for k in 0..batch {
            client
                .send_text(&lines[(sent + k) % lines.len()])
                .map_err(|e| e.to_string())?;
        }
        for _ in 0..batch {
            match client.recv(WAIT).map_err(|e| e.to_string())? {
                Some(Event::Text(t)) => masked += usize::from(t.contains('*')),
                Some(Event::Closed(code)) => return Err(format!("connection closed ({code:?})")),
                None => return Err("a broadcast did not come back in time".into()),
            }
        }
        sent += batch;
    }
    Ok(masked)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(bin) = args.next() else {
        eprintln!("usage: ws_moderation_load PALISADE_BINARY [MESSAGES] [ROUNDS]");
        std::process::exit(2);
    };
    let messages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    if let Err(e) = run(Path::new(&bin), messages, rounds) {
        eprintln!("ws_moderation_load: {e}");
        std::process::exit(1);
    }
}

fn run(bin: &Path, messages: usize, rounds: usize) -> Result<(), String> {
    let origin = platform::Platform::spawn("127.0.0.1:0", Duration::from_secs(24 * 3600))
        .map_err(|e| format!("demo platform: {e}"))?;
    let avg = (0..CHAT.len()).map(|i| message(i).len()).sum::<usize>() / CHAT.len();
    println!("{messages} messages of about {avg} bytes per round, {rounds} rounds per setting, window {WINDOW}");
    let mut results: [(Vec<f64>, Vec<f64>); 2] = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for r in 0..rounds {
        // Alternate which setting goes first, so drifting machine load hits both alike.
        let order = if r % 2 == 0 { [false, true] } else { [true, false] };
        for moderation in order {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let p = start_palisade(bin, dir.path(), origin.addr, moderation)?;
            let res = round(&p, messages)?;
            let name = if moderation { "on " } else { "off" };
            println!(
                "round {} moderation {name}: {:>8.0} msgs/s, {:>6.2} µs Palisade CPU per message, {} masked",
                r + 1,
                res.rate,
                res.cpu_us,
                res.masked
            );
            let slot = &mut results[usize::from(moderation)];
            slot.0.push(res.rate);
            slot.1.push(res.cpu_us);
        }
    }
    let [off, on] = results;
    let (off_rate, off_cpu) = (median(off.0), median(off.1));
    let (on_rate, on_cpu) = (median(on.0), median(on.1));
    println!("median moderation off: {off_rate:.0} msgs/s, {off_cpu:.2} µs CPU per message");
    println!("median moderation on:  {on_rate:.0} msgs/s, {on_cpu:.2} µs CPU per message");
    println!(
        "moderation on/off: rate {:.2}x, CPU per message {:+.2} µs ({:.2}x)",
        on_rate / off_rate,
        on_cpu - off_cpu,
        on_cpu / off_cpu
    );
    Ok(())
}
