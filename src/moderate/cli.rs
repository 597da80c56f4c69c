//! `palisade moderate` (an operator's test bench, no traffic): term lists loaded as the proxy
//! loads them, each line of standard input scanned, one JSON object per line written, so a
//! list can be tried on sample chat before a policy enables it.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde_json::json;
use thiserror::Error;

use super::{mask, parse, ListErrors, TermList, TermSet};

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Every mistake of every list, one `file:line: …` a line.
    #[error("{0}")]
    Lists(ListErrors),
    #[error(transparent)]
    Build(#[from] super::BuildError),
    #[error("input/output: {0}")]
    Io(#[from] std::io::Error),
}

/// Load `lists` (each named by its path, which is what hits report as `list`).
pub fn load(lists: &[PathBuf]) -> Result<TermSet, BenchError> {
    let mut parsed: Vec<TermList> = Vec::new();
    let mut errors = Vec::new();
    for p in lists {
        let path = p.display().to_string();
        let text = std::fs::read_to_string(p).map_err(|source| BenchError::Read {
            path: path.clone(),
            source,
        })?;
        match parse(&path, &text) {
            Ok(l) => parsed.push(l),
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        return Err(BenchError::Lists(ListErrors(errors)));
    }
    Ok(TermSet::build(&parsed)?)
}

/// Scan every line of `input` (lossy UTF-8, line ending removed) and write its verdict.
pub fn run(set: &TermSet, mut input: impl BufRead, mut out: impl Write) -> Result<(), BenchError> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        let hits = set.scan(line);
        let listed: Vec<_> = hits
            .iter()
            .map(|h| {
                json!({
                    "list": h.list_name,
                    "term": h.term,
                    "category": h.category,
                    "weight": h.weight,
                    "start": h.range.start,
                    "end": h.range.end,
                })
            })
            .collect();
        let obj = json!({
            "matched": !hits.is_empty(),
            "hits": listed,
            "masked": mask(line, &hits),
        });
        serde_json::to_writer(&mut out, &obj).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_object_per_line_with_hits_and_mask() {
        let list = parse("t.txt", "badword | category=insult weight=3\n").expect("test");
        let set = TermSet::build(&[list]).expect("test");
        let mut out = Vec::new();
        run(&set, "hello\nyou b.a.d.w.o.r.d!\n".as_bytes(), &mut out).expect("test");
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .expect("test")
            .lines()
            .map(|l| serde_json::from_str(l).expect("test"))
            .collect();
        assert_eq!(lines[0]["matched"], false);
        assert_eq!(lines[1]["matched"], true);
        assert_eq!(lines[1]["hits"][0]["term"], "badword");
        assert_eq!(lines[1]["hits"][0]["category"], "insult");
        assert_eq!(lines[1]["hits"][0]["weight"], 3);
        assert_eq!(lines[1]["masked"], "you *************!");
    }
}
