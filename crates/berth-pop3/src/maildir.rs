//! A read-mostly view of Maildir mailboxes.
//!
//! Each user's mailbox is the directory `ROOT/<user>` with the usual `new/`,
//! `cur/` and `tmp/` subdirectories. At login a [`Mailbox`] snapshot lists
//! the messages in `new/` and `cur/` (never `tmp/`, never dotfiles), sorted
//! by delivery time and then by unique name, so the order is the same in
//! every session. Missing `new/` or `cur/` directories count as empty.
//!
//! The unique part of a message's file name (everything before the `:` that
//! introduces the `2,FLAGS` info) does not change when another mail client
//! moves the message from `new/` to `cur/` or changes its flags, so it is
//! the basis of the message's UIDL, and it is used to find the message again
//! if it was moved after the snapshot was taken.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::message::canonical_size_of;

/// The subdirectories that hold deliverable messages, in listing order.
const MESSAGE_DIRS: [&str; 2] = ["new", "cur"];

/// The longest unique-id RFC 1939 allows in a `UIDL` response.
const MAX_UIDL_LEN: usize = 70;

/// A tree of Maildir mailboxes, one per user, under a root directory.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// A Maildir tree rooted at `root`.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The mailbox directory of `user`.
    ///
    /// `user` must be a single path component, as guaranteed for names from
    /// a [`Users`](crate::Users) file.
    #[must_use]
    pub fn mailbox_dir(&self, user: &str) -> PathBuf {
        self.root.join(user)
    }

    /// Takes a snapshot of `user`'s mailbox.
    ///
    /// Files that disappear while the snapshot is taken are left out, as are
    /// files that cannot be read (with a warning in the log).
    ///
    /// # Errors
    ///
    /// Fails if `new/` or `cur/` exists but cannot be listed.
    pub fn snapshot(&self, user: &str) -> io::Result<Mailbox> {
        let dir = self.mailbox_dir(user);
        let mut found = Vec::new();
        for sub in MESSAGE_DIRS {
            for (name, path) in list_messages(&dir.join(sub))? {
                let size = match fs::File::open(&path).and_then(canonical_size_of) {
                    Ok(size) => size,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping unreadable message");
                        continue;
                    }
                };
                let unique = unique_part(name.as_encoded_bytes()).to_vec();
                found.push((sort_key(&unique), unique, path, size));
            }
        }
        found.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));

        let mut seen = HashSet::new();
        let messages = found
            .into_iter()
            .enumerate()
            .map(|(index, (_, unique, path, size))| {
                let mut uidl = uidl_for(&unique);
                if !seen.insert(uidl.clone()) {
                    // The same unique name in both new/ and cur/ (which a
                    // healthy Maildir never has): fall back on the full path,
                    // which is unique, so that UIDLs stay distinct.
                    uidl = hex_md5(path.as_os_str().as_encoded_bytes());
                    seen.insert(uidl.clone());
                }
                Message {
                    number: index + 1,
                    size,
                    uidl,
                    unique,
                    path,
                }
            })
            .collect();
        Ok(Mailbox { dir, messages })
    }
}

/// A snapshot of one mailbox, taken at login.
#[derive(Debug)]
pub struct Mailbox {
    dir: PathBuf,
    messages: Vec<Message>,
}

/// One message of a [`Mailbox`] snapshot.
#[derive(Debug, Clone)]
pub struct Message {
    number: usize,
    size: u64,
    uidl: String,
    unique: Vec<u8>,
    path: PathBuf,
}

impl Message {
    /// The 1-based message number.
    #[must_use]
    pub fn number(&self) -> usize {
        self.number
    }

    /// The size in octets as transmitted: with CRLF line endings, before
    /// dot-stuffing.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The unique-id listing (`UIDL`) of the message: 1 to 70 characters in
    /// the range 0x21 to 0x7E, stable across sessions.
    #[must_use]
    pub fn uidl(&self) -> &str {
        &self.uidl
    }

    /// The path of the message file when the snapshot was taken.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Mailbox {
    /// The mailbox directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of messages in the snapshot.
    #[must_use]
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the snapshot has no messages.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// All messages, in message-number order.
    #[must_use]
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Message number `number` (1-based).
    #[must_use]
    pub fn get(&self, number: usize) -> Option<&Message> {
        number
            .checked_sub(1)
            .and_then(|index| self.messages.get(index))
    }

    /// Reads the raw contents of `message`.
    ///
    /// If another client moved the file since the snapshot (for example
    /// from `new/` to `cur/`, or to change its flags), it is found again by
    /// its unique name.
    ///
    /// # Errors
    ///
    /// Fails if the message no longer exists (`NotFound`) or cannot be read.
    pub fn read(&self, message: &Message) -> io::Result<Vec<u8>> {
        match fs::read(&message.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::read(self.relocate(message)?),
            other => other,
        }
    }

    /// Removes the file of `message`, wherever it was moved to.
    ///
    /// A message that no longer exists anywhere counts as removed.
    ///
    /// # Errors
    ///
    /// Fails if the file exists but cannot be removed.
    pub fn remove(&self, message: &Message) -> io::Result<()> {
        let result = match fs::remove_file(&message.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.relocate(message).and_then(fs::remove_file)
            }
            other => other,
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Finds the current path of a message that is no longer at its
    /// snapshot path.
    fn relocate(&self, message: &Message) -> io::Result<PathBuf> {
        for sub in MESSAGE_DIRS {
            for (name, path) in list_messages(&self.dir.join(sub))? {
                if unique_part(name.as_encoded_bytes()) == message.unique.as_slice() {
                    return Ok(path);
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "message no longer in the mailbox",
        ))
    }
}

/// Lists the message files (regular files that are not dotfiles) of one
/// Maildir subdirectory, which may be missing.
fn list_messages(dir: &Path) -> io::Result<Vec<(OsString, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // Follows symbolic links, like a mail client reading the file would.
        if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push((name, path));
        }
    }
    Ok(files)
}

/// The unique part of a Maildir file name: everything before the first `:`.
fn unique_part(name: &[u8]) -> &[u8] {
    name.split(|&b| b == b':').next().unwrap_or(name)
}

/// Orders messages by the delivery time that starts a conventional Maildir
/// name (`<seconds>.<unique>.<host>`); names without one sort last.
fn sort_key(unique: &[u8]) -> u64 {
    let digits = unique.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return u64::MAX;
    }
    unique[..digits]
        .iter()
        .try_fold(0_u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX)
}

/// The UIDL for a unique name: the name itself if RFC 1939 allows it,
/// otherwise a hash of it (which is 32 characters, so always allowed).
fn uidl_for(unique: &[u8]) -> String {
    let printable = unique.iter().all(|b| (0x21..=0x7E).contains(b));
    if printable && (1..=MAX_UIDL_LEN).contains(&unique.len()) {
        // Printable ASCII is valid UTF-8.
        String::from_utf8_lossy(unique).into_owned()
    } else {
        hex_md5(unique)
    }
}

/// The lower-case hexadecimal MD5 digest of `data`.
pub(crate) fn hex_md5(data: &[u8]) -> String {
    use std::fmt::Write;
    Md5::digest(data)
        .iter()
        .fold(String::with_capacity(32), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(root: &Path, user: &str) -> PathBuf {
        let dir = root.join(user);
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        dir
    }

    #[test]
    fn snapshot_lists_new_and_cur_in_delivery_order() {
        let root = tempfile::tempdir().unwrap();
        let dir = mailbox(root.path(), "alice");
        fs::write(dir.join("cur/1700000002.b.host:2,S"), "b\n").unwrap();
        fs::write(dir.join("new/1700000003.c.host"), "c\r\n").unwrap();
        fs::write(dir.join("new/999999999.a.host"), "a\nA\n").unwrap();
        fs::write(dir.join("cur/zz-no-time"), "z").unwrap();
        fs::write(dir.join("tmp/1700000001.tmp.host"), "tmp").unwrap();
        fs::write(dir.join("new/.hidden"), "x").unwrap();
        fs::create_dir(dir.join("cur/1700000000.subdir")).unwrap();

        let snapshot = Maildir::new(root.path()).snapshot("alice").unwrap();
        let listed: Vec<_> = snapshot
            .messages()
            .iter()
            .map(|m| (m.number(), m.uidl(), m.size()))
            .collect();
        assert_eq!(
            listed,
            vec![
                (1, "999999999.a.host", 6),
                (2, "1700000002.b.host", 3),
                (3, "1700000003.c.host", 3),
                (4, "zz-no-time", 3),
            ]
        );
        assert_eq!(snapshot.get(0).map(Message::number), None);
        assert_eq!(snapshot.get(5).map(Message::number), None);
        assert_eq!(snapshot.read(snapshot.get(2).unwrap()).unwrap(), b"b\n");
    }

    #[test]
    fn missing_mailbox_is_empty() {
        let root = tempfile::tempdir().unwrap();
        let snapshot = Maildir::new(root.path()).snapshot("nobody").unwrap();
        assert!(snapshot.is_empty());
        assert_eq!(snapshot.len(), 0);
    }

    #[test]
    fn uidls_are_valid_and_hash_awkward_names() {
        assert_eq!(
            uidl_for(b"1700000000.M1P2.host,S=12"),
            "1700000000.M1P2.host,S=12"
        );
        let long = [b'x'; 71];
        let spaced = b"has space";
        let empty = b"";
        for awkward in [&long[..], &spaced[..], &empty[..], "caf\u{e9}".as_bytes()] {
            let uidl = uidl_for(awkward);
            assert_eq!(uidl.len(), 32);
            assert!(uidl.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(uidl, uidl_for(awkward), "hashing is deterministic");
        }
        assert_eq!(uidl_for(&[b'y'; 70]).len(), 70);
    }

    #[test]
    fn uidl_survives_a_move_from_new_to_cur_and_messages_are_found_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = mailbox(root.path(), "bob");
        fs::write(dir.join("new/1700000000.x.host"), "hello\n").unwrap();
        let maildir = Maildir::new(root.path());
        let before = maildir.snapshot("bob").unwrap();

        // Another client marks the message as seen.
        fs::rename(
            dir.join("new/1700000000.x.host"),
            dir.join("cur/1700000000.x.host:2,S"),
        )
        .unwrap();
        let message = before.get(1).unwrap();
        assert_eq!(before.read(message).unwrap(), b"hello\n");

        let after = maildir.snapshot("bob").unwrap();
        assert_eq!(after.get(1).unwrap().uidl(), message.uidl());

        before.remove(message).unwrap();
        assert!(maildir.snapshot("bob").unwrap().is_empty());
        // Removing it again is not an error: it is gone either way.
        before.remove(message).unwrap();
        let err = before.read(message).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn duplicate_unique_names_get_distinct_uidls() {
        let root = tempfile::tempdir().unwrap();
        let dir = mailbox(root.path(), "carol");
        fs::write(dir.join("new/1700000000.dup.host"), "1\n").unwrap();
        fs::write(dir.join("cur/1700000000.dup.host:2,"), "2\n").unwrap();
        let snapshot = Maildir::new(root.path()).snapshot("carol").unwrap();
        let uidls: HashSet<_> = snapshot.messages().iter().map(Message::uidl).collect();
        assert_eq!(uidls.len(), 2);
    }

    #[test]
    fn hex_md5_matches_a_known_vector() {
        assert_eq!(hex_md5(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}
