//! Configuration: parse (`file.rs`, `load.rs`) → validate (`validate.rs`) → compile (in the
//! modules that own the runtime types). Errors name file, line and field (`error.rs`).

pub mod cache;
pub mod certs;
pub mod error;
pub mod file;
pub mod fleet;
pub mod keyfile;
pub mod limits;
pub mod load;
pub mod locate;
mod moderation;
mod peel;
pub mod types;
pub mod validate;
pub mod waf;

pub use error::{ConfigError, ConfigErrors};
pub use load::{load, Loaded, LoadedPolicy, Overrides};
