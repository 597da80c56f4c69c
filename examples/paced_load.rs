//! An open-loop HTTP/1.1 load generator for the latency step of benches/peers: requests leave at
//! evenly spaced times, whatever the target does, and each latency is counted from the time the
//! request was due, not from when it could be sent (a stalled target cannot hide its queue by
//! slowing the generator down).
//!
//! Why not `h2load --rps`: h2load fires each client's rate timer at most every 10 ms, and the
//! clients' timers start together, so "19,000 req/s over 64 connections" arrives as a burst of
//! about 190 requests in the first few milliseconds of every 10 ms. That measures how fast a
//! proxy drains a burst, not its latency at half load.
//!
//! `paced_load PORT PATH RATE CONNECTIONS SECONDS [WARMUP_SECONDS]` prints one JSON line:
//! requests, errors, rate achieved, latency percentiles in µs and how late the sends were.
//! One thread, `ppoll` with 1 ns timer slack; connections to 127.0.0.1 only, kept alive.
//! With `PACED_LOAD_TRACE=FILE`, each measured request's due time and latency (µs) are written
//! to FILE, to see when the slow ones happened.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long requests still in flight at the end may take before they count as errors.
const DRAIN: Duration = Duration::from_secs(2);
/// Largest response head accepted, bytes.
const MAX_HEAD: usize = 64 * 1024;

struct Conn {
    stream: TcpStream,
    /// When the request this connection sends next (or is waiting on) was due.
    due: Instant,
    busy: bool,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// When each measured request was due, µs after the measurement began (for `--trace`).
    due_us: Vec<u32>,
    send_lag_us: Vec<u32>,
    errors: u64,
}

/// The length of a complete response at the front of `buf`, and whether it was 2xx.
/// `Ok(None)` while more bytes are needed.
fn complete_response(buf: &[u8]) -> Result<Option<(usize, bool)>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
        return if buf.len() > MAX_HEAD {
            Err("response head too large".into())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).ok_or("no status line")?;
    let ok = status.starts_with('2');
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().map_err(|_| "bad content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked responses are not supported".into());
            }
        }
    }
    let total = head_end + length.ok_or("response without content-length")?;
    Ok((buf.len() >= total).then_some((total, ok)))
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn run(port: u16, path: &str, rate: f64, n: usize, seconds: f64, warmup: f64) -> std::io::Result<Tally> {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: paced-load\r\n\r\n");
    let gap = Duration::from_secs_f64(1.0 / rate);
    let interval = gap * n as u32;
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + Duration::from_secs_f64(warmup);
    let end = measure_from + Duration::from_secs_f64(seconds);
    let mut conns = (0..n)
        .map(|i| {
            Ok(Conn {
                stream: connect(port)?,
                due: start + gap * i as u32,
                busy: false,
                buf: Vec::new(),
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut tally = Tally::default();
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(n);
    let mut waiting: Vec<usize> = Vec::with_capacity(n);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let now = Instant::now();
        for c in conns.iter_mut().filter(|c| !c.busy && c.due <= now && c.due < end) {
            if c.due >= measure_from {
                tally.send_lag_us.push(micros(now - c.due));
            }
            match c.stream.write(request.as_bytes()) {
                Ok(k) if k == request.len() => c.busy = true,
                _ => {
                    tally.errors += u64::from(c.due >= measure_from);
                    c.due += interval;
                    c.stream = connect(port)?;
                }
            }
        }
        let busy = conns.iter().filter(|c| c.busy).count();
        if now >= end && (busy == 0 || now >= end + DRAIN) {
            tally.errors += busy as u64;
            return Ok(tally);
        }
        let next_due = conns.iter().filter(|c| !c.busy && c.due < end).map(|c| c.due).min();
        let wake = next_due.unwrap_or(end + DRAIN).min(end + DRAIN);
        let wait = wake.saturating_duration_since(Instant::now());
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as _,
        };
        fds.clear();
        waiting.clear();
        for (i, c) in conns.iter().enumerate().filter(|(_, c)| c.busy) {
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            waiting.push(i);
        }
        // SAFETY: fds is a valid array of fds.len() pollfd; ts outlives the call.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            continue;
        }
        for (p, &i) in fds.iter().zip(&waiting) {
            if p.revents == 0 {
                continue;
            }
            let c = &mut conns[i];
            let failed = loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => break true,
                    Ok(k) => c.buf.extend_from_slice(&chunk[..k]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            };
            let done = Instant::now();
            let outcome = if failed {
                Err(String::new())
            } else {
                complete_response(&c.buf)
            };
            let counted = c.due >= measure_from;
            match outcome {
                Ok(None) => continue,
                Ok(Some((len, ok))) if len == c.buf.len() => {
                    if counted {
                        if ok {
                            tally.latencies_us.push(micros(done - c.due));
                            tally.due_us.push(micros(c.due - measure_from));
                        } else {
                            tally.errors += 1;
                        }
                    }
                }
                // Bytes past the response, a bad response or a closed connection: start again.
                _ => {
                    tally.errors += u64::from(counted);
                    c.stream = connect(port)?;
                }
            }
            c.buf.clear();
            c.busy = false;
            c.due += interval;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| {
        let port: u16 = args.first()?.parse().ok()?;
        let path = args.get(1)?.clone();
        let rate: f64 = args.get(2)?.parse().ok()?;
        let n: usize = args.get(3)?.parse().ok()?;
        let seconds: f64 = args.get(4)?.parse().ok()?;
        let warmup: f64 = args.get(5).map_or(Some(1.0), |w| w.parse().ok())?;
        (rate > 0.0 && n > 0 && seconds > 0.0).then_some((port, path, rate, n, seconds, warmup))
    })();
    let Some((port, path, rate, n, seconds, warmup)) = parsed else {
        eprintln!("usage: paced_load PORT PATH RATE CONNECTIONS SECONDS [WARMUP_SECONDS]");
        std::process::exit(2);
    };
    let mut t = match run(port, &path, rate, n, seconds, warmup) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("paced_load: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(path) = std::env::var("PACED_LOAD_TRACE") {
        // One line per measured request, in the order answers came: due (µs), latency (µs).
        let lines: String = t
            .due_us
            .iter()
            .zip(&t.latencies_us)
            .map(|(d, l)| format!("{d} {l}\n"))
            .collect();
        if let Err(e) = std::fs::write(&path, lines) {
            eprintln!("paced_load: {path}: {e}");
        }
    }
    t.latencies_us.sort_unstable();
    t.send_lag_us.sort_unstable();
    let l = &t.latencies_us;
    println!(
        "{}",
        serde_json::json!({
            "requests": l.len(),
            "errors": t.errors,
            "rps": l.len() as f64 / seconds,
            "p50_us": percentile(l, 0.50),
            "p90_us": percentile(l, 0.90),
            "p99_us": percentile(l, 0.99),
            "p999_us": percentile(l, 0.999),
            "max_us": l.last().copied().unwrap_or(0),
            "send_lag_p99_us": percentile(&t.send_lag_us, 0.99),
        })
    );
}

#[cfg(test)]
mod tests {
    use super::complete_response;

    #[test]
    fn a_response_is_complete_once_its_declared_body_is_there() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(complete_response(&head[..20]), Ok(None), "head not finished");
        let mut buf = head.to_vec();
        assert_eq!(complete_response(&buf), Ok(None), "body missing");
        buf.extend_from_slice(b"hel");
        assert_eq!(complete_response(&buf), Ok(None), "body short");
        buf.extend_from_slice(b"lo");
        assert_eq!(complete_response(&buf), Ok(Some((buf.len(), true))));
    }

    #[test]
    fn status_and_framing_are_read_from_the_head() {
        let refused = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(complete_response(refused), Ok(Some((refused.len(), false))));
        assert!(complete_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(complete_response(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n").is_err());
        assert!(complete_response(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n").is_err());
    }
}
