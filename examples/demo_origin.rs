//! The demo origin `make run` puts behind Palisade: a small live-streaming platform (a stream
//! page, a login, a profile and stream-title API, and a WebSocket chat room), described in
//! examples/demo/platform.rs. `demo_origin [ADDR]`, default 127.0.0.1:8081.

#[path = "demo/platform.rs"]
mod platform;
#[path = "demo/wire.rs"]
#[allow(dead_code)]
mod wire;

use std::time::Duration;

/// How often the chat room's own `system` user speaks: often enough to be seen during a demo.
const SYSTEM_EVERY: Duration = Duration::from_secs(20);

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    match platform::Platform::spawn(&addr, SYSTEM_EVERY) {
        Ok(p) => {
            println!("demo origin (streaming platform) listening on http://{}", p.addr);
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("demo origin: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
}
