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

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// A message file found by listing `new/` or `cur/`; its name is in the
/// snapshot's name buffer.
struct Listed {
    /// The file name, in the name buffer.
    name: Range<usize>,
    /// The length of its unique part.
    unique_len: usize,
    /// The delivery time the name starts with, for sorting.
    key: u64,
    /// Which of [`MESSAGE_DIRS`].
    sub: u8,
    ino: u64,
}

/// The file names of one snapshot in one buffer, and the mailbox
/// directory they are in: a message holds a range of it instead of a path
/// of its own.
struct Names {
    dir: PathBuf,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Names {
    /// The path of file `name` in subdirectory `sub`.
    fn path(&self, sub: u8, name: &Range<usize>) -> PathBuf {
        let name = OsStr::from_bytes(&self.bytes[name.clone()]);
        self.dir.join(MESSAGE_DIRS[usize::from(sub)]).join(name)
    }
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
            None => Vec::new(),
            Some(Ok(entries)) => entries,
            Some(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "size cache is damaged; rebuilding it");
                corrupt = true;
                Vec::new()
            }
        };

        let mut names = Vec::with_capacity(cached.len() * 40 + 1024);
        let mut listed = Vec::with_capacity(cached.len() + cached.len() / 8 + 16);
        for (sub, sub_dir) in (0..).zip(MESSAGE_DIRS) {
            list_messages(&dir.join(sub_dir), sub, &mut names, &mut listed)?;
        }
        let name = |l: &Listed| &names[l.name.clone()];
        let unique = |l: &Listed| &names[l.name.start..l.name.start + l.unique_len];
        listed.sort_unstable_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then_with(|| unique(a).cmp(unique(b)))
                .then_with(|| {
                    MESSAGE_DIRS[usize::from(a.sub)].cmp(MESSAGE_DIRS[usize::from(b.sub)])
                })
                .then_with(|| name(a).cmp(name(b)))
        });
        let names = Arc::new(Names {
            dir: dir.clone(),
            bytes: names,
        });

        // Sizes: from the cache, walked alongside the sorted listing (its
        // entries are in the same order); else from the name; else read.
        let (mut next, mut hits, mut read) = (0, 0, 0);
        let mut found = Vec::with_capacity(listed.len());
        for file in listed {
            let message_unique = &names.bytes[file.name.start..file.name.start + file.unique_len];
            while cached
                .get(next)
                .is_some_and(|e| (name::sort_key(e.unique), e.unique) < (file.key, message_unique))
            {
                next += 1;
            }
            let hit = cached[next..]
                .iter()
                .take_while(|e| e.unique == message_unique)
                .find(|e| e.ino == file.ino)
                .map(|e| e.sizes);
            let info = name::parse(&names.bytes[file.name.clone()]);
            let (wire, raw, origin) = if let Some(sizes) = hit {
                hits += 1;
                (sizes.wire, Some(sizes.raw), Origin::Cache)
            } else if let Some(wire) = info.trusted_wire_size() {
                (wire, info.raw_size, Origin::Name)
            } else {
                let path = names.path(file.sub, &file.name);
                match fs::File::open(&path).and_then(measure) {
                    Ok(sizes) => {
                        read += 1;
                        (sizes.wire, Some(sizes.raw), Origin::Read)
                    }
                    Err(e) => {
                        if e.kind() != io::ErrorKind::NotFound {
                            tracing::warn!(path = %path.display(), error = %e,
                                "skipping unreadable message");
                        }
                        continue;
                    }
                }
            };
            found.push(Message {
                number: 0,
                size: wire,
                raw,
                hashed_uidl: None,
                names: Arc::clone(&names),
                name: file.name,
                unique_len: file.unique_len,
                sub: file.sub,
                ino: file.ino,
                origin,
            });
        }
        assign_uidls(&mut found);
        // The same file twice (a hard link in new/ and cur/) is one cache
        // entry: sorted, such pairs are neighbours.
        let repeated = found
            .windows(2)
            .filter(|w| {
                w.iter().all(|m| m.origin == Origin::Cache)
                    && w[0].ino == w[1].ino
                    && w[0].unique() == w[1].unique()
            })
            .count();
        let mailbox = Mailbox {
            dir,
            messages: found,
        };

        // The cache should hold an entry for every message whose size did
        // not come from its name. If every entry was used and nothing had
        // to be read, it does.
        if read > 0 || corrupt || hits - repeated != cached.len() {
            tracing::debug!(dir = %mailbox.dir.display(), read, hits, was = cached.len(), corrupt,
                "writing the size cache");
            mailbox.store_cache();
        }
        Ok(mailbox)
    }
}

/// Numbers the messages and gives each its UIDL: the unique name if RFC
/// 1939 allows it, otherwise a hash of it; a unique name that repeats
/// (the same message in `new/` and `cur/`, which a healthy Maildir never
/// has) gets a hash of its path, which is unique, so that UIDLs stay
/// distinct.
fn assign_uidls(messages: &mut [Message]) {
    let mut hashed = false;
    for index in 0..messages.len() {
        let repeat = index > 0 && messages[index - 1].unique() == messages[index].unique();
        let message = &mut messages[index];
        message.number = index + 1;
        if repeat {
            message.hashed_uidl =
                Some(hex_md5(message.path().as_os_str().as_encoded_bytes()).into());
        } else if !uidl_allowed(message.unique()) {
            message.hashed_uidl = Some(hex_md5(message.unique()).into());
        }
        hashed |= message.hashed_uidl.is_some();
    }
    if hashed {
        // A hash could equal another message's name: check them all.
        let mut seen = HashSet::with_capacity(messages.len());
        let clashes: Vec<usize> = (0..messages.len())
            .filter(|&i| !seen.insert(messages[i].uidl()))
            .collect();
        for i in clashes {
            let path = messages[i].path();
            messages[i].hashed_uidl = Some(hex_md5(path.as_os_str().as_encoded_bytes()).into());
        }
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
    /// The UIDL when it is not the unique name itself.
    hashed_uidl: Option<Box<str>>,
    /// The snapshot's file names.
    names: Arc<Names>,
    /// The file name, in `names`.
    name: Range<usize>,
    /// The length of its unique part.
    unique_len: usize,
    /// Which of [`MESSAGE_DIRS`] the file was in.
    sub: u8,
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
        match &self.hashed_uidl {
            Some(hashed) => hashed,
            // Checked by `uidl_allowed`: printable ASCII.
            None => std::str::from_utf8(self.unique()).unwrap_or_default(),
        }
    }

    /// The UIDL's octets (no UTF-8 check: they are ASCII).
    pub(crate) fn uidl_bytes(&self) -> &[u8] {
        match &self.hashed_uidl {
            Some(hashed) => hashed.as_bytes(),
            None => self.unique(),
        }
    }

    /// The unique part of the file name.
    fn unique(&self) -> &[u8] {
        &self.names.bytes[self.name.start..self.name.start + self.unique_len]
    }

    /// The path of the message file when the snapshot was taken.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.names.path(self.sub, &self.name)
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
        match fs::File::open(message.path()) {
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
        let result = match fs::remove_file(message.path()) {
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
            tracing::warn!(path = %message.path().display(), recorded = message.size,
                actual = sizes.wire, "message size was wrong; corrected");
        }
        let old_ino = message.ino;
        message.size = sizes.wire;
        message.raw = Some(sizes.raw);
        message.ino = ino;
        message.origin = Origin::Read;
        let unique = message.unique().to_vec();

        // Merge into the cache as it is on disk now.
        let bytes = cache::read(&self.dir).ok().flatten();
        let mut entries = bytes
            .as_deref()
            .and_then(|b| cache::parse(b).ok())
            .unwrap_or_default();
        entries.retain(|e| !(e.unique == unique.as_slice() && (e.ino == old_ino || e.ino == ino)));
        entries.push(cache::Entry {
            unique: &unique,
            ino,
            sizes,
        });
        entries.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
        self.write_cache(&cache::serialize(entries));
    }

    /// Writes the cache entries this snapshot implies: one per file
    /// (unique name and inode) whose size did not come from its name.
    fn store_cache(&self) {
        let mut entries: Vec<_> = self
            .messages
            .iter()
            .filter(|m| m.origin != Origin::Name)
            .filter_map(|m| {
                Some(cache::Entry {
                    unique: m.unique(),
                    ino: m.ino,
                    sizes: Sizes {
                        raw: m.raw?,
                        wire: m.size,
                    },
                })
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
        entries.dedup_by(|a, b| a.order() == b.order());
        self.write_cache(&cache::serialize(entries));
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
        let mut names = Vec::new();
        let mut listed = Vec::new();
        for (sub, sub_dir) in (0..).zip(MESSAGE_DIRS) {
            listed.clear();
            names.clear();
            list_messages(&self.dir.join(sub_dir), sub, &mut names, &mut listed)?;
            for file in &listed {
                if &names[file.name.start..file.name.start + file.unique_len] == message.unique() {
                    let name = OsStr::from_bytes(&names[file.name.clone()]);
                    return Ok(self.dir.join(sub_dir).join(name));
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "message no longer in the mailbox",
        ))
    }
}

/// Lists the message files (regular files that are not dotfiles) of
/// `dir`, Maildir subdirectory number `sub`, which may be missing: their
/// names go to the end of `names`, their entries to `out`. The file type
/// comes from the directory entry; only symbolic links (followed, as a
/// mail client reading the file would) and entries of unknown type cost a
/// `stat`.
fn list_messages(
    dir: &Path,
    sub: u8,
    names: &mut Vec<u8>,
    out: &mut Vec<Listed>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let name = file_name.as_encoded_bytes();
        if name.starts_with(b".") {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue; // gone since the listing
        };
        let ino = if kind.is_file() {
            entry.ino()
        } else if kind.is_symlink() {
            match fs::metadata(dir.join(&file_name)) {
                Ok(meta) if meta.is_file() => meta.ino(),
                _ => continue,
            }
        } else {
            continue;
        };
        let unique = name::unique_part(name);
        let start = names.len();
        names.extend_from_slice(name);
        out.push(Listed {
            name: start..names.len(),
            unique_len: unique.len(),
            key: name::sort_key(unique),
            sub,
            ino,
        });
    }
    Ok(())
}

/// Whether a unique name can be its own UIDL: 1 to 70 printable ASCII
/// characters (RFC 1939). Otherwise its UIDL is a hash of it, which is 32
/// characters, so always allowed.
fn uidl_allowed(unique: &[u8]) -> bool {
    (1..=MAX_UIDL_LEN).contains(&unique.len()) && unique.iter().all(|b| (0x21..=0x7E).contains(b))
}

/// The UIDL for a unique name on its own (see [`uidl_allowed`]).
#[cfg(test)]
fn uidl_for(unique: &[u8]) -> String {
    if uidl_allowed(unique) {
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
