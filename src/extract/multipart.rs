//! The fields of a `multipart/form-data` body (RFC 7578; request_body_filter, once the body is
//! complete): text parts with their values, file parts with their filename and first bytes.

use memchr::memmem;

use super::{push_field, Field, Fields, Limits};

/// Longest boundary accepted (RFC 2046 allows 70; some clients go a little beyond).
const MAX_BOUNDARY: usize = 200;
/// Longest header block of one part, in bytes.
const MAX_PART_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("multipart content type without a usable boundary")]
    NoBoundary,
    #[error("body does not start with the boundary")]
    NoFirstBoundary,
    #[error("boundary line not followed by CRLF")]
    BadDelimiter,
    #[error("part headers malformed or longer than {MAX_PART_HEAD} bytes")]
    BadPartHeaders,
    #[error("part not closed by a boundary")]
    Unterminated,
}

/// The `boundary` parameter of a Content-Type value, quoted or not.
pub fn boundary(content_type: &str) -> Option<String> {
    let (_, params) = content_type.split_once(';')?;
    let b = params_of(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))?
        .1;
    (!b.is_empty() && b.len() <= MAX_BOUNDARY).then_some(b)
}

/// Fields of a multipart body. Text parts carry their value (cut at `limits.max_value`), file
/// parts (those with a `filename`) their filename and the first `limits.file_prefix` bytes,
/// read as lossy UTF-8. A part without a name gets the empty name. The preamble and epilogue
/// are ignored; `filename*` (RFC 5987) is not read.
pub fn multipart_fields(content_type: &str, body: &[u8], limits: &Limits) -> Result<Fields, MultipartError> {
    let b = boundary(content_type).ok_or(MultipartError::NoBoundary)?;
    let delim = format!("--{b}");
    let next_delim = format!("\r\n--{b}");
    let finder = memmem::Finder::new(next_delim.as_bytes());
    let mut pos = if body.starts_with(delim.as_bytes()) {
        0
    } else {
        finder.find(body).ok_or(MultipartError::NoFirstBoundary)? + 2
    };
    let mut out = Fields::default();
    loop {
        pos += delim.len();
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        // Transport padding may follow a boundary.
        let pad = rest.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
        pos += pad
            + if rest[pad..].starts_with(b"\r\n") {
                2
            } else {
                return Err(MultipartError::BadDelimiter);
            };
        let (head, content_at) = if body[pos..].starts_with(b"\r\n") {
            ("", pos + 2)
        } else {
            let window = &body[pos..body.len().min(pos + MAX_PART_HEAD)];
            let end = memmem::find(window, b"\r\n\r\n").ok_or(MultipartError::BadPartHeaders)?;
            let head = std::str::from_utf8(&window[..end]).map_err(|_| MultipartError::BadPartHeaders)?;
            (head, pos + end + 4)
        };
        let end = finder
            .find(&body[content_at..])
            .map(|i| content_at + i)
            .ok_or(MultipartError::Unterminated)?;
        let content = &body[content_at..end];
        let part = Part::parse(head)?;
        let keep = if part.filename.is_some() {
            limits.file_prefix
        } else {
            limits.max_value
        };
        let field = Field {
            name: part.name.unwrap_or_default(),
            value: String::from_utf8_lossy(&content[..content.len().min(keep)]).into_owned(),
            filename: part.filename,
            content_type: part.content_type,
            len: content.len(),
        };
        // A file cut to its first bytes is by design, not a truncation of the request.
        if content.len() > keep && field.filename.is_none() {
            out.truncated = true;
        }
        if !push_field(&mut out, limits, field) {
            return Ok(out);
        }
        pos = end + 2;
    }
}

#[derive(Debug, Default)]
struct Part {
    name: Option<String>,
    filename: Option<String>,
    content_type: Option<String>,
}

impl Part {
    fn parse(head: &str) -> Result<Part, MultipartError> {
        let mut part = Part::default();
        for line in head.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or(MultipartError::BadPartHeaders)?;
            let value = value.trim();
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                for (k, v) in params_of(value.split_once(';').map_or("", |(_, p)| p)) {
                    if k.eq_ignore_ascii_case("name") {
                        part.name = Some(v);
                    } else if k.eq_ignore_ascii_case("filename") {
                        part.filename = Some(v);
                    }
                }
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.to_owned());
            }
        }
        Ok(part)
    }
}

/// `; k=v; k="quoted \" v"` parameters, in order. Quoted strings may hold `;`.
fn params_of(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != ';') {
            key.push(c);
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
                while chars.next_if(|c| *c != ';').is_some() {}
            } else {
                while let Some(c) = chars.next_if(|c| *c != ';') {
                    value.push(c);
                }
                value.truncate(value.trim_end().len());
            }
        }
        out.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn body(parts: &[&str]) -> Vec<u8> {
        let mut b = b"preamble\r\n".to_vec();
        for p in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            b.extend_from_slice(p.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\nepilogue");
        b
    }

    #[test]
    fn text_and_file_parts() {
        let b = body(&[
            "Content-Disposition: form-data; name=\"message\"\r\n\r\nhello\r\nworld",
            "content-disposition: form-data; name=\"up\"; filename=\"a;b.php\"\r\nContent-Type: text/plain\r\n\r\n<?php system($_GET[c]); ?>",
            "Content-Disposition: form-data; name=plain\r\n\r\n",
        ]);
        let limits = Limits {
            file_prefix: 5,
            ..Limits::default()
        };
        let f = multipart_fields(CT, &b, &limits).expect("test input is valid");
        assert!(!f.truncated);
        let got: Vec<_> = f
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str(), f.filename.as_deref(), f.len))
            .collect();
        assert_eq!(
            got,
            [
                ("message", "hello\r\nworld", None, 12),
                ("up", "<?php", Some("a;b.php"), 26),
                ("plain", "", None, 0)
            ]
        );
        assert_eq!(f.fields[1].content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn boundaries_quoted_or_not() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b;c\"").as_deref(),
            Some("a b;c")
        );
        assert_eq!(
            boundary("multipart/form-data;charset=utf-8;BOUNDARY=x").as_deref(),
            Some("x")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let limits = Limits::default();
        let e = |ct: &str, b: &[u8]| multipart_fields(ct, b, &limits).err();
        assert_eq!(e("multipart/form-data", b""), Some(MultipartError::NoBoundary));
        assert_eq!(e(CT, b"no boundary here"), Some(MultipartError::NoFirstBoundary));
        assert_eq!(
            e(CT, b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue"),
            Some(MultipartError::Unterminated)
        );
        assert_eq!(
            e(CT, b"--XyZ\r\nno colon\r\n\r\nv\r\n--XyZ--"),
            Some(MultipartError::BadPartHeaders)
        );
        assert_eq!(
            e(CT, b"--XyZ\r\nContent-Disposition: x"),
            Some(MultipartError::BadPartHeaders)
        );
        assert_eq!(e(CT, b"--XyZjunk\r\n"), Some(MultipartError::BadDelimiter));
        let mut long = b"--XyZ\r\nX: ".to_vec();
        long.extend(vec![b'a'; 10_000]);
        assert_eq!(e(CT, &long), Some(MultipartError::BadPartHeaders));
        for cut in 0..body(&["Content-Disposition: form-data; name=a\r\n\r\nv"]).len() {
            let b = body(&["Content-Disposition: form-data; name=a\r\n\r\nv"]);
            let _ = multipart_fields(CT, &b[..cut], &limits);
        }
    }

    #[test]
    fn huge_counts_are_bounded() {
        let parts = vec!["Content-Disposition: form-data; name=a\r\n\r\nv"; 3000];
        let f = multipart_fields(CT, &body(&parts), &Limits::default()).expect("test input is valid");
        assert_eq!(f.fields.len(), Limits::default().max_fields);
        assert!(f.truncated);
    }
}
