//! Snapshots, UIDLs and the size cache, over temporary Maildir trees.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

use super::*;

fn mailbox(root: &Path, user: &str) -> PathBuf {
    let dir = root.join(user);
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

/// The sizes in a snapshot, by UIDL.
fn sizes(mailbox: &Mailbox) -> Vec<(String, u64)> {
    mailbox
        .messages()
        .iter()
        .map(|m| (m.uidl().to_owned(), m.size()))
        .collect()
}

/// The cache file's entries: (unique name, inode) -> (file octets, POP3 octets).
fn cache_of(dir: &Path) -> Option<Vec<(String, u64, u64, u64)>> {
    let bytes = cache::read(dir).unwrap()?;
    let mut entries: Vec<_> = cache::parse(&bytes)
        .expect("the cache parses")
        .into_iter()
        .map(|e| {
            let unique = String::from_utf8_lossy(e.unique).into_owned();
            (unique, e.ino, e.sizes.raw, e.sizes.wire)
        })
        .collect();
    entries.sort();
    Some(entries)
}

/// The inode of the cache file: a new one means it was rewritten.
fn cache_inode(dir: &Path) -> u64 {
    fs::metadata(cache::path(dir)).unwrap().ino()
}

fn ino(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

/// Plants a cache with the given entries (unique, path, file octets, POP3 octets).
fn plant(dir: &Path, entries: &[(&str, &Path, u64, u64)]) {
    let mut entries: Vec<_> = entries
        .iter()
        .map(|(u, p, raw, wire)| cache::Entry {
            unique: u.as_bytes(),
            ino: ino(p),
            sizes: Sizes {
                raw: *raw,
                wire: *wire,
            },
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
    cache::write(dir, &cache::serialize(entries)).unwrap();
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
    std::os::unix::fs::symlink(dir.join("cur/zz-no-time"), dir.join("cur/zz-link")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("cur/zz-dangling")).unwrap();

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
            (4, "zz-link", 3),
            (5, "zz-no-time", 3),
        ]
    );
    assert_eq!(snapshot.get(0).map(Message::number), None);
    assert_eq!(snapshot.get(6).map(Message::number), None);
    assert_eq!(snapshot.read(snapshot.get(2).unwrap()).unwrap(), b"b\n");
}

#[test]
fn missing_mailbox_is_empty_and_gets_no_cache() {
    let root = tempfile::tempdir().unwrap();
    let snapshot = Maildir::new(root.path()).snapshot("nobody").unwrap();
    assert!(snapshot.is_empty());
    assert_eq!(snapshot.len(), 0);
    assert!(!root.path().join("nobody").exists());
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

#[test]
fn first_login_reads_and_caches_the_sizes_the_next_uses_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    let a = dir.join("new/1700000001.a.host");
    let b = dir.join("cur/1700000002.b.host:2,S");
    fs::write(&a, "one\ntwo\n").unwrap();
    fs::write(&b, "x\r\n").unwrap();
    let maildir = Maildir::new(root.path());

    let first = maildir.snapshot("alice").unwrap();
    assert_eq!(
        sizes(&first),
        [
            ("1700000001.a.host".into(), 10),
            ("1700000002.b.host".into(), 3)
        ]
    );
    assert_eq!(
        cache_of(&dir).unwrap(),
        [
            ("1700000001.a.host".into(), ino(&a), 8, 10),
            ("1700000002.b.host".into(), ino(&b), 3, 3),
        ]
    );
    // Nothing changed: the cache is neither rewritten nor bypassed. (A
    // planted size, plausible but not the file's, shows which was used.)
    plant(
        &dir,
        &[
            ("1700000001.a.host", &a, 8, 9),
            ("1700000002.b.host", &b, 3, 3),
        ],
    );
    let planted = cache_inode(&dir);
    let second = maildir.snapshot("alice").unwrap();
    assert_eq!(sizes(&second)[0].1, 9, "the size comes from the cache");
    assert_eq!(
        cache_inode(&dir),
        planted,
        "an up-to-date cache is not rewritten"
    );
}

#[test]
fn sizes_in_maildir_plus_plus_names_are_used_without_reading() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    // The name says 12 and 14; the file says otherwise: the name wins
    // (nothing is read), until the message is read (see `correct`).
    fs::write(dir.join("new/1700000001.a.host,S=12,W=14"), "short\n").unwrap();
    // Only a file size: not the POP3 size of an LF file, so it is read.
    fs::write(dir.join("new/1700000002.b.host,S=2"), "b\n").unwrap();
    // A contradictory pair is not trusted either.
    fs::write(dir.join("cur/1700000003.c.host,S=9,W=3:2,S"), "c\n").unwrap();
    let snapshot = Maildir::new(root.path()).snapshot("alice").unwrap();
    let listed: Vec<_> = snapshot.messages().iter().map(Message::size).collect();
    assert_eq!(listed, [14, 3, 3]);
    let cached: Vec<_> = cache_of(&dir)
        .unwrap()
        .into_iter()
        .map(|(u, _, raw, wire)| (u, raw, wire))
        .collect();
    assert_eq!(
        cached,
        [
            ("1700000002.b.host,S=2".into(), 2, 3),
            ("1700000003.c.host,S=9,W=3".into(), 2, 3)
        ]
    );
}

#[test]
fn names_with_sizes_need_no_cache_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    fs::write(dir.join("new/1700000001.a.host,S=2,W=3"), "a\n").unwrap();
    Maildir::new(root.path()).snapshot("alice").unwrap();
    assert_eq!(cache_of(&dir), None);
}

#[test]
fn new_vanished_renamed_and_replaced_files_are_noticed() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    let maildir = Maildir::new(root.path());
    let keep = dir.join("new/1700000001.keep.host");
    let gone = dir.join("new/1700000002.gone.host");
    let moved = dir.join("new/1700000003.moved.host");
    let replaced = dir.join("cur/1700000004.replaced.host:2,");
    for path in [&keep, &gone, &moved, &replaced] {
        fs::write(path, "1\n").unwrap();
    }
    maildir.snapshot("alice").unwrap();
    // Planted sizes (plausible for "1\n") show which entries survive.
    plant(
        &dir,
        &[
            ("1700000001.keep.host", &keep, 2, 4),
            ("1700000002.gone.host", &gone, 2, 4),
            ("1700000003.moved.host", &moved, 2, 4),
            ("1700000004.replaced.host", &replaced, 2, 4),
        ],
    );

    fs::remove_file(&gone).unwrap();
    // Another client sets flags: same unique name, same inode.
    let flagged = dir.join("cur/1700000003.moved.host:2,FS");
    fs::rename(&moved, &flagged).unwrap();
    // Rewritten through a temporary file: a new inode under the old name.
    let temp = dir.join("tmp/rewrite");
    fs::write(&temp, "one\ntwo\n").unwrap();
    fs::rename(&temp, &replaced).unwrap();
    // And a delivery.
    let delivered = dir.join("new/1700000005.new.host");
    fs::write(&delivered, "new\n").unwrap();

    let snapshot = maildir.snapshot("alice").unwrap();
    assert_eq!(
        sizes(&snapshot),
        [
            ("1700000001.keep.host".into(), 4),
            ("1700000003.moved.host".into(), 4),
            ("1700000004.replaced.host".into(), 10),
            ("1700000005.new.host".into(), 5),
        ]
    );
    assert_eq!(
        cache_of(&dir).unwrap(),
        [
            ("1700000001.keep.host".into(), ino(&keep), 2, 4),
            ("1700000003.moved.host".into(), ino(&flagged), 2, 4),
            ("1700000004.replaced.host".into(), ino(&replaced), 8, 10),
            ("1700000005.new.host".into(), ino(&delivered), 4, 5),
        ]
    );
}

#[test]
fn a_damaged_cache_is_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    let a = dir.join("new/1700000001.a.host");
    fs::write(&a, "a\n").unwrap();
    let maildir = Maildir::new(root.path());
    let wanted = vec![("1700000001.a.host".to_owned(), ino(&a), 2, 3)];
    let good = {
        maildir.snapshot("alice").unwrap();
        cache::read(&dir).unwrap().unwrap()
    };
    let mut damaged = vec![
        b"garbage".to_vec(),
        Vec::new(),
        good[..good.len() - 3].to_vec(),
        String::from_utf8(good.clone())
            .unwrap()
            .replace(" 2 3 ", " 2 3000 ")
            .into_bytes(),
    ];
    // A torn write: the start of a good file and the end of another.
    damaged.push([&good[..good.len() / 2], &good[..]].concat());
    for bytes in damaged {
        fs::write(cache::path(&dir), &bytes).unwrap();
        let snapshot = maildir.snapshot("alice").unwrap();
        assert_eq!(sizes(&snapshot)[0].1, 3, "{bytes:?}");
        assert_eq!(cache_of(&dir).unwrap(), wanted, "rebuilt after {bytes:?}");
    }
    // Missing: rebuilt too.
    fs::remove_file(cache::path(&dir)).unwrap();
    maildir.snapshot("alice").unwrap();
    assert_eq!(cache_of(&dir).unwrap(), wanted);
}

#[test]
fn a_cache_that_cannot_be_written_only_costs_reads() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    fs::write(dir.join("new/1700000001.a.host"), "a\n").unwrap();
    // A directory where the cache file should be: the rename fails.
    fs::create_dir(cache::path(&dir)).unwrap();
    let maildir = Maildir::new(root.path());
    for _ in 0..2 {
        let snapshot = maildir.snapshot("alice").unwrap();
        assert_eq!(sizes(&snapshot), [("1700000001.a.host".into(), 3)]);
    }
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_hard_link_in_new_and_cur_is_one_cache_entry() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    let a = dir.join("new/1700000001.a.host");
    fs::write(&a, "a\n").unwrap();
    // What a crash between link() and unlink() of a move leaves behind.
    fs::hard_link(&a, dir.join("cur/1700000001.a.host:2,S")).unwrap();
    let maildir = Maildir::new(root.path());
    assert_eq!(maildir.snapshot("alice").unwrap().len(), 2);
    let written = cache_inode(&dir);
    assert_eq!(cache_of(&dir).unwrap().len(), 1);
    maildir.snapshot("alice").unwrap();
    assert_eq!(
        cache_inode(&dir),
        written,
        "stable: not rewritten at every login"
    );
}

#[test]
fn a_delivery_after_the_snapshot_waits_for_the_next_login() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    fs::write(dir.join("new/1700000001.a.host"), "a\n").unwrap();
    let maildir = Maildir::new(root.path());
    let open = maildir.snapshot("alice").unwrap();
    fs::write(dir.join("new/1700000002.b.host"), "bb\n").unwrap();
    assert_eq!(open.len(), 1);
    let next = maildir.snapshot("alice").unwrap();
    assert_eq!(
        sizes(&next),
        [
            ("1700000001.a.host".into(), 3),
            ("1700000002.b.host".into(), 4)
        ]
    );
    assert_eq!(cache_of(&dir).unwrap().len(), 2);
}

#[test]
fn a_corrected_size_reaches_the_snapshot_and_the_cache() {
    let root = tempfile::tempdir().unwrap();
    let dir = mailbox(root.path(), "alice");
    let a = dir.join("new/1700000001.a.host,S=2,W=3");
    let b = dir.join("new/1700000002.b.host");
    fs::write(&a, "aaaa\n").unwrap();
    fs::write(&b, "b\n").unwrap();
    let maildir = Maildir::new(root.path());
    let mut snapshot = maildir.snapshot("alice").unwrap();
    assert_eq!(snapshot.get(1).unwrap().size(), 3, "as the name says");

    snapshot.correct(1, Sizes { raw: 5, wire: 6 }, ino(&a));
    assert_eq!(snapshot.get(1).unwrap().size(), 6);
    assert!(snapshot.get(1).unwrap().matches(&fs::metadata(&a).unwrap()));
    // The cache entry now outranks the name, and the other entry stays.
    assert_eq!(
        cache_of(&dir).unwrap(),
        [
            ("1700000001.a.host,S=2,W=3".into(), ino(&a), 5, 6),
            ("1700000002.b.host".into(), ino(&b), 2, 3),
        ]
    );
    assert_eq!(maildir.snapshot("alice").unwrap().get(1).unwrap().size(), 6);
}
