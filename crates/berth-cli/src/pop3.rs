//! `berth pop3`: a POP3 server (RFC 1939 with RFC 2449 `CAPA`) serving
//! Maildir mailboxes, and `berth pop3-demo`, which creates a Maildir to try
//! it on.
//!
//! The server itself is [`berth_pop3::server`]; this module holds the
//! flags, builds the configuration, and starts and stops it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth::Framed;
use berth::signal::TerminationSignals;
use berth_pop3::penalty::DEFAULT_AUTH_FAILURE_DELAY;
use berth_pop3::server::{DEFAULT_LOGIN_TIMEOUT, Pop3Server, WORKER_SHUTDOWN_TIMEOUT};
use berth_pop3::{DEFAULT_MAX_AUTH_FAILURES, DEFAULT_MAX_BAD_COMMANDS, Users};
use clap::Args;

use crate::logging::LogFormat;
use crate::opts::ServerOpts;
use crate::serve::Workers;

/// The demo accounts `berth pop3-demo` creates (name, password).
const DEMO_USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

/// RFC 1939's autologout minimum: the idle timeout unless `--idle-timeout`
/// says otherwise (a session with no byte either way for this long is
/// closed; nothing is deleted).
const POP3_IDLE_SECS: u64 = 600;

/// Flags of `berth pop3`.
#[derive(Debug, Args)]
pub struct Pop3Args {
    #[command(flatten)]
    server: ServerOpts,
    /// Root of the Maildir tree: user NAME's mailbox is DIR/NAME/{new,cur,tmp}.
    #[arg(long, value_name = "DIR")]
    maildir: PathBuf,
    /// Users file: one `name:secret` per line (the secret is the PASS password and the APOP secret).
    #[arg(long, value_name = "FILE")]
    users: PathBuf,
    /// Worker threads that run the commands (all Maildir access happens there).
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// Close a session after this many failed PASS/APOP attempts.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_AUTH_FAILURES,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_auth_failures: u32,
    /// Close a session that has not logged in this many seconds after connecting.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_LOGIN_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    login_timeout: u64,
    /// Close a session at its bad command (answered -ERR: unknown, malformed,
    /// invalid in the state...) past this many (0: at the first); failed
    /// logins do not count.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BAD_COMMANDS)]
    max_bad_commands: u32,
    /// Answer a failed PASS/APOP after this many seconds, doubled with each
    /// further failure from the client's address (up to 15 s) until a login
    /// from it succeeds (which is answered after its last failure's delay);
    /// 0 turns the delay off.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_AUTH_FAILURE_DELAY.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=15))]
    auth_failure_delay: u64,
    /// Host name for the greeting's APOP timestamp (default: the system's host name).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
}

/// Flags of `berth pop3-demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory to create the demo in (DIR/users and DIR/maildir).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Messages in each demo mailbox.
    #[arg(long, value_name = "N", default_value_t = 5)]
    messages: usize,
}

/// `berth pop3`.
pub fn run(args: Pop3Args, log: LogFormat) -> Result<(), String> {
    // Before the worker threads start.
    let startup = args.server.startup(log)?;
    check_maildir(&args.maildir)?;
    let users = Users::load(&args.users).map_err(|e| e.to_string())?;
    // Before the worker threads start, so that they inherit the mask too:
    // a SIGTERM the kernel hands to a thread without it would kill the
    // process instead of draining it.
    let _signals = TerminationSignals::block().map_err(|e| format!("signals: {e}"))?;
    let handler = Pop3Server::builder(users, args.maildir.clone())
        .max_auth_failures(args.max_auth_failures)
        .max_bad_commands(args.max_bad_commands)
        .auth_failure_delay(Duration::from_secs(args.auth_failure_delay))
        .login_timeout(Duration::from_secs(args.login_timeout))
        .hostname(args.hostname.clone().unwrap_or_else(system_hostname))
        .workers(usize::from(args.workers))
        .idle_timeout(args.server.idle_timeout_or(POP3_IDLE_SECS))
        .build()
        .map_err(|e| e.to_string())?;
    // After the drain (the server, and with it the handler, gone), the
    // workers finish what is queued.
    let workers = Workers {
        pool: handler.worker_pool().clone(),
        finish: WORKER_SHUTDOWN_TIMEOUT,
    };
    args.server.serve(
        startup,
        Framed::new(handler),
        berth::DEFAULT_BUFFER_SIZE as u32,
        // The idle timeout (the autologout) and whatever else the handler
        // sets on the server that runs it.
        |b, framed| framed.inner().configure(b),
        Some(workers),
    )
}

/// `berth pop3-demo DIR`.
pub fn run_demo(args: DemoArgs) -> Result<(), String> {
    fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let demo = berth_pop3::demo::create_demo_maildir(&args.dir, &DEMO_USERS, args.messages)
        .map_err(|e| format!("cannot create the demo in {}: {e}", args.dir.display()))?;
    println!("Created a demo Maildir in {}:", args.dir.display());
    println!("  users file: {}", demo.users_file.display());
    println!("  maildir:    {}", demo.maildir.display());
    println!();
    println!(
        "Demo accounts (user / password), {} messages each:",
        args.messages
    );
    for (name, secret) in DEMO_USERS {
        println!("  {name} / {secret}");
    }
    println!();
    println!("Run the server:");
    println!(
        "  berth pop3 --maildir {} --users {} --listen 127.0.0.1:1110",
        shell_quote(&demo.maildir),
        shell_quote(&demo.users_file)
    );
    println!();
    println!("POP3 without TLS sends passwords in clear: use it on localhost only.");
    Ok(())
}

/// Fail with one clear line unless `dir` is a readable directory.
fn check_maildir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("maildir {shown} is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("maildir {shown} does not exist"));
        }
        Err(e) => return Err(format!("cannot access maildir {shown}: {e}")),
    }
    fs::read_dir(dir)
        .map(drop)
        .map_err(|e| format!("cannot read maildir {shown}: {e}"))
}

fn system_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `path` as one shell word.
fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:=@".contains(&b));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
