//! Path globs without regex machinery (request_filter): `*` matches within one path segment,
//! `**` across segments, `?` one character other than `/`. Everything else is literal.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    /// Any run of bytes without `/`.
    Star,
    /// Any run of bytes.
    DoubleStar,
    /// One byte other than `/`.
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let mut tokens = Vec::new();
        let b = pattern.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'*' if b.get(i + 1) == Some(&b'*') => {
                    tokens.push(Token::DoubleStar);
                    i += 2;
                }
                b'*' => {
                    tokens.push(Token::Star);
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                _ => {
                    let start = i;
                    while i < b.len() && b[i] != b'*' && b[i] != b'?' {
                        i += 1;
                    }
                    tokens.push(Token::Literal(b[start..i].to_vec()));
                }
            }
        }
        Glob { tokens }
    }

    /// The literal text every match starts with (for indexing).
    pub fn literal_prefix(&self) -> &[u8] {
        match self.tokens.first() {
            Some(Token::Literal(l)) => l,
            _ => b"",
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        matches_from(&self.tokens, path.as_bytes())
    }
}

fn matches_from(tokens: &[Token], s: &[u8]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Literal(l) => s.starts_with(l) && matches_from(rest, &s[l.len()..]),
        Token::Any => s.first().is_some_and(|c| *c != b'/') && matches_from(rest, &s[1..]),
        Token::Star => {
            // Try every split inside the current segment, shortest first.
            let seg = s.iter().position(|c| *c == b'/').unwrap_or(s.len());
            (0..=seg).any(|k| could_follow(rest, &s[k..]) && matches_from(rest, &s[k..]))
        }
        Token::DoubleStar => (0..=s.len()).any(|k| could_follow(rest, &s[k..]) && matches_from(rest, &s[k..])),
    }
}

/// A cheap first-byte check before recursing: a literal must start right here.
fn could_follow(rest: &[Token], s: &[u8]) -> bool {
    match rest.first() {
        Some(Token::Literal(l)) => s.first() == l.first(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_semantics() {
        let g = |p: &str, s: &str| Glob::new(p).matches(s);
        assert!(g("/api/*/chat", "/api/room1/chat"));
        assert!(!g("/api/*/chat", "/api/a/b/chat"));
        assert!(g("/api/**/chat", "/api/a/b/chat"));
        assert!(g("/api/**", "/api/"));
        assert!(g("/u/???", "/u/abc"));
        assert!(!g("/u/???", "/u/ab/"));
        assert!(g("/*.php", "/index.php"));
        assert!(!g("/*.php", "/a/index.php"));
        assert!(g("/exact", "/exact"));
        assert!(!g("/exact", "/exact/more"));
        assert_eq!(Glob::new("/channels/*/x").literal_prefix(), b"/channels/");
        assert_eq!(Glob::new("**/x").literal_prefix(), b"");
    }
}
