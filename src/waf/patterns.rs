//! Pattern detectors of the WAF tier (request-inspection phase) for the classes that need no
//! grammar: path traversal and local file inclusion, remote file inclusion, OS command injection,
//! PHP/Java/Node code-injection markers, server-side template injection, prototype pollution,
//! NUL and control bytes, and scanner signatures. All read the lowercased, whitespace-collapsed
//! view unless noted.

use super::{Hits, Location, View};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;
use std::sync::OnceLock;

fn build_ac(pats: &[&str]) -> AhoCorasick {
    // Constant patterns: failure is a programming error that every test would catch.
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostFirst)
        .build(pats)
        .unwrap_or_else(|e| panic!("WAF pattern automaton: {e}"))
}

/// Compiles in ASCII mode: Unicode `\b` would push the regex crate off its lazy DFA onto the
/// much slower PikeVM, and the views are lowercased ASCII where it matters.
fn build_re(p: &str) -> Regex {
    Regex::new(&format!("(?-u){p}")).unwrap_or_else(|e| panic!("WAF pattern {p}: {e}"))
}

macro_rules! lazy {
    ($name:ident, $ty:ty, $init:expr) => {
        fn $name() -> &'static $ty {
            static CELL: OnceLock<$ty> = OnceLock::new();
            CELL.get_or_init(|| $init)
        }
    };
}

/// Scanner product names as they appear in their default User-Agent strings.
const SCANNER_UAS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nmap scripting engine",
    "nmap nse",
    "masscan",
    "zgrab",
    "gobuster",
    "dirbuster",
    "wpscan",
    "acunetix",
    "nessus",
    "openvas",
    "nuclei",
    "w3af",
    "havij",
    "fimap",
    "wfuzz",
    "ffuf",
    "feroxbuster",
    "netsparker",
    "appscan",
    "arachni",
    "skipfish",
    "zmeu",
    "morfeus",
    "jorgee",
    "commix",
    "whatweb",
    "xsstrike",
    "dirb/",
    "(dirb",
    "brutus",
    "hydra",
    "medusa",
    "paros",
    "webinspect",
    "qualysguard",
    "jaascois",
    "zollard",
    "sf-scan",
    "bsqlbf",
    "pangolin",
    "grabber",
    "teh forest lobster",
    "mysqloit",
    "webshag",
    "uniscan",
    "joomscan",
    "droopescan",
    "cmsmap",
    "nmap",
    "fuzz faster u fool",
    "; dirb)",
    "dirb ",
    "burpcollaborator",
    "interactsh",
    "zap/",
    "owasp zap",
    "zaproxy",
];

/// Paths that automated probes ask for; weak signals (notice) because real sites have some.
const SCANNER_PATHS: &[&str] = &[
    "/wp-admin",
    "/wp-login.php",
    "/xmlrpc.php",
    "/phpmyadmin",
    "/pma/",
    "/myadmin",
    "/cgi-bin/",
    "/manager/html",
    "/actuator",
    "/server-status",
    "/.ds_store",
    "/boaform",
    "/hnap1",
    "/solr/admin",
    "/vendor/phpunit",
    "/administrator/",
    "/admin.php",
    "/shell.php",
    "/config.php",
    "/setup.php",
    "/install.php",
    "/phpinfo",
    "/console/",
    "/.aws/",
    "/.svn",
    "/.hg/",
    "/owa/auth",
    "/autodiscover",
];

/// Files whose mere request is an attack (CRS restricted files / LFI targets).
const LFI_FILES: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/sudoers",
    "etc/crontab",
    "etc/mysql/my.cnf",
    "etc/apache2/",
    "etc/httpd/",
    "etc/nginx/",
    "proc/self/",
    "proc/version",
    "proc/cpuinfo",
    "proc/1/",
    "win.ini",
    "boot.ini",
    "system.ini",
    "windows/system32",
    "windows\\system32",
    "web-inf/web.xml",
    "web-inf/classes",
    "meta-inf/manifest",
    ".htaccess",
    ".htpasswd",
    ".ssh/id_",
    ".ssh/authorized_keys",
    ".bash_history",
    ".git/config",
    ".git/head",
    ".env",
    "wp-config.php",
    "/var/log/",
    "/var/www/",
    "/root/",
    "localsettings.php",
    "configuration.php",
];

lazy!(scanner_ua_ac, AhoCorasick, build_ac(SCANNER_UAS));
lazy!(scanner_path_ac, AhoCorasick, build_ac(SCANNER_PATHS));
lazy!(lfi_ac, AhoCorasick, build_ac(LFI_FILES));
/// Separator (or the value's start), optional grouping and an optional `/bin/`-style prefix.
const RCE_PREFIX: &str = r"(?:[;|`\n]|&&?|\$\(|\$\{ifs\}|^)\s*(?:\(|\{)?\s*(?:/(?:usr/)?(?:s?bin)/)?";
lazy!(
    rce_unix_re,
    Regex,
    build_re(&format!(
        "{RCE_PREFIX}(?:{strong}){strong_tail}|{RCE_PREFIX}(?:{weak}){weak_tail}",
        // Words that are commands and little else: bare, or with any argument.
        strong = r"(?:whoami|uname|wget|curl|ncat|netcat|nc|bash|zsh|ksh|sh|dash|python[23]?|perl|ruby|php|lua|ifconfig|nslookup|telnet|tftp|chmod|chown|mkfifo|crontab|nohup|base64|xterm|useradd|killall|pkill|xargs|printenv|systemctl|busybox|socat|sudo|rm|id|ls|ps|getent)\b",
        strong_tail = r"(?:\s*$|\s*[;|&`<>$)}]|\s+[-/~$.'\x22\d]|\s+[\w.:-]+\s*(?:$|[;|&`<>])|\s+[a-z]+://)",
        // English words that are also commands: only with a shell-looking argument or redirect.
        weak =
            r"(?:cat|sleep|ping|echo|dig|host|head|tail|touch|find|awk|sed|more|less|kill|who|su|passwd|mv|cp|env)\b",
        weak_tail = r"(?:\s*[;|&`<>$)}]|\s+[-/~$.'\x22\d]|\s+\w+\s*[;|&`<>]|\s+[a-z]+://)",
    ))
);
lazy!(
    rce_strong_re,
    Regex,
    build_re(concat!(
        r"/dev/(?:tcp|udp)/|\bbash -i\b|\bnc(?:at)? -[a-z]*e\b|/bin/(?:ba|z|k|da)?sh\b|\$\{ifs\}|\$ifs\b|",
        r"\b(?:wget|curl) (?:-[a-z]+ )*\S*https?://\S+ ?(?:\||;|-o|&&)|\bsh -c ['\x22]|\bchmod \+x\b|\bpython[23]? -c ['\x22]|",
        r"\bperl -e ['\x22]|\bphp -r ['\x22]|\bcat /etc/|\$\((?:whoami|id|uname|cat|curl|wget)\b|`(?:whoami|id|uname|cat|curl|wget|ls)\b"
    ))
);
lazy!(
    rce_windows_re,
    Regex,
    build_re(concat!(
        r"\bcmd(?:\.exe)?\s*/[ck]\b|\bpowershell(?:\.exe)?\s+(?:-[a-z]+|iex|invoke-)|\bpwsh\s+-|\biex\s*\(|",
        r"invoke-(?:expression|webrequest)|downloadstring\(|\bcertutil(?:\.exe)?\s+-urlcache|\bbitsadmin\s+/transfer|",
        r"\bmshta(?:\.exe)?\s|\brundll32(?:\.exe)?\s|\bregsvr32(?:\.exe)?\s|\bwmic\s+(?:process|os)\b|",
        r"(?:[;|&`]|^)\s*(?:net\s+(?:user|localgroup)|ipconfig(?:\s|$)|systeminfo|whoami|tasklist|type\s+c:|dir\s+c:|ver(?:\s*$|\s*[;&|]))"
    ))
);
lazy!(
    php_re,
    Regex,
    build_re(concat!(
        r"<\?php|<\?=|\b(?:base64_decode|shell_exec|passthru|proc_open|popen|phpinfo|gzinflate|str_rot13|create_function|",
        r"call_user_func(?:_array)?|file_put_contents|file_get_contents|move_uploaded_file|pcntl_exec|fsockopen|assert|",
        r"preg_replace|unserialize|highlight_file|show_source|php_uname|getcwd)\s*\(|",
        r"(?:^|[^a-z_.])(?:eval|system|exec|include|require|include_once|require_once)\((?:\s*['\x22$]|[a-z_]+\()|",
        r"\$_(?:get|post|request|cookie|server|files|env)\[|\bo:\d+:\x22[a-z_\\]+\x22:\d+:\{|\ba:\d+:\{[si]:\d"
    ))
);
lazy!(
    java_re,
    Regex,
    build_re(concat!(
        r"runtime\s*\.\s*getruntime|java\.lang\.(?:runtime|processbuilder|system|class|reflect)|processbuilder\s*\(|",
        r"class\.forname\s*\(|\.getclass\(\)\s*\.|javax\.script|scriptenginemanager|#_memberaccess|@java\.lang|",
        r"%\{\s*\(?#|\$\{\s*#|ognl|class\.module\.classloader|xwork\.|freemarker\.template\.utility|",
        r"org\.apache\.commons\.collections|java\.beans\.xmldecoder|^ro0ab|\baced0005|\bjdbc:"
    ))
);
lazy!(
    node_re,
    Regex,
    build_re(concat!(
        r"child_process|process\.(?:mainmodule|binding|dlopen|kill\()|global\.process|",
        r"require\s*\(\s*['\x22`](?:child_process|vm|fs|net|os|cluster|worker_threads)['\x22`]\s*\)\s*\.|",
        r"require\s*\(\s*['\x22`](?:child_process|vm)|this\.constructor\.constructor|constructor\.constructor\s*\(|",
        r"\bnew\s+function\s*\(\s*['\x22`]|\bfunction\s*\(\s*\)\s*\{\s*return\s+process\b|_\$\$nd_func\$\$_"
    ))
);
lazy!(
    ssti_re,
    Regex,
    build_re(concat!(
        r"(?:\{\{|\$\{|#\{|\*\{|@\{|<%=?|\{%|\[\[)\s*-?\d+\s*[*+/-]\s*-?\d+\s*(?:\}\}|\}|%>|%\}|\]\])|",
        r"__(?:class|mro|subclasses|globals|builtins|init|import|base|getattribute)__|",
        r"\{\{\s*(?:config|self|request|cycler|joiner|namespace|lipsum|url_for|get_flashed_messages)\b|",
        r"\{%\s*(?:import|include|set|for|if|debug)\b|<#assign|#set\s*\(\s*\$|\$\{\s*(?:t\(|new\s)|\|\s*attr\s*\(|",
        r"\{\{[^}]{0,60}\|\s*(?:safe|e|attr|join|map|select)\b[^}]{0,60}(?:__|popen|os\.|system)"
    ))
);

pub(crate) fn warm_up() {
    scanner_ua_ac();
    scanner_path_ac();
    lfi_ac();
    rce_unix_re();
    rce_strong_re();
    rce_windows_re();
    rce_any();
    php_re();
    java_re();
    node_re();
    ssti_re();
}

/// NUL anywhere is critical (it truncates strings in C-backed code); other C0 controls and DEL
/// are a warning, except tab and line breaks, which body fields legitimately carry.
pub(crate) fn control_bytes(decoded: &[u8], location: Location, hits: &mut Hits) {
    if let Some(p) = memchr::memchr(0, decoded) {
        hits.push(("nul", p));
    }
    let allowed_nl = !matches!(location, Location::Path | Location::Header | Location::Cookie);
    if let Some(p) = decoded
        .iter()
        .position(|&b| (b < 0x20 && b != 0 && b != b'\t' && !(allowed_nl && (b == b'\n' || b == b'\r'))) || b == 0x7F)
    {
        hits.push(("control-char", p));
    }
}

pub(crate) fn scanner_ua(norm: &[u8]) -> Option<usize> {
    scanner_ua_ac().find(norm).map(|m| m.start())
}

pub(crate) fn scanner_path(norm: &[u8]) -> Option<usize> {
    scanner_path_ac().find(norm).map(|m| m.start())
}

/// Traversal: `..` followed by a separator (either slash, `;` for Tomcat's path parameters) where
/// the `..` starts a segment, or `..` ending the value after a separator.
pub(crate) fn lfi(view: &View<'_>, hits: &mut Hits) {
    let s = view.norm;
    for p in super::find_iter(s, b"..") {
        let starts_segment = p == 0 || matches!(s[p - 1], b'/' | b'\\' | b'=' | b' ' | b':' | b'\'' | b'"');
        let next = s.get(p + 2).copied();
        let ends = match next {
            Some(b'/' | b'\\') => true,
            Some(b';') => s.get(p + 3) == Some(&b'/'),
            None => p > 0 && matches!(s[p - 1], b'/' | b'\\'),
            _ => false,
        };
        if starts_segment && ends {
            hits.push(("lfi.traversal", p));
            break;
        }
    }
    if let Some(m) = lfi_ac().find(s) {
        let pat = &s[m.start()..m.end()];
        // `.env` is only a file when it ends a segment (".envelope", ".environment" are words).
        let segment_end = s
            .get(m.end())
            .is_none_or(|&b| matches!(b, b'/' | b'\\' | b'?' | b'#' | b';' | b' '));
        let segment_start = m.start() == 0 || matches!(s[m.start() - 1], b'/' | b'\\' | b'=' | b' ' | b':' | b'.');
        if pat != b".env" || (segment_end && segment_start) {
            hits.push(("lfi.file", m.start()));
        }
    }
}

/// PHP stream wrappers and other non-HTTP schemes used for file inclusion and SSRF.
const WRAPPERS: &[&[u8]] = &[
    b"php://",
    b"file://",
    b"data://",
    b"expect://",
    b"phar://",
    b"zip://",
    b"glob://",
    b"ogg://",
    b"rar://",
    b"compress.zlib://",
    b"compress.bzip2://",
    b"zlib:",
    b"gopher://",
    b"dict://",
    b"ldap://",
    b"jar:",
];

/// Remote inclusion: a scheme URL as the value whose target looks like code to include: ends in
/// `?` (to cut the appended suffix), ends in NUL, names a shell or script, or has a bare IP host
/// with a script path.
pub(crate) fn rfi(view: &View<'_>, hits: &mut Hits) {
    let s = view.norm;
    // Schemes end at a `:`; looking back from each colon beats one search per wrapper name.
    for c in memchr::memchr_iter(b':', s) {
        let start = s[..c]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'.'))
            .map_or(0, |k| k + 1);
        let at_value_start = start == 0 || matches!(s[start - 1], b'=' | b' ' | b'\'' | b'"' | b'(' | b'/' | b':');
        if !at_value_start || start == c {
            continue;
        }
        let scheme_colon = &s[start..=c];
        let hit = WRAPPERS.iter().any(|w| {
            if w.ends_with(b"://") {
                s[start..].starts_with(w)
            } else {
                // `jar:` and `zlib:` take a nested URL, not `//`.
                *w == scheme_colon
                    && (w != b"jar:" || s[c + 1..].starts_with(b"http") || s[c + 1..].starts_with(b"file"))
            }
        });
        if hit {
            hits.push(("rfi.wrapper", start));
            return;
        }
    }
    for p in super::find_iter(s, b"://") {
        let scheme_start = s[..p]
            .iter()
            .rposition(|b| !b.is_ascii_alphabetic())
            .map_or(0, |k| k + 1);
        let scheme = &s[scheme_start..p];
        if !matches!(scheme, b"http" | b"https" | b"ftp" | b"ftps") {
            continue;
        }
        let url_end = s[p..].iter().position(|&b| is_url_end(b)).map_or(s.len(), |k| p + k);
        let url = &s[p + 3..url_end];
        let host_end = url
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b':')
            .unwrap_or(url.len());
        let host = &url[..host_end];
        let path = &url[host_end..];
        // A trailing `?` or NUL cuts off whatever suffix the application appends to the include path.
        let trailing_q = url.ends_with(b"?") || url.contains(&0);
        let shell = [
            &b"c99"[..],
            b"r57",
            b"shell.",
            b"webshell",
            b"backdoor",
            b"cmd.txt",
            b"phpshell",
            b".txt?",
            b"b374k",
            b"wso.",
        ]
        .iter()
        .any(|n| super::find(path, n).is_some());
        let ip_host = !host.is_empty() && host.iter().all(|b| b.is_ascii_digit() || *b == b'.') && host.contains(&b'.');
        let script_path = [&b".php"[..], b".txt", b".inc", b".sh", b".pl", b".py", b".jsp", b".asp"]
            .iter()
            .any(|e| super::find(path, e).is_some());
        if trailing_q || shell || (ip_host && script_path) {
            hits.push(("rfi.url", scheme_start));
            return;
        }
    }
}

fn is_url_end(b: u8) -> bool {
    b == b' ' || b == b'\n' || b == b'"' || b == b'\'' || b == b'<' || b == b'>'
}

/// All three command-injection patterns in one automaton: clean values (most that reach this
/// detector, woken by a `;` or `&` in prose or a URL) cost one pass instead of three.
fn rce_any() -> &'static regex::bytes::RegexSet {
    static SET: OnceLock<regex::bytes::RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        let pats = [
            rce_strong_re().as_str(),
            rce_unix_re().as_str(),
            rce_windows_re().as_str(),
        ];
        regex::bytes::RegexSet::new(pats).unwrap_or_else(|e| panic!("WAF rce set: {e}"))
    })
}

pub(crate) fn rce(view: &View<'_>, hits: &mut Hits) {
    let s = view.norm;
    if !rce_any().is_match(s) {
        return;
    }
    if let Some(m) = rce_strong_re().find(s) {
        hits.push(("rce.unix", m.start()));
    } else if let Some(m) = rce_unix_re().find(s) {
        // A leading command word with no separator is only shell when the whole value is it
        // (`cat /etc/passwd` in a field that gets passed to a shell); prose starting with "who"
        // or "more" is not, so anchored matches need the stricter argument forms above.
        let anchored = m.start() == 0 && !matches!(s.first(), Some(b';' | b'|' | b'&' | b'`' | b'$' | b'\n'));
        if !anchored {
            hits.push(("rce.unix", m.start()));
        }
    }
    if let Some(m) = rce_windows_re().find(s) {
        hits.push(("rce.windows", m.start()));
    }
}

/// PHP, Java (including Log4Shell lookups, de-obfuscated) and Node.js injection markers.
pub(crate) fn injection(view: &View<'_>, hits: &mut Hits) {
    let s = view.norm;
    if let Some(m) = php_re().find(s) {
        hits.push(("php.injection", m.start()));
    }
    if let Some(p) = log4j(s) {
        hits.push(("java.jndi", p));
    } else if let Some(m) = java_re().find(s) {
        hits.push(("java.injection", m.start()));
    }
    if let Some(m) = node_re().find(s) {
        hits.push(("node.injection", m.start()));
    }
}

/// Log4j lookup names whose presence is an attack on its own (exfiltration or JNDI).
const LOG4J_LOOKUPS: &[&[u8]] = &[
    b"jndi:",
    b"env:",
    b"sys:",
    b"java:",
    b"ctx:",
    b"main:",
    b"base64:",
    b"lower:",
    b"upper:",
    b"date:",
    b"::-",
    b"bundle:",
    b"docker:",
    b"k8s:",
    b"spring:",
    b"log4j:",
    b"web:",
    b"jvmrunargs:",
    b"event:",
    b"sd:",
];

/// Evaluates Log4j-style `${…}` lookups with a stack (linear time): `${lower:j}` and
/// `${any:-j}` yield their text, so `${${lower:j}ndi:…}` is seen as `${jndi:…}`. Returns the
/// offset of the first lookup that is, or evaluates to, a known attack lookup.
fn log4j(s: &[u8]) -> Option<usize> {
    super::find(s, b"${")?;
    // Each frame: (start offset, evaluated text of the lookup body so far).
    let mut stack: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'$' && s.get(i + 1) == Some(&b'{') && stack.len() < 32 {
            stack.push((i, Vec::new()));
            i += 2;
            continue;
        }
        if s[i] == b'}' {
            if let Some((start, body)) = stack.pop() {
                let body = trim_spaces(&body);
                if LOG4J_LOOKUPS.iter().any(|l| body.starts_with(l))
                    || (body.contains(&b':') && body.windows(5).any(|w| w == b"jndi:"))
                {
                    return Some(start);
                }
                let value: &[u8] = if let Some(k) = body.windows(2).rposition(|w| w == b":-") {
                    &body[k + 2..]
                } else if let Some(k) = body.iter().position(|&b| b == b':') {
                    &body[k + 1..]
                } else {
                    body
                };
                if let Some((_, parent)) = stack.last_mut() {
                    parent.extend_from_slice(value);
                }
                i += 1;
                continue;
            }
        }
        if let Some((_, body)) = stack.last_mut() {
            if body.len() < 256 {
                body.push(s[i]);
            }
        }
        i += 1;
    }
    None
}

fn trim_spaces(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b' ').map_or(start, |e| e + 1);
    &b[start..end]
}

pub(crate) fn ssti(view: &View<'_>, hits: &mut Hits) {
    if let Some(m) = ssti_re().find(view.norm) {
        hits.push(("ssti", m.start()));
    }
}

/// `__proto__`, `constructor[prototype]` / `constructor.prototype` in a name or value.
pub(crate) fn proto_pollution(s: &[u8]) -> Option<usize> {
    if let Some(p) = super::find(s, b"__proto__") {
        return Some(p);
    }
    let c = super::find(s, b"constructor")?;
    let rest = &s[c + 11..];
    (rest.starts_with(b"[prototype]")
        || rest.starts_with(b".prototype")
        || rest.starts_with(b"][prototype]")
        || rest.starts_with(b"\"][\"prototype")
        || rest.starts_with(b"\":{\"prototype"))
    .then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log4j_deobfuscation() {
        assert!(log4j(b"${jndi:ldap://x/a}").is_some());
        assert!(log4j(b"${${lower:j}ndi:ldap://x/a}").is_some());
        assert!(log4j(b"${${::-j}${::-n}${::-d}${::-i}:rmi://x}").is_some());
        assert!(log4j(b"${${env:nothing:-j}ndi${env:nothing:-:}ldap://x}").is_some());
        assert!(log4j(b"price is ${price}").is_none());
        assert!(log4j(b"${{{{{{{{").is_none());
    }
}
