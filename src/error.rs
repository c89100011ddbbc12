//! The one error type of the library and the exit code each error maps to.
//!
//! Messages are lowercase, name the file, line or key they are about, and say what to do next.
//! The binary prints them to stderr; nothing here prints.

use std::fmt;
use std::path::PathBuf;

/// A problem found while reading or checking a profile, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The profile file (or `shipped:NAME`) the problem is in.
    pub file: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// The key or field the problem is about (`[sysctl] net.core.somaxconn`).
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}:{line}:{column}: invalid TOML: {message}\n  {line_text}\n  {caret}")]
    Toml {
        file: String,
        line: usize,
        column: usize,
        message: String,
        line_text: String,
        caret: String,
    },

    #[error("{}", problems_text(.0))]
    Invalid(Vec<Problem>),

    #[error("{0}")]
    State(String),

    #[error("{message}")]
    ApplyFailed { message: String },

    #[error("{message}")]
    RollbackFailed { message: String },

    #[error("{message}")]
    Privilege { message: String },

    #[error("{message}")]
    Locked { message: String },
}

/// An error message as shown to a person: a word (a value, key, name or path) longer than 200
/// characters is cut to its first 40 with an ellipsis and its length, and a line still longer
/// than 2 000 characters keeps its head and tail (where the advice is). A profile value of
/// 200 000 characters is named, never echoed whole, whichever check refuses it.
#[must_use]
pub fn clip(text: &str) -> String {
    const WORD: usize = 200;
    const LINE: usize = 2000;
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let mut out = String::with_capacity(line.len().min(4 * LINE));
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            let n = word.chars().count();
            if n > WORD {
                let head: String = word.chars().take(40).collect();
                out.push_str(&format!("{head}… ({n} characters)"));
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for c in line.chars() {
            if c.is_whitespace() {
                flush(&mut word, &mut out);
                out.push(c);
            } else {
                word.push(c);
            }
        }
        flush(&mut word, &mut out);
        let n = out.chars().count();
        if n > LINE {
            let head: String = out.chars().take(LINE / 2).collect();
            let tail: String = out.chars().skip(n - LINE / 4).collect();
            out = format!(
                "{head} … ({} characters cut) … {tail}",
                n - LINE / 2 - LINE / 4
            );
        }
        lines.push(out);
    }
    lines.join("\n")
}

fn problems_text(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let mut text = lines.join("\nerror: ");
    if problems.len() > 1 {
        text.push_str(&format!(
            "\n{} problems; nothing was changed",
            problems.len()
        ));
    }
    text
}

impl Error {
    /// The process exit code for this error (see DESIGN.md: 2 bad input, 3 rolled back,
    /// 4 rollback failed too).
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::ApplyFailed { .. } => 3,
            Error::RollbackFailed { .. } => 4,
            _ => 2,
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Read {
            path: path.into(),
            source,
        }
    }

    #[allow(dead_code)] // used by persistence (apply)
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
