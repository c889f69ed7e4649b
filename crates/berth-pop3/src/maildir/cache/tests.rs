//! The cache file format: round trips, and every kind of damage rejected.

use super::*;

fn entry(unique: &[u8], ino: u64, raw: u64, wire: u64) -> Entry<'_> {
    Entry {
        unique,
        ino,
        sizes: Sizes { raw, wire },
    }
}

fn sample() -> Vec<u8> {
    serialize([
        entry(b"1700000000.a.host", 11, 10, 12),
        entry(b"1700000000.a.host", 13, 5, 5),
        entry(b"1700000001.b.host", 2, 0, 0),
        entry(b"odd name\nwith:bytes", 12, 1, 2),
    ])
}

#[test]
fn round_trips_any_unique_name_in_order() {
    let bytes = sample();
    let entries = parse(&bytes).unwrap();
    assert_eq!(
        entries,
        [
            entry(b"1700000000.a.host", 11, 10, 12),
            entry(b"1700000000.a.host", 13, 5, 5),
            entry(b"1700000001.b.host", 2, 0, 0),
            entry(b"odd name\nwith:bytes", 12, 1, 2),
        ]
    );
    assert!(bytes.starts_with(b"berth-pop3 sizes 1\n11 10 12 17:1700000000.a.host\n"));
    assert!(parse(&serialize([])).unwrap().is_empty());
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = sample();
    for len in 0..bytes.len() {
        assert!(parse(&bytes[..len]).is_err(), "cut at {len}");
    }
}

#[test]
fn every_single_byte_change_is_rejected() {
    let bytes = sample();
    for at in 0..bytes.len() {
        for flip in [0x01, 0x20, 0x80] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            assert!(parse(&damaged).is_err(), "byte {at} ^ {flip:#x}");
        }
    }
}

#[test]
fn errors_say_what_is_wrong() {
    assert_eq!(parse(b"").unwrap_err(), CacheError::Header);
    assert_eq!(
        parse(b"berth-pop3 sizes 2\nend 0 0\n").unwrap_err(),
        CacheError::Header
    );
    let mut truncated = sample();
    truncated.truncate(truncated.len() - 30);
    assert_eq!(parse(&truncated).unwrap_err(), CacheError::Truncated);
    let malformed = serialize([entry(b"x", 1, 1, 1)]);
    let malformed = String::from_utf8(malformed)
        .unwrap()
        .replace("1 1 1 1:x", "1 1 1 2:x");
    assert_eq!(
        parse(malformed.as_bytes()).unwrap_err(),
        CacheError::Entry(1)
    );
    let implausible = serialize([entry(b"x", 1, 10, 9)]);
    assert_eq!(parse(&implausible).unwrap_err(), CacheError::Implausible(1));
    let twice = serialize([entry(b"x", 1, 1, 1), entry(b"x", 1, 1, 2)]);
    assert_eq!(parse(&twice).unwrap_err(), CacheError::Order(2));
    let backwards = serialize([entry(b"2.x", 1, 1, 1), entry(b"1.x", 1, 1, 1)]);
    assert_eq!(parse(&backwards).unwrap_err(), CacheError::Order(2));
    let mut miscounted = sample();
    let at = miscounted.len() - 20;
    assert_eq!(&miscounted[at..at + 2], b" 4");
    miscounted[at + 1] = b'5';
    assert_eq!(parse(&miscounted).unwrap_err(), CacheError::Checksum);
}

#[test]
fn writes_atomically_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(dir.path()).unwrap(), None);
    write(dir.path(), b"first").unwrap();
    write(dir.path(), &sample()).unwrap();
    assert_eq!(read(dir.path()).unwrap(), Some(sample()));
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [FILE_NAME]);
    // A mailbox directory that cannot be written to: an error, no mess.
    let missing = dir.path().join("no-such-mailbox");
    assert!(write(&missing, b"x").is_err());
}
