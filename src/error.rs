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
