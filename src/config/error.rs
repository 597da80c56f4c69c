//! Configuration errors: every one names the file, the line and the field, so `palisade check`
//! and a refused reload tell the operator exactly what to fix.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::Locator;

/// One problem found in a config or policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not tied to a place in the file (e.g. it cannot be read).
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `routes[1].upstream`; empty for whole-file problems.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All problems found in one load; a load with any of them is refused as a whole.
#[derive(Debug, Clone, Default, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors for one source file, resolving field paths to positions.
pub struct Collector<'a> {
    file: &'a Path,
    locator: &'a Locator,
    out: &'a mut Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    pub fn new(file: &'a Path, locator: &'a Locator, out: &'a mut Vec<ConfigError>) -> Self {
        Collector { file, locator, out }
    }

    pub fn file(&self) -> &Path {
        self.file
    }

    /// Record a problem with the field at `path`.
    pub fn field(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.locator.find(path);
        self.out.push(ConfigError {
            file: self.file.to_path_buf(),
            line: pos.map_or(0, |p| p.line),
            column: pos.map_or(0, |p| p.column),
            field: path.to_string(),
            message: message.into(),
        });
    }

    /// Record a problem at an explicit position (YAML syntax errors carry their own).
    pub fn at(&mut self, line: usize, column: usize, message: impl Into<String>) {
        self.out.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: String::new(),
            message: message.into(),
        });
    }
}
