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
//!
//! A login reads no message. Each message's POP3 size (with CRLF line
//! ends) comes from, in this order: the mailbox's size cache (see
//! `cache.rs`), when it has an entry for the same unique name and inode;
//! the `,W=` field of a Maildir++ file name (see `name.rs`); or, failing
//! both, from reading the message once, after which the cache has it. The
//! listing itself uses the file types the directory reports, so it costs
//! no `stat` per message either.
//!
//! Other programs may change the mailbox at any time. A message delivered
//! after the snapshot is not in it (RFC 1939 keeps the maildrop fixed for
//! the session) and is seen at the next login; a message moved or given
//! flags is found again by its unique name, and its file is never renamed
//! here, so flags other programs set are kept; a message removed behind
//! the session's back is reported as gone when it is read.

mod cache;
mod name;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use md5::{Digest, Md5};

use crate::message::{Sizes, measure};

/// The name of the size cache file in each mailbox directory (next to
/// `new/`, `cur/` and `tmp/`).
pub use cache::FILE_NAME as SIZE_CACHE_FILE;

/// The subdirectories that hold deliverable messages, in listing order.
const MESSAGE_DIRS: [&str; 2] = ["new", "cur"];

/// The longest unique-id RFC 1939 allows in a `UIDL` response.
const MAX_UIDL_LEN: usize = 70;

/// A tree of Maildir mailboxes, one per user, under a root directory.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

/// Where a message's size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The `,W=` field of its file name.
    Name,
    /// The size cache.
    Cache,
    /// Reading the message.
    Read,
}

/// A message file found by listing `new/` or `cur/`.
struct Listed {
    name: OsString,
    path: PathBuf,
    ino: u64,
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
    /// Sizes come from the size cache or the file names; only messages
    /// that have neither are read, and the cache is then brought up to
    /// date (written atomically; a cache that cannot be written only costs
    /// the next login the same reads). Files that disappear while the
    /// snapshot is taken are left out, as are files that cannot be read
    /// (with a warning in the log).
    ///
    /// # Errors
    ///
    /// Fails if `new/` or `cur/` exists but cannot be listed.
    pub fn snapshot(&self, user: &str) -> io::Result<Mailbox> {
        let dir = self.mailbox_dir(user);
        let cache_bytes = cache::read(&dir).unwrap_or_else(|e| {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the size cache; rebuilding it");
            None
        });
        let mut corrupt = false;
        let cached = match cache_bytes.as_deref().map(cache::parse) {
            None => cache::Entries::new(),
            Some(Ok(entries)) => entries,
            Some(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "size cache is damaged; rebuilding it");
                corrupt = true;
                cache::Entries::new()
            }
        };

        let mut found = Vec::new();
        let mut read = 0_usize;
        for sub in MESSAGE_DIRS {
            for file in list_messages(&dir.join(sub))? {
                let info = name::parse(file.name.as_encoded_bytes());
                let (wire, raw, origin) = if let Some(s) = cached.get(&(info.unique, file.ino)) {
                    (s.wire, Some(s.raw), Origin::Cache)
                } else if let Some(wire) = info.trusted_wire_size() {
                    (wire, info.raw_size, Origin::Name)
                } else {
                    match fs::File::open(&file.path).and_then(measure) {
                        Ok(sizes) => {
                            read += 1;
                            (sizes.wire, Some(sizes.raw), Origin::Read)
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            tracing::warn!(path = %file.path.display(), error = %e, "skipping unreadable message");
                            continue;
                        }
                    }
                };
                found.push(Message {
                    number: 0,
                    size: wire,
                    raw,
                    uidl: String::new(),
                    unique: info.unique.to_vec(),
                    path: file.path,
                    ino: file.ino,
                    origin,
                });
            }
        }
        found.sort_unstable_by(|a, b| {
            (name::sort_key(&a.unique), &a.unique, &a.path).cmp(&(
                name::sort_key(&b.unique),
                &b.unique,
                &b.path,
            ))
        });

        let mut seen = HashSet::with_capacity(found.len());
        for (index, message) in found.iter_mut().enumerate() {
            message.number = index + 1;
            let mut uidl = uidl_for(&message.unique);
            if !seen.insert(uidl.clone()) {
                // The same unique name in both new/ and cur/ (which a
                // healthy Maildir never has): fall back on the full path,
                // which is unique, so that UIDLs stay distinct.
                uidl = hex_md5(message.path.as_os_str().as_encoded_bytes());
                seen.insert(uidl.clone());
            }
            message.uidl = uidl;
        }
        let mailbox = Mailbox {
            dir,
            messages: found,
        };

        // The entries the cache should hold now: every message whose size
        // did not come from its name. If that is exactly what it held, it
        // is up to date.
        let wanted = mailbox.cache_entries();
        if read > 0 || corrupt || wanted.len() != cached.len() {
            tracing::debug!(dir = %mailbox.dir.display(), entries = wanted.len(), read,
                was = cached.len(), corrupt, "writing the size cache");
            mailbox.store_cache(wanted);
        }
        Ok(mailbox)
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
    /// The file's length, when known (from the cache, a `,S=` field, or
    /// reading the file).
    raw: Option<u64>,
    uidl: String,
    unique: Vec<u8>,
    path: PathBuf,
    ino: u64,
    origin: Origin,
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

    /// Whether the file `meta` describes is the one this snapshot sized,
    /// unchanged as far as its inode and length tell.
    pub(crate) fn matches(&self, meta: &fs::Metadata) -> bool {
        self.ino == meta.ino() && self.raw == Some(meta.len())
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
        let mut data = Vec::new();
        io::Read::read_to_end(&mut self.open(message)?, &mut data)?;
        Ok(data)
    }

    /// Opens the file of `message`, wherever it was moved to.
    ///
    /// # Errors
    ///
    /// Fails if the message no longer exists (`NotFound`) or cannot be
    /// opened.
    pub fn open(&self, message: &Message) -> io::Result<fs::File> {
        match fs::File::open(&message.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::File::open(self.relocate(message)?)
            }
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

    /// Records the sizes of message `number` as found by reading its file
    /// (whose inode is `ino`): in the snapshot, so `STAT` and `LIST` agree
    /// with what was sent, and in the size cache, so the next login has
    /// them.
    pub(crate) fn correct(&mut self, number: usize, sizes: Sizes, ino: u64) {
        let Some(message) = number.checked_sub(1).and_then(|i| self.messages.get_mut(i)) else {
            return;
        };
        if message.size != sizes.wire {
            tracing::warn!(path = %message.path.display(), recorded = message.size,
                actual = sizes.wire, "message size was wrong; corrected");
        }
        let old_ino = message.ino;
        message.size = sizes.wire;
        message.raw = Some(sizes.raw);
        message.ino = ino;
        message.origin = Origin::Read;
        let unique = message.unique.clone();

        // Merge into the cache as it is on disk now.
        let bytes = cache::read(&self.dir).ok().flatten();
        let mut entries = bytes
            .as_deref()
            .and_then(|b| cache::parse(b).ok())
            .unwrap_or_default();
        entries.remove(&(unique.as_slice(), old_ino));
        entries.insert((unique.as_slice(), ino), sizes);
        let mut sorted: Vec<_> = entries.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let file = cache::serialize(sorted.into_iter().map(|((u, i), s)| (u, i, s)));
        self.write_cache(&file);
    }

    /// The cache entries this snapshot implies, by unique name and inode.
    fn cache_entries(&self) -> HashMap<(&[u8], u64), Sizes> {
        self.messages
            .iter()
            .filter(|m| m.origin != Origin::Name)
            .filter_map(|m| {
                let raw = m.raw?;
                Some(((m.unique.as_slice(), m.ino), Sizes { raw, wire: m.size }))
            })
            .collect()
    }

    fn store_cache(&self, entries: HashMap<(&[u8], u64), Sizes>) {
        let mut sorted: Vec<_> = entries.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let file = cache::serialize(sorted.into_iter().map(|((u, i), s)| (u, i, s)));
        self.write_cache(&file);
    }

    fn write_cache(&self, file: &[u8]) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        match cache::write(&self.dir, file) {
            Ok(()) => {}
            // No mailbox directory: nothing to cache.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                // Once per process: a read-only Maildir would repeat it at
                // every login.
                if WARNED.swap(true, Ordering::Relaxed) {
                    tracing::debug!(dir = %self.dir.display(), error = %e, "cannot write the size cache");
                } else {
                    tracing::warn!(dir = %self.dir.display(), error = %e,
                        "cannot write the size cache; logins will read every message without a size in its name");
                }
            }
        }
    }

    /// Finds the current path of a message that is no longer at its
    /// snapshot path.
    fn relocate(&self, message: &Message) -> io::Result<PathBuf> {
        for sub in MESSAGE_DIRS {
            for file in list_messages(&self.dir.join(sub))? {
                if name::unique_part(file.name.as_encoded_bytes()) == message.unique.as_slice() {
                    return Ok(file.path);
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
/// Maildir subdirectory, which may be missing. The file type comes from
/// the directory entry; only symbolic links (followed, as a mail client
/// reading the file would) and entries of unknown type cost a `stat`.
fn list_messages(dir: &Path) -> io::Result<Vec<Listed>> {
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
        let Ok(kind) = entry.file_type() else {
            continue; // gone since the listing
        };
        let path = entry.path();
        let ino = if kind.is_file() {
            entry.ino()
        } else if kind.is_symlink() {
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta.ino(),
                _ => continue,
            }
        } else {
            continue;
        };
        files.push(Listed { name, path, ino });
    }
    Ok(files)
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
mod tests;
