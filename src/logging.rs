//! The process log (env_logger, `RUST_LOG`), with Pingora's own debug and trace output left out.
//! At those levels Pingora prints every request header it sends upstream and every body chunk
//! it relays, cookies and `Authorization` included: turning on debug logging to look at
//! Palisade would copy live credentials into the log. `PALISADE_LOG_PINGORA_DEBUG=1` lets them
//! through for a deliberate debugging session on a test system.

use log::{Level, Log, Metadata, Record};

/// Set to `1` to let Pingora's debug and trace records through (they hold request headers and
/// bodies in clear).
pub const PINGORA_DEBUG_ENV: &str = "PALISADE_LOG_PINGORA_DEBUG";

/// The logger every record goes through.
struct Capped {
    inner: env_logger::Logger,
    pingora_debug: bool,
}

/// True for records that may carry request headers or bodies: Pingora's below `info`.
pub fn withheld(target: &str, level: Level, pingora_debug: bool) -> bool {
    !pingora_debug && level > Level::Info && target.starts_with("pingora")
}

impl Log for Capped {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        !withheld(m.target(), m.level(), self.pingora_debug) && self.inner.enabled(m)
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            self.inner.log(r);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Install the logger: `RUST_LOG` as env_logger reads it (default `info`), Pingora capped.
pub fn init() {
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    let pingora_debug = std::env::var(PINGORA_DEBUG_ENV).is_ok_and(|v| v == "1");
    // Fails only if a logger is already installed, and then that one keeps logging.
    if log::set_boxed_logger(Box::new(Capped { inner, pingora_debug })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_debug_is_withheld_unless_asked_for() {
        assert!(withheld("pingora_proxy::proxy_h1", Level::Debug, false));
        assert!(withheld("pingora_core::protocols", Level::Trace, false));
        assert!(!withheld("pingora_proxy::proxy_h1", Level::Info, false));
        assert!(!withheld("pingora_core", Level::Warn, false));
        assert!(!withheld("palisade::enforce", Level::Debug, false));
        assert!(!withheld("pingora_proxy::proxy_h1", Level::Debug, true));
    }
}
