//! The users file: who may log in, and with which shared secret.
//!
//! The format is one `name:secret` entry per line. Everything after the
//! first colon is the secret, verbatim (it may itself contain colons or
//! spaces). Lines whose first non-blank character is `#` are comments, and
//! blank lines are ignored. Both LF and CRLF line endings are accepted.
//!
//! The secret is used both as the `PASS` password and as the APOP shared
//! secret, so it is stored in clear text: protect the file accordingly.
//! RFC 2449 limits command arguments to 40 characters, so a secret longer
//! than that can only be used with `APOP`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a line of a users file was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedReason {
    /// The line has no `:` separating the name from the secret.
    MissingColon,
    /// The name before the colon is empty.
    EmptyName,
    /// The name contains a whitespace character.
    WhitespaceInName,
    /// The name contains a character that cannot be used as a mailbox
    /// directory name (`/`, a control character) or is `.` or `..`.
    InvalidName,
    /// The secret after the colon is empty.
    EmptySecret,
    /// The name was already defined on an earlier line.
    DuplicateName {
        /// The 1-based line number of the first definition.
        first_line: usize,
    },
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingColon => f.write_str("expected `name:secret`, found no `:`"),
            Self::EmptyName => f.write_str("empty user name"),
            Self::WhitespaceInName => f.write_str("user name contains whitespace"),
            Self::InvalidName => f.write_str("user name is not usable as a mailbox directory name"),
            Self::EmptySecret => f.write_str("empty secret"),
            Self::DuplicateName { first_line } => {
                write!(
                    f,
                    "duplicate user name (first defined on line {first_line})"
                )
            }
        }
    }
}

/// An error while reading or parsing a users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// A line could not be parsed.
    #[error("users file line {line}: {reason}")]
    Malformed {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: MalformedReason,
    },
    /// The users file could not be read.
    #[error("cannot read users file {}: {source}", path.display())]
    Io {
        /// The path that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

/// A parsed users file: a map from user name to shared secret.
///
/// `Debug` output lists the user names only, never the secrets.
#[derive(Clone, Default)]
pub struct Users {
    /// name -> (secret, 1-based line number of the definition)
    entries: HashMap<String, (String, usize)>,
}

impl Users {
    /// Parses the contents of a users file.
    ///
    /// # Errors
    ///
    /// Returns [`UsersError::Malformed`] naming the first offending line.
    pub fn parse(text: &str) -> Result<Self, UsersError> {
        let mut entries: HashMap<String, (String, usize)> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let malformed = |reason| UsersError::Malformed { line, reason };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (name, secret) = raw
                .split_once(':')
                .ok_or(malformed(MalformedReason::MissingColon))?;
            if name.is_empty() {
                return Err(malformed(MalformedReason::EmptyName));
            }
            if name.chars().any(char::is_whitespace) {
                return Err(malformed(MalformedReason::WhitespaceInName));
            }
            if name == "." || name == ".." || name.chars().any(|c| c == '/' || c.is_control()) {
                return Err(malformed(MalformedReason::InvalidName));
            }
            if secret.is_empty() {
                return Err(malformed(MalformedReason::EmptySecret));
            }
            if let Some((_, first_line)) = entries.get(name) {
                let first_line = *first_line;
                return Err(malformed(MalformedReason::DuplicateName { first_line }));
            }
            entries.insert(name.to_owned(), (secret.to_owned(), line));
        }
        Ok(Self { entries })
    }

    /// Reads and parses a users file.
    ///
    /// # Errors
    ///
    /// Returns [`UsersError::Io`] if the file cannot be read (or is not
    /// UTF-8), or [`UsersError::Malformed`] if a line is invalid.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The secret of user `name`, if the user exists.
    #[must_use]
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|(secret, _)| secret.as_str())
    }

    /// Whether user `name` exists.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The number of users.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no users at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(text: &str) -> (usize, MalformedReason) {
        match Users::parse(text) {
            Err(UsersError::Malformed { line, reason }) => (line, reason),
            other => panic!("expected a Malformed error, got {other:?}"),
        }
    }

    #[test]
    fn parses_entries_comments_and_blank_lines() {
        let text = "# users\n\nalice:wonder land:x\r\n  # indented comment\nbob:builder\n   \n";
        let users = Users::parse(text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users.secret("alice"), Some("wonder land:x"));
        assert_eq!(users.secret("bob"), Some("builder"));
        assert_eq!(users.secret("carol"), None);
        assert_eq!(users.secret("Alice"), None, "names are case-sensitive");
        assert!(users.contains("bob"));
        assert_eq!(users.names(), vec!["alice", "bob"]);
    }

    #[test]
    fn empty_file_has_no_users() {
        let users = Users::parse("# nobody\n\n").unwrap();
        assert!(users.is_empty());
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        assert_eq!(
            malformed("# c\nalice:x\nbob\n"),
            (3, MalformedReason::MissingColon)
        );
        assert_eq!(malformed("\n:secret\n"), (2, MalformedReason::EmptyName));
        assert_eq!(
            malformed("al ice:x\n"),
            (1, MalformedReason::WhitespaceInName)
        );
        assert_eq!(
            malformed(" alice:x\n"),
            (1, MalformedReason::WhitespaceInName)
        );
        assert_eq!(
            malformed("a\tb:x\n"),
            (1, MalformedReason::WhitespaceInName)
        );
        assert_eq!(
            malformed("ok:1\n../etc:x\n"),
            (2, MalformedReason::InvalidName)
        );
        assert_eq!(malformed("..:x\n"), (1, MalformedReason::InvalidName));
        assert_eq!(malformed("alice:\n"), (1, MalformedReason::EmptySecret));
        assert_eq!(
            malformed("alice:a\n# c\n\nbob:b\nalice:c\n"),
            (5, MalformedReason::DuplicateName { first_line: 1 })
        );
    }

    #[test]
    fn error_messages_are_readable() {
        let err = Users::parse("a:b\nnocolon\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "users file line 2: expected `name:secret`, found no `:`"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let users = Users::parse("alice:topsecret\n").unwrap();
        let debug = format!("{users:?}");
        assert!(debug.contains("alice"));
        assert!(!debug.contains("topsecret"));
    }

    #[test]
    fn load_reports_io_errors_and_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        match Users::load(&missing) {
            Err(UsersError::Io { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected an Io error, got {other:?}"),
        }
        let file = dir.path().join("users");
        std::fs::write(&file, "alice:pw\n").unwrap();
        assert_eq!(Users::load(&file).unwrap().secret("alice"), Some("pw"));
    }
}
