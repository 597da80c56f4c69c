//! Reading config and policy files: YAML syntax, then structure (every section is checked, so
//! one run reports every structural error), then the cross-field checks of `validate.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::error::{Collector, ConfigError, ConfigErrors};
use super::file::{ConfigFile, ListenerSection, PolicyFile, RouteSection, SinkKind, UpstreamSection};
use super::locate::Locator;
use super::validate;

/// The policy compiled in when the configuration names none.
pub const EMBEDDED_DEFAULT_POLICY: &str = include_str!("../../policies/default.yaml");
/// The name under which the embedded policy appears in errors and telemetry.
pub const EMBEDDED_DEFAULT_POLICY_NAME: &str = "<embedded>/policies/default.yaml";

/// Settings given on the command line; they win over the file and survive reloads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    /// Single-pool shortcut: every request goes to this backend.
    pub upstream: Option<SocketAddr>,
    pub policy: Option<PathBuf>,
    /// `stdout`, `off`, or a file path.
    pub telemetry: Option<String>,
    pub metrics: Option<SocketAddr>,
}

/// A policy file as read, with its source text (hashed into the policy version).
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub path: PathBuf,
    pub source: String,
    pub file: PolicyFile,
    pub locator: std::sync::Arc<Locator>,
    /// Text of the list files it references, so their changes change the policy version.
    pub list_text: String,
}

/// A configuration that parsed and validated, ready to compile.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config file, or `None` when running from command-line flags alone.
    pub path: Option<PathBuf>,
    pub config: ConfigFile,
    pub policies: Vec<LoadedPolicy>,
    /// Shadow policies: evaluated beside the live ones, never enforced.
    pub shadow: Vec<LoadedPolicy>,
    /// Every file read, so the reloader can watch them.
    pub files: Vec<PathBuf>,
}

/// Read, parse and validate the configuration and every policy it names.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let (mut config, base, locator, broken) = match path {
        Some(p) => {
            files.push(p.to_path_buf());
            let Some(source) = read(p, &mut errors) else {
                return Err(ConfigErrors(errors));
            };
            let locator = Locator::new(&source);
            let parsed = {
                let mut c = Collector::new(p, &locator, &mut errors);
                parse_sections::<ConfigFile>(&source, &["upstreams"], &mut c)
            };
            let Some(parsed) = parsed else {
                return Err(ConfigErrors(errors));
            };
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (parsed.value, base, locator, parsed.broken)
        }
        None => (ConfigFile::default(), PathBuf::new(), Locator::default(), Vec::new()),
    };
    apply_overrides(&mut config, overrides);
    let cfg_name = path.map_or_else(|| PathBuf::from("<command line>"), Path::to_path_buf);
    // With a broken section, cross-section checks would only echo it; the policies are still
    // read and checked (their route references only when the routes parsed).
    if broken.is_empty() {
        validate::config(&config, &mut Collector::new(&cfg_name, &locator, &mut errors));
    }
    if broken.iter().any(|k| k == "policies" || k == "shadow_policies") {
        return Err(ConfigErrors(errors));
    }
    let check_routes = !broken.iter().any(|k| k == "routes");

    let mut policies = Vec::new();
    let policy_paths: Vec<PathBuf> = match &overrides.policy {
        Some(p) => vec![p.clone()],
        None => config.policies.iter().map(|p| base.join(p)).collect(),
    };
    if policy_paths.is_empty() {
        let source = EMBEDDED_DEFAULT_POLICY.to_string();
        policies.extend(parse_policy(
            PathBuf::from(EMBEDDED_DEFAULT_POLICY_NAME),
            source,
            &mut errors,
        ));
    }
    let read_all =
        |paths: Vec<PathBuf>, out: &mut Vec<LoadedPolicy>, errors: &mut Vec<ConfigError>, files: &mut Vec<PathBuf>| {
            for p in paths {
                files.push(p.clone());
                if let Some(source) = read(&p, errors) {
                    out.extend(parse_policy(p, source, errors));
                }
            }
        };
    read_all(policy_paths, &mut policies, &mut errors, &mut files);
    validate::policies(&config, check_routes, &mut policies, &mut errors, &mut files);
    let mut shadow = Vec::new();
    let shadow_paths = config.shadow_policies.iter().map(|p| base.join(p)).collect();
    read_all(shadow_paths, &mut shadow, &mut errors, &mut files);
    validate::policies(&config, check_routes, &mut shadow, &mut errors, &mut files);

    if errors.is_empty() {
        Ok(Loaded {
            path: path.map(Path::to_path_buf),
            config,
            policies,
            shadow,
            files,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parse and validate one policy file given as text, for tools and tests that work on a
/// policy alone. `routes` are the route names its rules may reference.
pub fn policy_from_str(name: &str, source: &str, routes: &[&str]) -> Result<LoadedPolicy, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let cfg = ConfigFile {
        routes: routes
            .iter()
            .map(|r| RouteSection {
                name: r.to_string(),
                hosts: Vec::new(),
                path_prefix: "/".into(),
                upstream: String::new(),
                preserve_host: true,
                timeouts: Default::default(),
                response_headers: None,
                limits: None,
                matches: Default::default(),
                rewrite: None,
                request_headers: None,
                compression: None,
                cache: None,
            })
            .collect(),
        ..ConfigFile::default()
    };
    let mut policies: Vec<LoadedPolicy> = parse_policy(PathBuf::from(name), source.to_string(), &mut errors)
        .into_iter()
        .collect();
    validate::policies(&cfg, true, &mut policies, &mut errors, &mut files);
    match (errors.is_empty(), policies.pop()) {
        (true, Some(p)) => Ok(p),
        _ => Err(ConfigErrors(errors)),
    }
}

fn parse_policy(path: PathBuf, source: String, errors: &mut Vec<ConfigError>) -> Option<LoadedPolicy> {
    let locator = Locator::new(&source);
    let parsed = parse_sections::<PolicyFile>(&source, &["lists"], &mut Collector::new(&path, &locator, errors))?;
    // A policy with a broken section is not checked further: its references would mislead.
    if !parsed.broken.is_empty() {
        return None;
    }
    let file = parsed.value;
    Some(LoadedPolicy {
        path,
        source,
        file,
        locator: std::sync::Arc::new(locator),
        list_text: String::new(),
    })
}

/// Read a file, recording a whole-file error when it cannot be read.
pub fn read(path: &Path, errors: &mut Vec<ConfigError>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot read file: {e}"),
            });
            None
        }
    }
}

fn apply_overrides(config: &mut ConfigFile, o: &Overrides) {
    if let Some(addr) = o.listen {
        config.listeners = vec![ListenerSection {
            address: addr,
            tls: None,
            redirect_https: false,
            https_port: None,
            h2c: false,
        }];
    }
    if let Some(addr) = o.upstream {
        config.upstreams.clear();
        config.upstreams.insert(
            "default".into(),
            UpstreamSection {
                backends: vec![super::file::BackendSection::Address(addr)],
                selection: Default::default(),
                health_check: None,
                tls: None,
                host: None,
                http2: false,
                h2_streams: 100,
            },
        );
        config.routes = vec![RouteSection {
            name: "default".into(),
            hosts: Vec::new(),
            path_prefix: "/".into(),
            upstream: "default".into(),
            preserve_host: true,
            timeouts: Default::default(),
            response_headers: None,
            limits: None,
            matches: Default::default(),
            rewrite: None,
            request_headers: None,
            compression: None,
            cache: None,
        }];
    }
    match o.telemetry.as_deref() {
        None => {}
        Some("stdout") => config.telemetry.sink = SinkKind::Stdout,
        Some("off") => config.telemetry.sink = SinkKind::Off,
        Some(path) => {
            config.telemetry.sink = SinkKind::File;
            config.telemetry.path = Some(PathBuf::from(path));
        }
    }
    if o.telemetry.is_some() {
        // The command line replaced the sink: a configured NATS section no longer applies.
        config.telemetry.nats = None;
    }
    if let Some(addr) = o.metrics {
        config.metrics = Some(super::file::MetricsSection { address: addr });
    }
}

/// What `parse_sections` could read.
pub struct Parsed<T> {
    /// The document, with broken sections left at their defaults.
    pub value: T,
    /// Top-level keys that did not parse (their errors are recorded).
    pub broken: Vec<String>,
}

/// Deserialize `T` from YAML. When that fails, each top-level section (each item of a list
/// section, each entry of a `split_maps` section) is tried on its own, so every broken section
/// is reported rather than only the first, and the sections that did parse are still returned
/// for the checks that do not depend on the broken ones. `None` when the YAML itself is broken.
pub fn parse_sections<T: DeserializeOwned + Default>(
    source: &str,
    split_maps: &[&str],
    c: &mut Collector<'_>,
) -> Option<Parsed<T>> {
    let value: Value = match serde_yaml::from_str(source) {
        Ok(v) => v,
        Err(e) => {
            let (line, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            c.at(line, col, format!("invalid YAML: {e}"));
            return None;
        }
    };
    if value.is_null() {
        return Some(Parsed {
            value: T::default(),
            broken: Vec::new(),
        });
    }
    if let Ok(t) = serde_path_to_error::deserialize::<_, T>(value.clone()) {
        return Some(Parsed {
            value: t,
            broken: Vec::new(),
        });
    }
    let Value::Mapping(top) = value else {
        c.field("", "expected a mapping of settings at the top level");
        return None;
    };
    let mut good = Mapping::new();
    let mut broken = Vec::new();
    for (k, v) in top {
        let key = match &k {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        let ok = match &v {
            Value::Sequence(items) => items.iter().enumerate().fold(true, |ok, (i, item)| {
                let one = singleton(&k, Value::Sequence(vec![item.clone()]));
                report::<T>(one, &format!("{key}[0]"), &format!("{key}[{i}]"), c) && ok
            }),
            Value::Mapping(entries) if split_maps.contains(&key.as_str()) => {
                entries.iter().fold(true, |ok, (ek, ev)| {
                    let mut m = Mapping::new();
                    m.insert(ek.clone(), ev.clone());
                    report::<T>(singleton(&k, Value::Mapping(m)), "", "", c) && ok
                })
            }
            other => report::<T>(singleton(&k, other.clone()), "", "", c),
        };
        if ok {
            good.insert(k, v);
        } else {
            broken.push(key);
        }
    }
    let value = serde_yaml::from_value(Value::Mapping(good)).unwrap_or_default();
    Some(Parsed { value, broken })
}

fn singleton(key: &Value, v: Value) -> Value {
    let mut m = Mapping::new();
    m.insert(key.clone(), v);
    Value::Mapping(m)
}

/// Deserialize a one-section document and record each of its errors (peel.rs), renaming the
/// path prefix `from` to `to` (a list item tried alone is always item 0). True when it parsed.
fn report<T: DeserializeOwned>(doc: Value, from: &str, to: &str, c: &mut Collector<'_>) -> bool {
    super::peel::report_all::<T>(doc, from, to, c)
}
