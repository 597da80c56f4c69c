//! Request field extraction shared by moderation and the WAF (request_filter for the query and
//! cookies, request_body_filter for bodies): the values a request carries, each with a name or
//! path, bounded in count, depth and size. Pure functions over bytes.

mod json;
mod multipart;
mod selector;
mod urlencoded;

pub use json::{json_strings, JsonError};
pub use multipart::{boundary, multipart_fields, MultipartError};
pub use selector::{FieldSelector, SelectorError};
pub use urlencoded::{cookies, decode, form_pairs, query_pairs, Pairs, DEFAULT_MAX_PAIRS};

/// Fields taken from one body when the config sets none.
pub const DEFAULT_MAX_FIELDS: usize = 1000;
/// JSON nesting levels when the config sets none (deeper is an error).
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Bytes kept of one value when the config sets none (the rest is cut, `truncated` set).
pub const DEFAULT_MAX_VALUE: usize = 64 * 1024;
/// Bytes kept of an uploaded file's content, when the config sets none.
pub const DEFAULT_FILE_PREFIX: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_fields: usize,
    pub max_depth: usize,
    pub max_value: usize,
    pub file_prefix: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_fields: DEFAULT_MAX_FIELDS,
            max_depth: DEFAULT_MAX_DEPTH,
            max_value: DEFAULT_MAX_VALUE,
            file_prefix: DEFAULT_FILE_PREFIX,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Field {
    /// The form or multipart field name, or the JSON path; `body` for a text body.
    pub name: String,
    /// Lossy UTF-8, cut to `max_value` bytes (files: to `file_prefix`).
    pub value: String,
    /// Multipart file parts only.
    pub filename: Option<String>,
    /// Multipart parts only, as sent.
    pub content_type: Option<String>,
    /// Bytes of the value before any cut (its decoded length for form pairs).
    pub len: usize,
}

impl Field {
    fn new(name: String, value: &str) -> Field {
        Field {
            name,
            len: value.len(),
            value: value.to_owned(),
            ..Field::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyKind {
    Json,
    Form,
    Multipart,
    Text,
    /// No content type, or one these extractors do not read: no fields.
    #[default]
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    pub kind: BodyKind,
    pub fields: Vec<Field>,
    /// Fields were left out, or values cut, because of a limit. A WAF should weigh this: what
    /// was not read was not inspected.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error(transparent)]
    Multipart(#[from] MultipartError),
}

/// Add `f` (its value cut to the limit) unless the field cap is reached; false once it is.
fn push_field(out: &mut Fields, limits: &Limits, mut f: Field) -> bool {
    if out.fields.len() >= limits.max_fields {
        out.truncated = true;
        return false;
    }
    if f.value.len() > limits.max_value {
        let mut cut = limits.max_value;
        while !f.value.is_char_boundary(cut) {
            cut -= 1;
        }
        f.value.truncate(cut);
        out.truncated = true;
    }
    out.fields.push(f);
    true
}

/// The fields of a complete body, by its Content-Type: JSON (`application/json` and any
/// `+json`), urlencoded form, multipart form data, or `text/*` as one field named `body`.
/// Anything else is `Opaque` with no fields. The charset parameter is ignored: bytes are read
/// as UTF-8, lossily. A malformed JSON or multipart body is an error for the caller to act on
/// (fail closed for a WAF, most likely).
pub fn fields(content_type: Option<&str>, body: &[u8], limits: &Limits) -> Result<Fields, ExtractError> {
    let Some(ct) = content_type else {
        return Ok(Fields::default());
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (kind, mut out) = match essence.as_str() {
        "application/json" => (BodyKind::Json, json_strings(body, limits)?),
        s if s.starts_with("application/") && s.ends_with("+json") => (BodyKind::Json, json_strings(body, limits)?),
        "application/x-www-form-urlencoded" => {
            let mut out = Fields::default();
            let mut pairs = form_pairs(body).limit(limits.max_fields);
            for (k, v) in pairs.by_ref() {
                push_field(&mut out, limits, Field::new(k.into_owned(), &v));
            }
            out.truncated |= pairs.truncated();
            (BodyKind::Form, out)
        }
        "multipart/form-data" => (BodyKind::Multipart, multipart_fields(ct, body, limits)?),
        s if s.starts_with("text/") => {
            let mut out = Fields::default();
            push_field(
                &mut out,
                limits,
                Field::new("body".to_owned(), &String::from_utf8_lossy(body)),
            );
            (BodyKind::Text, out)
        }
        _ => (BodyKind::Opaque, Fields::default()),
    };
    out.kind = kind;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: &Fields) -> Vec<(&str, &str)> {
        f.fields.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect()
    }

    #[test]
    fn dispatch_on_content_type() {
        let l = Limits::default();
        let f =
            fields(Some("application/json; charset=utf-8"), br#"{"message":"hi"}"#, &l).expect("test input is valid");
        assert_eq!((f.kind, names(&f)), (BodyKind::Json, vec![("message", "hi")]));
        let f = fields(Some("Application/Activity+JSON"), br#"["x"]"#, &l).expect("test input is valid");
        assert_eq!((f.kind, names(&f)), (BodyKind::Json, vec![("[0]", "x")]));
        let f = fields(Some("application/x-www-form-urlencoded"), b"a=1+2&b=%41", &l).expect("test input is valid");
        assert_eq!((f.kind, names(&f)), (BodyKind::Form, vec![("a", "1 2"), ("b", "A")]));
        let mp = b"--b\r\nContent-Disposition: form-data; name=\"m\"\r\n\r\nv\r\n--b--";
        let f = fields(Some("multipart/form-data; boundary=b"), mp, &l).expect("test input is valid");
        assert_eq!((f.kind, names(&f)), (BodyKind::Multipart, vec![("m", "v")]));
        let f = fields(Some("text/plain"), b"caf\xc3\xa9 \xff", &l).expect("test input is valid");
        assert_eq!((f.kind, names(&f)), (BodyKind::Text, vec![("body", "café \u{fffd}")]));
        for ct in [None, Some("application/octet-stream"), Some("image/png"), Some("")] {
            assert_eq!(fields(ct, b"{}", &l).expect("test input is valid"), Fields::default());
        }
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let l = Limits::default();
        assert!(matches!(
            fields(Some("application/json"), b"{", &l),
            Err(ExtractError::Json(_))
        ));
        assert!(matches!(
            fields(Some("multipart/form-data"), b"", &l),
            Err(ExtractError::Multipart(_))
        ));
        const ALPHABET: &[u8] = b"{}[]\",:a\\-\r\n=&%+;b";
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..20_000 {
            let body: Vec<u8> = (0..rng.usize(0..80))
                .map(|_| ALPHABET[rng.usize(0..ALPHABET.len())])
                .collect();
            let ct = [
                "application/json",
                "multipart/form-data; boundary=b",
                "application/x-www-form-urlencoded",
            ][i % 3];
            let _ = fields(Some(ct), &body, &l);
        }
    }

    #[test]
    fn form_counts_and_values_are_bounded() {
        let l = Limits {
            max_fields: 10,
            max_value: 4,
            ..Limits::default()
        };
        let f = fields(
            Some("application/x-www-form-urlencoded"),
            "a=12345&".repeat(50).as_bytes(),
            &l,
        )
        .expect("test input is valid");
        assert_eq!(f.fields.len(), 10);
        assert_eq!(f.fields[0].value, "1234");
        assert_eq!(f.fields[0].len, 5);
        assert!(f.truncated);
    }
}
