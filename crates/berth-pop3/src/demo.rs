//! A small demo Maildir tree and users file, for trying the server out.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::users::Users;

/// Where [`create_demo_maildir`] put things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoMaildir {
    /// The users file, `DIR/users`.
    pub users_file: PathBuf,
    /// The Maildir root, `DIR/maildir`.
    pub maildir: PathBuf,
}

/// The delivery time of the first demo message (2023-11-14T22:13:20Z).
const BASE_TIME: u64 = 1_700_000_000;

/// Writes a demo setup under `dir`: a users file `dir/users` listing
/// `users` (name, secret), and for each user a mailbox
/// `dir/maildir/<name>/{new,cur,tmp}` holding `messages_per_user` messages.
///
/// Odd-numbered messages are delivered to `new/` with LF line endings,
/// even-numbered ones to `cur/` (flagged as seen) with CRLF line endings.
/// Every message has body lines starting with `.` and a line consisting of a
/// single `.`, which exercise dot-stuffing. File names are deterministic, so
/// running this again rewrites the same messages (and replaces the users
/// file). Messages are written to `tmp/` and then renamed, as Maildir
/// delivery requires.
///
/// # Errors
///
/// Fails with [`io::ErrorKind::InvalidInput`] if a name or secret would not
/// make a valid users file, or with the underlying error if writing fails.
pub fn create_demo_maildir(
    dir: &Path,
    users: &[(&str, &str)],
    messages_per_user: usize,
) -> io::Result<DemoMaildir> {
    let mut users_text = String::from("# berth-pop3 demo users: name:secret\n");
    for (name, secret) in users {
        if [name, secret].iter().any(|s| s.contains(['\n', '\r'])) {
            return Err(invalid(
                "user names and secrets must not contain line breaks",
            ));
        }
        if name.contains(':') {
            return Err(invalid("user names must not contain `:`"));
        }
        let _ = writeln!(users_text, "{name}:{secret}");
    }
    Users::parse(&users_text).map_err(|e| invalid(&e.to_string()))?;

    let maildir = dir.join("maildir");
    for (name, _) in users {
        let mailbox = maildir.join(name);
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(mailbox.join(sub))?;
        }
        for number in 1..=messages_per_user {
            deliver(&mailbox, name, number, messages_per_user)?;
        }
    }

    let users_file = dir.join("users");
    write_private(&users_file, users_text.as_bytes())?;
    Ok(DemoMaildir {
        users_file,
        maildir,
    })
}

/// Writes demo message `number` into `mailbox`.
fn deliver(mailbox: &Path, user: &str, number: usize, total: usize) -> io::Result<()> {
    let time = BASE_TIME + number as u64;
    let unique = format!("{time}.M{number}.berth-demo");
    let text = format!(
        "From: Berth Demo <demo@localhost>\n\
         To: {user}@localhost\n\
         Subject: Demo message {number} of {total}\n\
         Date: Tue, 14 Nov 2023 22:13:20 +0000\n\
         Message-ID: <{unique}@localhost>\n\
         \n\
         Hello {user},\n\
         \n\
         this is demo message {number}.\n\
         .This line starts with a dot, so it is dot-stuffed on the wire.\n\
         ..And this one starts with two.\n\
         .\n\
         The line above is a single dot.\n\
         \n\
         -- \n\
         berth\n"
    );
    let (bytes, target) = if number % 2 == 1 {
        (text.into_bytes(), mailbox.join("new").join(&unique))
    } else {
        let crlf = text.replace('\n', "\r\n").into_bytes();
        (crlf, mailbox.join("cur").join(format!("{unique}:2,S")))
    };
    let staging = mailbox.join("tmp").join(&unique);
    fs::write(&staging, bytes)?;
    fs::rename(&staging, &target)
}

/// Writes a file readable only by its owner (it holds secrets).
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // `mode` only applies to new files; tighten an existing one too.
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)?.write_all(contents)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildir::Maildir;
    use crate::message::sizes_of;

    #[test]
    fn creates_users_file_and_mailboxes() {
        let dir = tempfile::tempdir().unwrap();
        let demo = create_demo_maildir(
            dir.path(),
            &[("alice", "wonderland"), ("bob", "builder")],
            3,
        )
        .unwrap();
        assert_eq!(demo.users_file, dir.path().join("users"));
        let users = Users::load(&demo.users_file).unwrap();
        assert_eq!(users.secret("alice"), Some("wonderland"));
        assert_eq!(users.secret("bob"), Some("builder"));

        let alice = demo.maildir.join("alice");
        assert!(alice.join("tmp").is_dir());
        assert_eq!(fs::read_dir(alice.join("tmp")).unwrap().count(), 0);
        assert!(alice.join("new/1700000001.M1.berth-demo").is_file());
        assert!(alice.join("cur/1700000002.M2.berth-demo:2,S").is_file());

        let snapshot = Maildir::new(&demo.maildir).snapshot("bob").unwrap();
        assert_eq!(snapshot.len(), 3);
        let lf = snapshot.read(snapshot.get(1).unwrap()).unwrap();
        let crlf = snapshot.read(snapshot.get(2).unwrap()).unwrap();
        assert!(!lf.contains(&b'\r'));
        assert!(crlf.windows(2).any(|w| w == b"\r\n"));
        assert!(
            lf.split(|&b| b == b'\n')
                .any(|line| line.starts_with(b".") && line.len() > 1)
        );
        assert!(lf.split(|&b| b == b'\n').any(|line| line == b"."));
        for message in snapshot.messages() {
            let raw = snapshot.read(message).unwrap();
            assert_eq!(message.size(), sizes_of(&raw).wire);
        }
    }

    #[cfg(unix)]
    #[test]
    fn users_file_is_private_and_rerunning_is_harmless() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        create_demo_maildir(dir.path(), &[("alice", "a")], 2).unwrap();
        let demo = create_demo_maildir(dir.path(), &[("alice", "b")], 2).unwrap();
        let mode = fs::metadata(&demo.users_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Users::load(&demo.users_file).unwrap().secret("alice"),
            Some("b")
        );
        assert_eq!(
            Maildir::new(&demo.maildir).snapshot("alice").unwrap().len(),
            2
        );
    }

    #[test]
    fn rejects_invalid_users() {
        let dir = tempfile::tempdir().unwrap();
        for users in [
            &[("bad name", "x")][..],
            &[("a", "x\ny")],
            &[("a", "x"), ("a", "y")],
            &[("../up", "x")],
            &[("a:b", "x")],
        ] {
            let err = create_demo_maildir(dir.path(), users, 1).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{users:?}");
        }
        assert!(!dir.path().join("maildir").exists());
    }
}
