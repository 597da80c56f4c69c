//! The demo origin `make run` puts behind Palisade: `demo_origin [ADDR]` (default
//! 127.0.0.1:8081). Echoes each request as JSON; see tests/common/origin.rs.

#[path = "../tests/common/origin.rs"]
#[allow(dead_code)]
mod origin;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    match origin::Origin::spawn(&addr) {
        Ok(o) => {
            println!(
                "demo origin listening on http://{}",
                o.addr.map_or(addr, |a| a.to_string())
            );
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
