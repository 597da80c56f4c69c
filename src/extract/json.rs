//! Every string value of a JSON body with its path (request_body_filter, once the body is
//! complete), for moderation term lists and the WAF.
//!
//! Paths: object keys joined with `.`, array indexes as `[n]` (`user.bio`, `items[2].text`,
//! `[0].name` under a top-level array, the empty path for a top-level string). A key that is
//! empty or holds any of `.[]*"`, whitespace or a control character is written as a quoted
//! JSON string in brackets: `headers["x.y"]`. Object keys are not fields of their own: they
//! appear in paths, which is where a WAF scanning keys should look. Numbers, booleans and
//! nulls are not strings and are skipped.
//!
//! The body is read as a stream (serde's visitor), not into a `Value` tree: values come in
//! document order, a duplicated key yields every one of its values (a parser behind the proxy
//! may keep the first where serde_json's map keeps the last), and reading stops at the field cap.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{push_field, Field, Fields, Limits};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    /// Arrays or objects nested deeper than the limit (or than serde_json's own 128). An
    /// error, not a truncation: a body built to hide values below the limit is itself a finding.
    #[error("JSON nested deeper than {limit} levels")]
    TooDeep { limit: usize },
}

/// String values of `body` with their paths, in document order. Stops at `limits.max_fields`
/// (`truncated` set, and the rest of the body is not read, so not checked for syntax either);
/// values longer than `limits.max_value` bytes are cut (also `truncated`).
pub fn json_strings(body: &[u8], limits: &Limits) -> Result<Fields, JsonError> {
    let mut walk = Walk {
        path: String::new(),
        depth: 0,
        limits,
        out: Fields::default(),
        stop: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = (&mut walk).deserialize(&mut de).and_then(|()| de.end());
    match (read, walk.stop) {
        (_, Some(Stop::Full)) | (Ok(()), None) => Ok(walk.out),
        (_, Some(Stop::TooDeep)) => Err(JsonError::TooDeep {
            limit: limits.max_depth,
        }),
        (Err(e), None) if e.to_string().starts_with("recursion limit exceeded") => Err(JsonError::TooDeep {
            limit: limits.max_depth.min(128),
        }),
        (Err(e), None) => Err(JsonError::Malformed {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Full,
    TooDeep,
}

/// The visitor: the path of the value being read and what was found so far.
struct Walk<'l> {
    path: String,
    depth: usize,
    limits: &'l Limits,
    out: Fields,
    /// Why reading was cut short, told apart from a syntax error serde reports the same way.
    stop: Option<Stop>,
}

impl Walk<'_> {
    fn halt<E: de::Error>(&mut self, why: Stop) -> E {
        self.stop = Some(why);
        E::custom("stopped")
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        if self.depth >= self.limits.max_depth {
            return Err(self.halt(Stop::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for &mut Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if push_field(&mut self.out, self.limits, Field::new(self.path.clone(), v)) {
            Ok(())
        } else {
            Err(self.halt(Stop::Full))
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.enter()?;
        let base = self.path.len();
        let mut i = 0usize;
        loop {
            self.path.truncate(base);
            self.path.push('[');
            self.path.push_str(&i.to_string());
            self.path.push(']');
            if seq.next_element_seed(&mut *self)?.is_none() {
                break;
            }
            i += 1;
        }
        self.path.truncate(base);
        self.depth -= 1;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        let base = self.path.len();
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            push_key(&mut self.path, &k);
            map.next_value_seed(&mut *self)?;
            self.path.truncate(base);
        }
        self.depth -= 1;
        Ok(())
    }
}

/// Can `k` appear bare in a path?
pub(crate) fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && !k
            .chars()
            .any(|c| matches!(c, '.' | '[' | ']' | '*' | '"') || c.is_whitespace() || c.is_control())
}

fn push_key(path: &mut String, k: &str) {
    if is_plain_key(k) {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(k);
    } else {
        path.push('[');
        path.push_str(&serde_json::Value::String(k.to_owned()).to_string());
        path.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(body: &str) -> Vec<(String, String)> {
        json_strings(body.as_bytes(), &Limits::default())
            .expect("test input is valid")
            .fields
            .into_iter()
            .map(|f| (f.name, f.value))
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn strings_come_with_their_paths() {
        let got = pairs(
            r#"{"message":"hi","user":{"bio":"x","age":3},"items":[{"text":"a"},{"n":1},{"text":"c"}],"tags":["t"]}"#,
        );
        assert_eq!(
            got,
            kv(&[
                ("message", "hi"),
                ("user.bio", "x"),
                ("items[0].text", "a"),
                ("items[2].text", "c"),
                ("tags[0]", "t"),
            ])
        );
        assert_eq!(pairs(r#""top""#), kv(&[("", "top")]));
        assert_eq!(pairs(r#"[{"a":"b"}]"#), kv(&[("[0].a", "b")]));
        assert_eq!(pairs("[1, true, null]"), kv(&[]));
    }

    #[test]
    fn awkward_keys_are_quoted() {
        let got = pairs(r#"{"a.b":{"":"e"},"x y":"s","$where":"w","q\"":"z"}"#);
        let want = [
            (r#"["a.b"][""]"#, "e"),
            (r#"["x y"]"#, "s"),
            ("$where", "w"),
            (r#"["q\""]"#, "z"),
        ];
        assert_eq!(got, kv(&want));
    }

    #[test]
    fn duplicate_keys_yield_every_value() {
        assert_eq!(
            pairs(r#"{"q":"<script>","q":"ok"}"#),
            kv(&[("q", "<script>"), ("q", "ok")])
        );
        assert_eq!(
            pairs(r#"{"a\u002eb":"x","\u0061":"y"}"#),
            kv(&[(r#"["a.b"]"#, "x"), ("a", "y")])
        );
    }

    #[test]
    fn malformed_json_is_an_error_value() {
        for bad in ["", "{", r#"{"a":}"#, "[1,]", "\u{0}", r#"{"a":"b"} trailing"#] {
            let e = json_strings(bad.as_bytes(), &Limits::default());
            assert!(matches!(e, Err(JsonError::Malformed { .. })), "{bad:?}: {e:?}");
        }
        assert!(json_strings(b"\"\xff\"", &Limits::default()).is_err());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let limits = Limits::default();
        let ok = format!("{}\"deep\"{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(
            json_strings(ok.as_bytes(), &limits)
                .expect("test input is valid")
                .fields
                .len(),
            1
        );
        let deep = format!("{}\"deep\"{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(
            json_strings(deep.as_bytes(), &limits),
            Err(JsonError::TooDeep { limit: 64 })
        );
        // Past serde_json's own recursion limit: still an error, never a stack overflow.
        let deeper = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            json_strings(deeper.as_bytes(), &limits),
            Err(JsonError::TooDeep { limit: 64 })
        );
    }

    #[test]
    fn huge_counts_and_long_values_are_cut() {
        let body = format!("[{}\"x\"]", "\"v\",".repeat(5000));
        let f = json_strings(body.as_bytes(), &Limits::default()).expect("test input is valid");
        assert_eq!(f.fields.len(), Limits::default().max_fields);
        assert!(f.truncated);
        let limits = Limits {
            max_value: 3,
            ..Limits::default()
        };
        let f = json_strings("{\"a\":\"ééé\"}".as_bytes(), &limits).expect("test input is valid");
        assert_eq!(f.fields[0].value, "é");
        assert!(f.truncated);
    }
}
