//! The Core Rule Set tier (request_filter for bodiless requests, the body phase otherwise): the
//! OWASP CRS request rules from Debian's `modsecurity-crs`, run by libmodsecurity3
//! (`engine.rs`), at the paranoia level the policy sets. ModSecurity only detects here
//! (`SecRuleEngine DetectionOnly`, CRS's own blocking evaluation 949 not loaded): every matched
//! rule comes back as a `Match` (rule id, CRS severity, variable, redacted excerpt), the policy
//! weighs it like a built-in finding (`crs:942100` in `rules:` and `exclusions:`) and Palisade
//! adds the points CRS would (critical 5, error 4, warning 3, notice 2) and judges the sum
//! against the CRS threshold. Design notes: docs/waf.md "Core Rule Set tier".

pub mod engine;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use thiserror::Error;

pub use engine::Engine;

use super::Location;

/// The library opened when the policy names none (Debian's `libmodsecurity3`).
pub const DEFAULT_LIBRARY: &str = "libmodsecurity.so.3";
/// Debian `modsecurity-crs`: the rules and their data files.
pub const DEFAULT_RULES_DIR: &str = "/usr/share/modsecurity-crs/rules";
/// Debian `modsecurity-crs`: the setup file (default actions, anomaly points, version).
pub const DEFAULT_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";
/// Paranoia level when the policy sets none.
pub const DEFAULT_PARANOIA: u8 = 1;
/// Inbound anomaly threshold when the policy sets none (CRS's default: one critical match).
pub const DEFAULT_THRESHOLD: u32 = 5;
/// Request body bytes ModSecurity is given at most (the proxy's inspection buffer).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Rule prefix in policy and findings: `crs:942100`.
pub const PREFIX: &str = "crs";

/// Ids of the rules Palisade adds in front of CRS (ModSecurity's range for local rules).
const ID_PARANOIA: u32 = 10_001;
const ID_JSON: u32 = 10_002;
const ID_XML: u32 = 10_003;
/// A body that claims JSON/XML/form but does not parse: reported as a critical finding, since
/// ModSecurity would otherwise see no arguments in it.
pub const ID_BODY_ERROR: u32 = 10_004;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CrsError {
    #[error("cannot load the ModSecurity library {name:?} (Debian: apt-get install libmodsecurity3): {reason}")]
    Library { name: String, reason: String },
    #[error("{0}")]
    Rules(String),
    #[error("{path}: {reason} (Debian: apt-get install modsecurity-crs)")]
    Files { path: String, reason: String },
}

/// What the policy says to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub library: String,
    pub rules_dir: PathBuf,
    pub setup: PathBuf,
    /// 1 to 4.
    pub paranoia: u8,
    /// Rules removed (`action: off`), as inclusive id ranges.
    pub removed: Vec<(u32, u32)>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            library: DEFAULT_LIBRARY.to_owned(),
            rules_dir: PathBuf::from(DEFAULT_RULES_DIR),
            setup: PathBuf::from(DEFAULT_SETUP),
            paranoia: DEFAULT_PARANOIA,
            removed: Vec::new(),
        }
    }
}

/// A loaded rule set and the ids it holds.
pub struct Crs {
    pub engine: Engine,
    /// Every rule id in the loaded files (for checking policy ids).
    pub ids: BTreeSet<u32>,
    pub settings: Settings,
    /// How many rules were loaded.
    pub rules: usize,
}

impl std::fmt::Debug for Crs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crs")
            .field("version", &self.engine.version)
            .field("rules", &self.rules)
            .field("paranoia", &self.settings.paranoia)
            .finish()
    }
}

/// The request rule files, in load order: every `REQUEST-*.conf` but CRS's blocking evaluation
/// (949: Palisade judges the score itself, after the policy weighed each match).
fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, CrsError> {
    let unreadable = |e: std::io::Error| CrsError::Files {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("REQUEST-") && n.ends_with(".conf") && !n.starts_with("REQUEST-949-"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CrsError::Files {
            path: dir.display().to_string(),
            reason: "holds no REQUEST-*.conf rule files".to_owned(),
        });
    }
    Ok(files)
}

/// The ids `id:NNN` of a rules file.
fn ids_in(text: &str, out: &mut BTreeSet<u32>) {
    static ID: once_cell::sync::Lazy<regex::Regex> =
        once_cell::sync::Lazy::new(|| regex::Regex::new(r#"[\s"',]id:'?(\d+)"#).expect("static regex"));
    for c in ID.captures_iter(text) {
        if let Ok(id) = c[1].parse() {
            out.insert(id);
        }
    }
}

/// Load a rule set: the base configuration, the CRS setup, the paranoia level, the request
/// rules, then the removals.
pub fn load(settings: &Settings) -> Result<Crs, CrsError> {
    let files = rule_files(&settings.rules_dir)?;
    if !settings.setup.is_file() {
        return Err(CrsError::Files {
            path: settings.setup.display().to_string(),
            reason: "not found".to_owned(),
        });
    }
    let mut engine = Engine::new(&settings.library)?;
    let pl = settings.paranoia;
    // Detection only: Palisade makes the decision. JSON and XML bodies go to their parsers (as
    // ModSecurity's recommended configuration does); a body that fails to parse is a finding.
    engine.add(&format!(
        "SecRuleEngine DetectionOnly\n\
         SecRequestBodyAccess On\n\
         SecRequestBodyLimit {BODY_LIMIT}\n\
         SecRequestBodyNoFilesLimit {BODY_LIMIT}\n\
         SecRequestBodyLimitAction ProcessPartial\n\
         SecRequestBodyJsonDepthLimit 64\n\
         SecArgumentsLimit 1000\n\
         SecPcreMatchLimit 100000\n\
         SecAuditEngine Off\n\
         SecRule REQUEST_HEADERS:Content-Type \"@rx ^application/(?:[a-z0-9.+-]+\\+)?json\" \
         \"id:{ID_JSON},phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON\"\n\
         SecRule REQUEST_HEADERS:Content-Type \"@rx ^(?:application(?:/soap\\+|/)|text/)xml\" \
         \"id:{ID_XML},phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML\"\n"
    ))?;
    let mut ids = BTreeSet::new();
    let setup = std::fs::read_to_string(&settings.setup).map_err(|e| CrsError::Files {
        path: settings.setup.display().to_string(),
        reason: e.to_string(),
    })?;
    ids_in(&setup, &mut ids);
    let mut rules = engine.add_file(&settings.setup)?;
    rules += engine.add(&format!(
        "SecAction \"id:{ID_PARANOIA},phase:1,pass,nolog,t:none,\
         setvar:tx.paranoia_level={pl},setvar:tx.executing_paranoia_level={pl}\"\n\
         SecRule REQBODY_ERROR \"!@eq 0\" \"id:{ID_BODY_ERROR},phase:2,pass,log,t:none,\
         severity:CRITICAL,msg:'Request body failed to parse',\
         logdata:'Matched Data: %{{reqbody_error_msg}} found within REQUEST_BODY: %{{reqbody_error_msg}}'\"\n"
    ))?;
    for f in &files {
        if let Ok(text) = std::fs::read_to_string(f) {
            ids_in(&text, &mut ids);
        }
        rules += engine.add_file(f)?;
    }
    ids.extend([ID_BODY_ERROR]);
    if !settings.removed.is_empty() {
        let list: Vec<String> = settings
            .removed
            .iter()
            .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
            .collect();
        engine.add(&format!("SecRuleRemoveById {}\n", list.join(" ")))?;
    }
    Ok(Crs {
        engine,
        ids,
        settings: settings.clone(),
        rules,
    })
}

/// Rule sets loaded recently, so validating a policy and compiling it load the files once.
static LOADED: Mutex<Vec<Arc<Crs>>> = Mutex::new(Vec::new());
/// How many loaded rule sets the cache keeps (a reload validates, then compiles).
const CACHE: usize = 2;

/// `load`, through the cache.
pub fn loaded(settings: &Settings) -> Result<Arc<Crs>, CrsError> {
    let mut cache = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.iter().find(|c| c.settings == *settings) {
        return Ok(c.clone());
    }
    let crs = Arc::new(load(settings)?);
    cache.push(crs.clone());
    if cache.len() > CACHE {
        cache.remove(0);
    }
    Ok(crs)
}

/// A selector in policy: `crs` (every CRS rule), `crs:942` (a family: the rule file's
/// number) or `crs:942100` (one rule). Returns the id range it covers.
pub fn selector_range(selector: &str) -> Option<(u32, u32)> {
    if selector == PREFIX {
        return Some((0, u32::MAX));
    }
    let digits = selector.strip_prefix("crs:")?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    if digits.len() == 3 {
        Some((n * 1000, n * 1000 + 999))
    } else {
        Some((n, n))
    }
}

/// Whether `selector` is a CRS selector (as opposed to a built-in id).
pub fn is_selector(selector: &str) -> bool {
    selector == PREFIX || selector.starts_with("crs:")
}

/// Whether `selector` covers the finding `rule` (`crs:942100`).
pub fn selects(selector: &str, rule: &str) -> bool {
    let (Some((lo, hi)), Some(id)) = (
        selector_range(selector),
        rule.strip_prefix("crs:").and_then(|d| d.parse::<u32>().ok()),
    ) else {
        return false;
    };
    (lo..=hi).contains(&id)
}

/// What the CRS tier is given of a request.
#[derive(Debug, Clone, Copy)]
pub struct CrsRequest<'a> {
    pub client_ip: IpAddr,
    pub method: &'a str,
    /// Path and query as ModSecurity expects a request line's target (`uri_for`).
    pub uri: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: Option<&'a [u8]>,
}

/// The request target for ModSecurity from the proxy's normalised (decoded) path and the raw
/// query: the path is percent-encoded again where it must be, so ModSecurity's own decoding
/// sees what the origin would, not a second decoding of it.
pub fn uri_for(path: &str, query: Option<&str>) -> String {
    let mut s = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// One matched rule, as its log line told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// `crs:942100`.
    pub rule: String,
    pub id: u32,
    /// ModSecurity severity (0 emergency … 2 critical, 3 error, 4 warning, 5 notice).
    pub severity: Option<u8>,
    /// ModSecurity's variable: `ARGS:q`, `REQUEST_HEADERS:User-Agent`, `REQUEST_URI`.
    pub variable: String,
    /// A redacted excerpt of the matched value.
    pub excerpt: String,
}

impl Match {
    /// The anomaly points CRS 3.3 adds for this severity (crs-setup.conf's defaults).
    pub fn points(&self) -> u32 {
        match self.severity {
            Some(0..=2) => 5,
            Some(3) => 4,
            Some(4) => 3,
            Some(5) => 2,
            _ => 0,
        }
    }
}

/// The text of a `[tag "value"]` of a log line; the value ends at the next `"] [`.
fn tag<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("[{name} \"");
    let start = line.find(&open)? + open.len();
    let rest = &line[start..];
    let end = rest.find("\"] [").or_else(|| rest.rfind("\"]"))?;
    Some(&rest[..end])
}

/// Parse a ModSecurity log line into a match; the raw line (which holds the whole matched
/// value) is dropped by the caller.
pub fn parse_line(line: &str) -> Option<Match> {
    let id: u32 = tag(line, "id")?.parse().ok()?;
    let severity = tag(line, "severity").and_then(|s| s.parse().ok());
    // `[data "Matched Data: X found within VAR: VALUE"]` (CRS's logdata) names the variable and
    // the value; the operator text `against variable `VAR'` is the fallback.
    let data = tag(line, "data").and_then(|d| d.strip_prefix("Matched Data: "));
    let (matched, variable, value) = match data.and_then(|d| d.split_once(" found within ")) {
        Some((matched, rest)) => {
            let (var, value) = rest.split_once(": ").unwrap_or((rest, ""));
            (matched, var.to_owned(), value)
        }
        None => {
            let var = line
                .split_once("against variable `")
                .and_then(|(_, r)| r.split_once('\''))
                .map(|(v, _)| v.to_owned())
                .unwrap_or_default();
            ("", var, "")
        }
    };
    let at = if matched.is_empty() {
        0
    } else {
        value.find(matched).unwrap_or(0)
    };
    let excerpt = if value.is_empty() {
        String::new()
    } else {
        super::score::excerpt(value.as_bytes(), at)
    };
    Some(Match {
        rule: format!("{PREFIX}:{id}"),
        id,
        severity,
        variable,
        excerpt,
    })
}

/// Run `req` and return what matched (rules Palisade adds for setup never log, so every line
/// is a CRS rule or the body-error rule).
pub fn evaluate(crs: &Crs, req: &CrsRequest<'_>) -> Vec<Match> {
    let lines = off_worker(|| crs.engine.run(req));
    let mut out: Vec<Match> = lines.iter().filter_map(|l| parse_line(l)).collect();
    // One finding per rule and variable (a `multiMatch` rule logs a variable once per
    // transformation that matched).
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| seen.insert((m.id, m.variable.clone())));
    out
}

/// Run `f` (milliseconds of CPU for a request with a body: docs/waf.md "Cost") so that the
/// other requests of this worker thread move to another thread meanwhile instead of waiting:
/// `block_in_place` on Tokio's multi-threaded runtime (Pingora's default, `work_stealing`);
/// a plain call elsewhere (tests, benchmarks, replay, a current-thread runtime).
fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Where a ModSecurity variable points, as the policy's fields name it: `(location, name)`, or
/// `None` for a variable no field names (`TX:…`, `REQUEST_PROTOCOL`). `query_names` tells query
/// arguments from body ones (ModSecurity's `ARGS` holds both).
pub fn field_of(variable: &str, query_names: &[&str]) -> Option<(Location, String)> {
    let (collection, key) = variable.split_once(':').unwrap_or((variable, ""));
    let arg = |name: &str, get: Option<bool>| {
        if let Some(json) = name.strip_prefix("json.") {
            return (Location::JsonString, json.to_owned());
        }
        let in_query = get.unwrap_or_else(|| query_names.iter().any(|q| q == &name));
        (
            if in_query {
                Location::QueryArg
            } else {
                Location::FormField
            },
            name.to_owned(),
        )
    };
    match collection {
        "ARGS" | "ARGS_NAMES" => Some(arg(key, None)),
        "ARGS_GET" | "ARGS_GET_NAMES" => Some(arg(key, Some(true))),
        "ARGS_POST" | "ARGS_POST_NAMES" => Some(arg(key, Some(false))),
        "REQUEST_HEADERS" | "REQUEST_HEADERS_NAMES" => Some((Location::Header, key.to_ascii_lowercase())),
        "REQUEST_COOKIES" | "REQUEST_COOKIES_NAMES" => Some((Location::Cookie, key.to_owned())),
        "REQUEST_URI" | "REQUEST_URI_RAW" | "REQUEST_FILENAME" | "REQUEST_BASENAME" | "REQUEST_LINE" => {
            Some((Location::Path, "path".to_owned()))
        }
        "REQUEST_BODY" | "FILES" | "FILES_NAMES" | "XML" | "MULTIPART_PART_HEADERS" => {
            Some((Location::MultipartField, "body".to_owned()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_cover_ids_and_families() {
        assert!(selects("crs", "crs:942100"));
        assert!(selects("crs:942", "crs:942100"));
        assert!(selects("crs:942100", "crs:942100"));
        assert!(!selects("crs:942100", "crs:942101"));
        assert!(!selects("crs:941", "crs:942100"));
        assert!(!selects("sqli", "crs:942100"));
        assert_eq!(selector_range("crs:94x"), None);
        assert_eq!(selector_range("crs:"), None);
        assert_eq!(selector_range("crs:913"), Some((913_000, 913_999)));
    }

    #[test]
    fn log_lines_parse_without_keeping_the_value() {
        let line = r#"ModSecurity: Warning. detected SQLi using libinjection. [file "/x/REQUEST-942.conf"] [line "46"] [id "942100"] [rev ""] [msg "SQL Injection Attack Detected via libinjection"] [data "Matched Data: sUEnk found within ARGS:q: 1' union select password from users--"] [severity "2"] [ver "OWASP_CRS/3.3.4"] [maturity "0"]"#;
        let m = parse_line(line).expect("parses");
        assert_eq!(m.rule, "crs:942100");
        assert_eq!(m.variable, "ARGS:q");
        assert_eq!(m.points(), 5);
        assert!(
            !m.excerpt.contains("users--"),
            "a short value is never shown whole: {}",
            m.excerpt
        );
        let quoted = r#"ModSecurity: Warning. Matched "Operator `Rx' ..." against variable `ARGS:x' (Value: `"><b>' ) [id "941110"] [data "Matched Data: "><b found within ARGS:x: "><b>"] [severity "2"] [ver "v"]"#;
        let m = parse_line(quoted).expect("parses");
        assert_eq!((m.id, m.variable.as_str()), (941_110, "ARGS:x"));
    }

    #[test]
    fn variables_map_to_policy_fields() {
        assert_eq!(field_of("ARGS:q", &["q"]), Some((Location::QueryArg, "q".into())));
        assert_eq!(field_of("ARGS:q", &[]), Some((Location::FormField, "q".into())));
        assert_eq!(
            field_of("ARGS:json.user.bio", &[]),
            Some((Location::JsonString, "user.bio".into()))
        );
        assert_eq!(
            field_of("REQUEST_HEADERS:User-Agent", &[]),
            Some((Location::Header, "user-agent".into()))
        );
        assert_eq!(
            field_of("REQUEST_COOKIES:sid", &[]),
            Some((Location::Cookie, "sid".into()))
        );
        assert_eq!(field_of("REQUEST_FILENAME", &[]), Some((Location::Path, "path".into())));
        assert_eq!(field_of("TX:foo", &[]), None);
    }

    #[test]
    fn uri_keeps_what_the_origin_sees() {
        assert_eq!(uri_for("/a b/%x", Some("q=1%27")), "/a%20b/%25x?q=1%27");
        assert_eq!(uri_for("/", None), "/");
    }

    /// Real libmodsecurity3 and Debian's CRS (installed by `make setup` and `.ci/run`).
    fn run(crs: &Crs, uri: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<Match> {
        let mut h = http::HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("example.com"));
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        evaluate(
            crs,
            &CrsRequest {
                client_ip: "127.0.0.1".parse().expect("ip"),
                method: if body.is_some() { "POST" } else { "GET" },
                uri,
                headers: &h,
                body,
            },
        )
    }

    #[test]
    fn the_core_rule_set_matches_attacks_and_not_plain_requests() {
        let crs = loaded(&Settings::default()).expect("libmodsecurity3 and modsecurity-crs are installed");
        assert!(crs.rules > 300, "{crs:?}");
        assert!(crs.ids.contains(&942_100) && crs.ids.contains(&913_100));
        let ua = [
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            ),
            ("accept", "text/html"),
        ];
        assert_eq!(run(&crs, "/search?q=hello+world&page=2", &ua, None), vec![]);
        let sqli = run(
            &crs,
            "/search?q=1%27%20union%20select%20password%20from%20users--",
            &ua,
            None,
        );
        assert!(
            sqli.iter().any(|m| m.rule == "crs:942100" && m.variable == "ARGS:q"),
            "{sqli:?}"
        );
        let json = run(
            &crs,
            "/api",
            &[
                ("content-type", "application/json"),
                ("user-agent", "curl/8.0"),
                ("accept", "*/*"),
            ],
            Some(br#"{"cmd":"1; cat /etc/passwd"}"#),
        );
        assert!(
            json.iter().any(|m| m.variable == "ARGS:json.cmd" && m.id / 1000 == 932),
            "{json:?}"
        );
        let broken = run(
            &crs,
            "/api",
            &[("content-type", "application/json"), ("accept", "*/*")],
            Some(b"{\"a\": "),
        );
        assert!(broken.iter().any(|m| m.id == ID_BODY_ERROR), "{broken:?}");
    }

    /// Worker threads share one rule set; each transaction stays on its thread.
    #[test]
    fn concurrent_transactions_on_one_rule_set_agree() {
        let crs = loaded(&Settings::default()).expect("libmodsecurity3 and modsecurity-crs are installed");
        let ua = [(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        )];
        let attack = "/s?q=1%27%20union%20select%20password%20from%20users--&f=..%2F..%2Fetc%2Fpasswd";
        let expected = run(&crs, attack, &ua, None);
        assert!(expected.len() >= 3, "{expected:?}");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..15 {
                        assert_eq!(run(&crs, attack, &ua, None), expected);
                        assert_eq!(run(&crs, "/s?q=shoes&page=2", &ua, None), vec![]);
                    }
                });
            }
        });
    }

    #[test]
    fn a_missing_library_or_rules_dir_is_a_clear_error() {
        let e = load(&Settings {
            library: "libmodsecurity-absent.so.3".into(),
            ..Settings::default()
        })
        .expect_err("no such library");
        assert!(
            matches!(e, CrsError::Library { .. }) && e.to_string().contains("libmodsecurity3"),
            "{e}"
        );
        let e = load(&Settings {
            rules_dir: "/nonexistent/crs".into(),
            ..Settings::default()
        })
        .expect_err("no such directory");
        assert!(e.to_string().contains("/nonexistent/crs"), "{e}");
    }
}
