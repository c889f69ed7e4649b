//! Server configuration and the state shared by all sessions.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::lock::LockRegistry;
use crate::maildir::Maildir;
use crate::penalty::{DEFAULT_AUTH_FAILURE_DELAY, DEFAULT_MAX_AUTH_FAILURE_DELAY, Penalties};
use crate::users::Users;

/// The default for [`Config::max_auth_failures`].
pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 3;

/// The default for [`Config::max_bad_commands`] (Dovecot's).
pub const DEFAULT_MAX_BAD_COMMANDS: u32 = 20;

/// POP3 server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Who may log in.
    pub users: Users,
    /// The root of the Maildir tree: user `u`'s mailbox is `maildir/u`.
    pub maildir: PathBuf,
    /// After this many failed `PASS`/`APOP` attempts the session is closed.
    /// `0` is treated as `1`.
    pub max_auth_failures: u32,
    /// After this many bad commands (answered `-ERR` without a response
    /// code: unknown, malformed, too long, invalid in the state, naming
    /// no such message) the next one closes the session, without the
    /// UPDATE state. Failed logins are not counted (they have
    /// [`Config::max_auth_failures`]), nor refusals that are not the
    /// client's doing (`[IN-USE]`, `[SYS/TEMP]`). The count is per
    /// session: good commands in between do not reset it (Dovecot, whose
    /// default this is, counts bad commands in a row).
    pub max_bad_commands: u32,
    /// How long the answer to a first failed `PASS`/`APOP` from a client
    /// address is held back; each further failure from it doubles the
    /// delay, up to [`Config::max_auth_failure_delay`], and a successful
    /// login clears it (see [`crate::penalty`]). Zero turns the delay off.
    pub auth_failure_delay: Duration,
    /// The cap on the failed-login delay.
    pub max_auth_failure_delay: Duration,
    /// The host name used in the greeting and in APOP timestamps.
    pub hostname: String,
    /// The name announced by the `IMPLEMENTATION` capability.
    pub implementation: String,
}

impl Config {
    /// A configuration with the default limits of
    /// [`DEFAULT_MAX_AUTH_FAILURES`] and [`DEFAULT_MAX_BAD_COMMANDS`], the
    /// failed-login delay of [`DEFAULT_AUTH_FAILURE_DELAY`] up to
    /// [`DEFAULT_MAX_AUTH_FAILURE_DELAY`], host name `localhost`, and this
    /// crate's name and version as the implementation.
    #[must_use]
    pub fn new(users: Users, maildir: impl Into<PathBuf>) -> Self {
        Self {
            users,
            maildir: maildir.into(),
            max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
            max_bad_commands: DEFAULT_MAX_BAD_COMMANDS,
            auth_failure_delay: DEFAULT_AUTH_FAILURE_DELAY,
            max_auth_failure_delay: DEFAULT_MAX_AUTH_FAILURE_DELAY,
            hostname: "localhost".to_owned(),
            implementation: concat!("berth-pop3 ", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Everything the sessions of one server share: the configuration, the
/// mailbox locks, the source of unique APOP timestamps, and the
/// failed-login delays per client address.
#[derive(Debug)]
pub struct Shared {
    config: Config,
    maildir: Maildir,
    locks: Arc<LockRegistry>,
    connections: AtomicU64,
    random: RandomState,
    penalties: Mutex<Penalties>,
}

impl Shared {
    /// Shared state with a fresh lock registry.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self::with_locks(config, Arc::new(LockRegistry::new()))
    }

    /// Shared state using an existing lock registry, for example to keep
    /// mailboxes locked across a configuration reload.
    #[must_use]
    pub fn with_locks(config: Config, locks: Arc<LockRegistry>) -> Self {
        Self {
            maildir: Maildir::new(config.maildir.clone()),
            locks,
            connections: AtomicU64::new(0),
            random: RandomState::new(),
            penalties: Mutex::new(Penalties::new(
                config.auth_failure_delay,
                config.max_auth_failure_delay,
            )),
            config,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The mailbox lock registry.
    #[must_use]
    pub fn locks(&self) -> &Arc<LockRegistry> {
        &self.locks
    }

    /// The Maildir tree.
    #[must_use]
    pub fn maildir(&self) -> &Maildir {
        &self.maildir
    }

    /// A login from `ip` failed at `now` (a [`Session`](crate::Session)
    /// reports it with [`AuthOutcome::Failed`](crate::AuthOutcome)): how
    /// long to hold its answer back. See [`crate::penalty`].
    pub fn login_failed(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.config.auth_failure_delay.is_zero() {
            return Duration::ZERO;
        }
        self.penalties().failed(ip, now)
    }

    /// A login from `ip` succeeded at `now`: its failures are forgotten.
    /// Returns how long to hold its answer back: the delay of the
    /// address's last failure, if it has one on record (so a slow answer
    /// does not tell a failure), else zero.
    pub fn login_succeeded(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.config.auth_failure_delay.is_zero() {
            return Duration::ZERO;
        }
        self.penalties().succeeded(ip, now)
    }

    fn penalties(&self) -> std::sync::MutexGuard<'_, Penalties> {
        self.penalties
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new APOP timestamp, `<pid.counter.time.random@host>`, unique per
    /// call: the counter never repeats within this process, and the process
    /// id and clock tell processes apart. The random part, a keyed hash of
    /// the rest, makes timestamps hard to predict.
    pub(crate) fn next_timestamp(&self) -> String {
        let counter = self.connections.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let pid = std::process::id();
        let random = self.random.hash_one((pid, counter, nanos));
        let host = timestamp_host(&self.config.hostname);
        format!("<{pid}.{counter}.{nanos}.{random:016x}@{host}>")
    }
}

/// The host name with every character that could break the `<...@host>`
/// syntax removed.
fn timestamp_host(hostname: &str) -> String {
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '@'))
        .collect();
    if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn timestamps_are_unique_and_well_formed() {
        let mut config = Config::new(Users::default(), "/nonexistent");
        config.hostname = "mail.example <evil>@x y".to_owned();
        let shared = Shared::new(config);
        let stamps: HashSet<String> = (0..1000).map(|_| shared.next_timestamp()).collect();
        assert_eq!(stamps.len(), 1000);
        for stamp in &stamps {
            let inner = stamp
                .strip_prefix('<')
                .and_then(|s| s.strip_suffix('>'))
                .unwrap();
            let (local, host) = inner.split_once('@').unwrap();
            assert_eq!(host, "mail.exampleevilxy");
            assert!(local.starts_with(&format!("{}.", std::process::id())));
            assert!(
                inner
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
            );
        }
    }

    #[test]
    fn empty_hostname_falls_back_to_localhost() {
        assert_eq!(timestamp_host(" <> "), "localhost");
    }

    #[test]
    fn defaults() {
        let config = Config::new(Users::default(), "/srv/mail");
        assert_eq!(config.max_auth_failures, 3);
        assert_eq!(config.max_bad_commands, 20);
        assert_eq!(config.auth_failure_delay, Duration::from_secs(2));
        assert_eq!(config.max_auth_failure_delay, Duration::from_secs(15));
        assert_eq!(config.hostname, "localhost");
        assert!(config.implementation.starts_with("berth-pop3 "));
        let shared = Shared::new(config);
        assert_eq!(shared.maildir().root(), std::path::Path::new("/srv/mail"));
        assert_eq!(shared.locks().locked_count(), 0);
    }
}
