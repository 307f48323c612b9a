//! What a bad scenario file gets back: diagnostics that name the file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Which stage found a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The text is not TOML.
    Syntax,
    /// TOML, but not a scenario: unknown key, wrong type, unknown behaviour, missing key.
    Schema,
    /// A scenario, but an inconsistent one: bad counts or times, unknown groups, missing
    /// recordings, event paths or filters the schema does not have.
    Validation,
}

/// One problem, located in the scenario file.
///
/// Displays as `FILE:LINE:COLUMN: MESSAGE`; line and column count from 1, the column in
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The scenario file, as given to the parser.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// Which stage found it.
    pub stage: Stage,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read (there is no line to point at).
    #[error("{}: cannot read scenario file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any scenario needs to be.
    #[error("{}: larger than {limit} bytes; a scenario file is a few KiB (is this the right file?)", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// One or more problems; syntax errors come alone, schema and validation problems are all
    /// reported at once (validation runs only when the schema stage found nothing).
    #[error("{}", DisplayLines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ScenarioError {
    /// The located problems (empty for [`ScenarioError::Read`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ScenarioError::Read { .. } | ScenarioError::TooLarge { .. } => &[],
            ScenarioError::Invalid(d) => d,
        }
    }
}

struct DisplayLines<'a>(&'a [Diagnostic]);

impl fmt::Display for DisplayLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The diagnostic for a file that is not UTF-8: line and column (in characters) of the first
/// bad byte.
pub(crate) fn not_utf8(file: &Path, bytes: &[u8], error: std::str::Utf8Error) -> Diagnostic {
    let offset = error.valid_up_to();
    // Everything before the bad byte is valid UTF-8.
    let valid = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
    let (line, column) = LineIndex::new(valid).locate(valid, offset);
    Diagnostic {
        file: file.to_path_buf(),
        line,
        column,
        message: format!(
            "invalid UTF-8 (byte 0x{:02x}); scenario files are UTF-8 text",
            bytes[offset]
        ),
        stage: Stage::Syntax,
    }
}

/// Converts byte offsets of one text into 1-based line and character column.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// Line and column of byte `offset` (clamped to the text, moved back to a char boundary).
    pub(crate) fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = text[start..offset].chars().count() + 1;
        (line, column)
    }
}

/// Builds diagnostics for one file.
#[derive(Debug, Clone)]
pub(crate) struct Reporter<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
    pub(crate) lines: LineIndex,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Reporter<'a> {
        Reporter {
            file,
            text,
            lines: LineIndex::new(text),
        }
    }

    pub(crate) fn at(&self, span: Range<usize>, stage: Stage, message: String) -> Diagnostic {
        let (line, column) = self.lines.locate(self.text, span.start);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message,
            stage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n\nlast";
        let idx = LineIndex::new(text);
        assert_eq!(idx.locate(text, 0), (1, 1));
        assert_eq!(idx.locate(text, 4), (1, 5));
        assert_eq!(idx.locate(text, 6), (2, 1));
        // 'é' is two bytes: the `=` after it is the 4th character of line 2.
        let eq = text[6..].find('=').unwrap() + 6;
        assert_eq!(idx.locate(text, eq), (2, 4));
        assert_eq!(idx.locate(text, text.len()), (4, 5));
        assert_eq!(idx.locate(text, text.len() + 10), (4, 5));
        // Inside a multi-byte character: moved back to its start.
        assert_eq!(idx.locate(text, 8), (2, 2));
    }
}
