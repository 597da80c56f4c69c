//! Host name patterns (`example.com`, `*.example.com`, `*`) shared by routing and policy rules.

/// A host pattern compiled for matching against a lower-case host without port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` is stored as `.example.com`; it matches subdomains, not the apex.
    Suffix(String),
}

impl HostPattern {
    /// Compile a validated pattern.
    pub fn new(p: &str) -> Self {
        let p = p.to_ascii_lowercase();
        if p == "*" {
            HostPattern::Any
        } else if let Some(rest) = p.strip_prefix('*') {
            HostPattern::Suffix(rest.to_string())
        } else {
            HostPattern::Exact(p)
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }

    /// Exact names outrank wildcards; longer wildcards outrank shorter ones.
    pub fn specificity(&self) -> usize {
        match self {
            HostPattern::Any => 0,
            HostPattern::Suffix(s) => s.len(),
            HostPattern::Exact(_) => usize::MAX,
        }
    }
}

/// The host a request is for: lower case, without port, from the `Host` header or the
/// authority of an absolute-form target.
pub fn normalize(raw: &str) -> String {
    let raw = raw.trim();
    let without_port = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(HostPattern::new("*.Example.com").matches("live.example.com"));
        assert!(!HostPattern::new("*.example.com").matches("example.com"));
        assert!(!HostPattern::new("*.example.com").matches("badexample.com"));
        assert!(HostPattern::new("example.com").matches("example.com"));
        assert!(HostPattern::new("*").matches("anything"));
    }

    #[test]
    fn normalizes_port_case_and_brackets() {
        assert_eq!(normalize("Example.COM:8080"), "example.com");
        assert_eq!(normalize("[::1]:443"), "::1");
        assert_eq!(normalize("example.com."), "example.com");
    }
}
