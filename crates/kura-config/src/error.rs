//! The error type of configuration loading.

use std::path::PathBuf;

/// Why a configuration could not be loaded. Every variant names the file it comes from; the
/// line is given where the parser knows it (always for HCL, never for JSON values).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("cannot read configuration {}: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid HCL or JSON.
    #[error("{file}:{line}:{column}: syntax error: {message}")]
    Syntax {
        /// The file, as given.
        file: String,
        /// One-based line of the error.
        line: usize,
        /// One-based column of the error.
        column: usize,
        /// What the parser expected or found.
        message: String,
    },
    /// An option has a value of the wrong type or outside its range.
    #[error("{}: invalid value for \"{option}\" {context}: {message}", location(.file, *.line))]
    InvalidValue {
        /// The file, as given.
        file: String,
        /// One-based line of the option, when known.
        line: Option<usize>,
        /// The option's name.
        option: String,
        /// Where the option sits: `at top level`, `in listener "tcp"`, ...
        context: String,
        /// What is wrong with the value.
        message: String,
    },
    /// The configuration is well-formed but not acceptable (a missing block label, two storage
    /// blocks in one file, a listener type Kura does not know, ...).
    #[error("{}: {message}", location(.file, *.line))]
    Invalid {
        /// The file, as given (several files are joined with `, ` for conflicts between files).
        file: String,
        /// One-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

/// `file:line` when the line is known, else `file`.
pub(crate) fn location(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    }
}
