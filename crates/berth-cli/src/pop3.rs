//! `berth pop3`: a POP3 server (RFC 1939 with RFC 2449 `CAPA`) serving
//! Maildir mailboxes, and `berth pop3-demo`, which creates a Maildir to try
//! it on.
//!
//! The protocol lives in the sans-IO [`berth_pop3::Session`]; this module
//! connects it to the network:
//!
//! - The IO threads only frame CRLF lines ([`LineCodec`], at most 255 octets
//!   including CRLF, RFC 2449) and write the greeting.
//! - Every command line becomes a job on a [`WorkerPool`], which runs the
//!   jobs of one connection one at a time and in order. So everything that
//!   touches the Maildir (the login snapshot, `RETR`, `TOP`, `QUIT`'s
//!   UPDATE) runs on a worker, never on an IO thread, and pipelined commands
//!   are answered in the order they were sent.
//! - A small janitor thread closes sessions idle for longer than
//!   `--idle-timeout` (the RFC 1939 autologout timer) without entering the
//!   UPDATE state.
//!
//! The connection's state owns the session. Queued jobs and the janitor hold
//! only weak references, so when the connection closes for any reason other
//! than `QUIT` (the client went away, a reset, the autologout, server
//! shutdown) the session is dropped, which releases the mailbox lock and
//! deletes nothing; jobs still queued for it then do nothing.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, TryLockError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use berth::codec::{FrameError, LineCodec, LineEnding};
use berth::{
    ConnHandle, ConnId, FrameErrorAction, FrameHandler, Framed, FramedConn, IoBuf, Lifecycle,
    ServerEvent, WorkerPool,
};
use berth_pop3::{After, Config, DEFAULT_MAX_AUTH_FAILURES, Reply, Session, Shared, Users};
use clap::Args;

use crate::opts::ServerOpts;

/// The longest command line, CRLF included (RFC 2449 section 4).
const MAX_LINE: usize = 255;

/// How long to wait for queued jobs when the server stops.
const POOL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the janitor sends before closing an idle session.
const AUTOLOGOUT: &[u8] = b"-ERR autologout; idle for too long\r\n";

/// The demo accounts `berth pop3-demo` creates (name, password).
const DEMO_USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

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
    /// Close a session after this many seconds without a command (autologout; nothing is deleted).
    #[arg(long, value_name = "SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Close a session after this many failed PASS/APOP attempts.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_AUTH_FAILURES,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_auth_failures: u32,
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
pub fn run(args: Pop3Args) -> Result<(), String> {
    check_maildir(&args.maildir)?;
    let users = Users::load(&args.users).map_err(|e| e.to_string())?;
    let mut config = Config::new(users, args.maildir.clone());
    config.max_auth_failures = args.max_auth_failures;
    config.hostname = args.hostname.clone().unwrap_or_else(system_hostname);
    let shared = Arc::new(Shared::new(config));
    let pool = WorkerPool::builder()
        .threads(usize::from(args.workers))
        .name("pop3-worker")
        .build()
        .map_err(|e| e.to_string())?;
    let handler = Pop3::new(shared, pool.clone(), Duration::from_secs(args.idle_timeout))
        .map_err(|e| format!("cannot start the autologout thread: {e}"))?;
    // The server (and with it the handler and its janitor) is gone when
    // `serve` returns; then let the workers finish.
    let served = args
        .server
        .serve(Framed::new(handler), berth::DEFAULT_BUFFER_SIZE as u32);
    if !pool.shutdown(POOL_SHUTDOWN_TIMEOUT) {
        tracing::warn!("worker threads still busy at exit");
    }
    served
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

/// The POP3 server's [`FrameHandler`].
struct Pop3 {
    shared: Arc<Shared>,
    pool: WorkerPool,
    janitor: Janitor,
}

/// Per-connection state: owns the session (created on connect).
#[derive(Default)]
struct ConnState {
    conn: Option<Arc<Pop3Conn>>,
}

/// One connection's session and its last activity.
struct Pop3Conn {
    /// `None` once the session has ended (`QUIT`, too many failed logins,
    /// autologout, a failed write). Jobs of one connection run one at a
    /// time, so only the janitor ever competes for the lock.
    session: Mutex<Option<Session>>,
    /// When a command last arrived or was answered, in milliseconds since
    /// the janitor's epoch.
    last_active: AtomicU64,
}

impl Pop3 {
    fn new(shared: Arc<Shared>, pool: WorkerPool, idle: Duration) -> std::io::Result<Self> {
        Ok(Pop3 {
            shared,
            pool,
            janitor: Janitor::start(idle)?,
        })
    }

    /// Queue `command` for the connection; it runs on a worker, after every
    /// command queued before it.
    fn submit(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        st: &ConnState,
        command: impl FnOnce(&mut Session) -> Reply + Send + 'static,
    ) {
        let Some(pc) = &st.conn else { return };
        let clock = self.janitor.clock();
        pc.last_active.store(clock.now(), Ordering::Relaxed);
        let weak = Arc::downgrade(pc);
        let submitted = self.pool.submit(conn.conn(), move |handle| {
            respond(&weak, handle, clock, command);
        });
        if submitted.is_err() {
            // The pool is shutting down, so is the server.
            conn.conn().close();
        }
    }
}

/// Run one command of a connection (on a worker) and send the reply.
fn respond(
    conn: &Weak<Pop3Conn>,
    handle: &ConnHandle,
    clock: Clock,
    command: impl FnOnce(&mut Session) -> Reply,
) {
    // The connection is gone, and with it the session: nothing to do.
    let Some(pc) = conn.upgrade() else { return };
    if !handle.is_open() {
        return;
    }
    // A poisoned lock means an earlier job panicked; the pool has aborted
    // the connection.
    let Ok(mut guard) = pc.session.lock() else {
        return;
    };
    let Some(session) = guard.as_mut() else {
        return;
    };
    let reply = command(session);
    let written = handle.write_buf(IoBuf::from(reply.bytes));
    if reply.after == After::Close || written.is_err() {
        // Dropping the session releases the mailbox lock (after QUIT the
        // UPDATE state has already run).
        *guard = None;
        let _ = handle.close();
    }
    pc.last_active.store(clock.now(), Ordering::Relaxed);
}

impl Lifecycle for Pop3 {
    type State = ConnState;

    fn server_event(&self, event: ServerEvent<'_>) {
        // A reset, an abort or the server's shutdown closes the connection
        // while the janitor still holds a handle.
        if let ServerEvent::ConnectionClosed { id, .. } = event {
            self.janitor.unwatch(id);
        }
    }
}

impl FrameHandler for Pop3 {
    type Codec = LineCodec;

    fn codec(&self) -> LineCodec {
        LineCodec::builder()
            .ending(LineEnding::Crlf)
            .max_line_length(MAX_LINE)
            .build()
    }

    fn connection_established(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        st: &mut ConnState,
        _peer: std::net::SocketAddr,
    ) {
        // Creating the session and its greeting does no IO.
        let mut session = Session::new(Arc::clone(&self.shared));
        let _ = conn.conn().write(&session.greeting());
        let pc = Arc::new(Pop3Conn {
            session: Mutex::new(Some(session)),
            last_active: AtomicU64::new(self.janitor.clock().now()),
        });
        self.janitor.watch(conn.handle(), &pc);
        st.conn = Some(pc);
    }

    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, st: &mut ConnState, line: IoBuf) {
        self.submit(conn, st, move |session| session.handle_line(&line));
    }

    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        st: &mut ConnState,
        error: &FrameError,
    ) -> FrameErrorAction {
        if let FrameError::TooLong { .. } = error {
            // Answered through the pool too, so that the reply keeps its
            // place among pipelined commands. The codec skips the rest of
            // the line.
            self.submit(conn, st, Session::line_too_long);
            FrameErrorAction::Continue
        } else {
            // A last line without CRLF before the client closed: nothing to
            // answer.
            tracing::debug!(conn = %conn.id(), %error, "incomplete POP3 command at end of stream");
            FrameErrorAction::Shutdown
        }
    }

    fn client_closed(&self, conn: &mut FramedConn<'_, '_, LineCodec>, _: &mut ConnState) {
        // Stop watching (drops the janitor's handle), so the connection
        // closes once the queued commands are answered.
        self.janitor.unwatch(conn.id());
    }
}

/// Milliseconds since a fixed instant, shared by the janitor and the jobs.
#[derive(Debug, Clone, Copy)]
struct Clock {
    epoch: Instant,
}

impl Clock {
    fn now(self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The autologout timer of every session of one server: a thread that wakes
/// at a coarse interval and closes the sessions idle for too long.
///
/// The core has no timers yet; the ROADMAP plans a timer wheel per IO
/// thread, which will replace this thread.
struct Janitor {
    inner: Arc<JanitorInner>,
    thread: Option<JoinHandle<()>>,
}

struct JanitorInner {
    clock: Clock,
    idle: Duration,
    watched: Mutex<HashMap<ConnId, Watched>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct Watched {
    handle: ConnHandle,
    conn: Weak<Pop3Conn>,
}

impl Janitor {
    fn start(idle: Duration) -> std::io::Result<Self> {
        let inner = Arc::new(JanitorInner {
            clock: Clock {
                epoch: Instant::now(),
            },
            idle,
            watched: Mutex::new(HashMap::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let run = Arc::clone(&inner);
        let thread = thread::Builder::new()
            .name("pop3-janitor".to_owned())
            .spawn(move || run.run(tick))?;
        Ok(Janitor {
            inner,
            thread: Some(thread),
        })
    }

    fn clock(&self) -> Clock {
        self.inner.clock
    }

    fn watch(&self, handle: ConnHandle, conn: &Arc<Pop3Conn>) {
        let entry = Watched {
            handle,
            conn: Arc::downgrade(conn),
        };
        self.inner.watched().insert(entry.handle.id(), entry);
    }

    fn unwatch(&self, id: ConnId) {
        // Dropped outside the lock: dropping a handle may message its thread.
        let removed = self.inner.watched().remove(&id);
        drop(removed);
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        *self
            .inner
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.inner.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let watched = std::mem::take(&mut *self.inner.watched());
        drop(watched);
    }
}

impl JanitorInner {
    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Watched>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, tick: Duration) {
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            stop = self
                .wake
                .wait_timeout(stop, tick)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if *stop {
                return;
            }
            drop(stop);
            self.sweep();
            stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Close every session idle for longer than the timeout.
    fn sweep(&self) {
        let idle_ms = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX);
        let now = self.clock.now();
        let expired =
            |pc: &Pop3Conn| now.saturating_sub(pc.last_active.load(Ordering::Relaxed)) > idle_ms;
        // Candidates first, then close them without holding the map's lock.
        let mut candidates = Vec::new();
        let mut gone = Vec::new();
        for (id, w) in self.watched().iter() {
            match w.conn.upgrade() {
                Some(pc) if expired(&pc) => candidates.push((*id, pc, w.handle.clone())),
                Some(_) => {}
                None => gone.push(*id),
            }
        }
        for (id, pc, handle) in candidates {
            let mut guard = match pc.session.try_lock() {
                Ok(guard) => guard,
                // A command is running: the session is not idle.
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => {
                    gone.push(id);
                    continue;
                }
            };
            // Commands note their activity while holding the lock, so this
            // second look is final.
            if !expired(&pc) {
                continue;
            }
            if let Some(session) = guard.take() {
                tracing::info!(conn = %id, peer = %handle.peer_addr(), user = ?session.user(),
                    "POP3 autologout");
                // Dropping the session releases the mailbox lock and deletes nothing.
                drop(session);
                let _ = handle.write(AUTOLOGOUT);
                let _ = handle.close();
            }
            gone.push(id);
        }
        let mut watched = self.watched();
        let removed: Vec<_> = gone.iter().filter_map(|id| watched.remove(id)).collect();
        drop(watched);
        drop(removed);
    }
}
