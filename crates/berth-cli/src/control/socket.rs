//! The control socket: claiming its path, and the thread that answers it.

use std::fs::{self, Permissions};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth::{BufPool, ServerHandle, WorkerPool};
use serde_json::json;
use socket2::{Domain, SockAddr, Socket, Type};

use super::Request;
use super::stats::StatsReport;

/// Longest request line accepted.
const MAX_LINE: u64 = 4096;
/// A control connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// How long an answer may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A control socket bound at its path, mode 0600, not yet answered.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    file: SocketFile,
}

/// What the control thread acts on.
pub struct Target {
    /// The server.
    pub handle: ServerHandle,
    /// Its IO buffer pool.
    pub pool: BufPool,
    /// Its worker pool, if it has one (for `worker_queue_depth`).
    pub workers: Option<WorkerPool>,
    /// `--drain-timeout`: the deadline of a `shutdown` that names none.
    pub drain_timeout: Duration,
    /// Start the graceful drain (the same path a signal takes).
    pub shutdown: Box<dyn Fn(Duration) + Send + Sync>,
}

impl ControlSocket {
    /// Bind the control socket at `path`. A socket file left by a process
    /// that is gone (nothing answers: `ECONNREFUSED`) is replaced; a socket
    /// that answers means another server is running, and anything that is
    /// not a socket is left alone: both are errors.
    pub fn claim(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => return Err(format!("another server is running on {shown}")),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    fs::remove_file(path)
                        .map_err(|e| format!("cannot replace the stale socket {shown}: {e}"))?;
                    tracing::info!(path = %shown, "replaced a stale control socket");
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(format!("control socket {shown}: {e}")),
            },
            Ok(_) => return Err(format!("{shown} exists and is not a socket")),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("control socket {shown}: {e}")),
        }
        bind_private(path).map_err(|e| format!("cannot create the control socket {shown}: {e}"))
    }

    /// Answer requests on a thread of its own, each connection on a
    /// short-lived thread, for as long as the process runs. The socket
    /// file is removed when the returned value is dropped.
    pub fn serve(self, target: Target) -> Result<ControlServer, String> {
        let ControlSocket { listener, file } = self;
        let target = Arc::new(target);
        std::thread::Builder::new()
            .name("berth-control".into())
            .spawn(move || accept_loop(&listener, &target))
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        tracing::info!(path = %file.path.display(), "control socket ready");
        Ok(ControlServer { _file: file })
    }
}

/// The control socket being served; dropping it removes the socket file.
#[derive(Debug)]
pub struct ControlServer {
    _file: SocketFile,
}

/// The socket's path and identity; removed on drop unless another process
/// has put its own socket there since.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev_ino: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours =
            fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.dev_ino);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Bind and listen at `path` so that only this user can ever connect: the
/// mode is set to 0600 after `bind` and before `listen`, and until `listen`
/// a connect is refused, so there is no moment when another user could
/// get in. (The umask, the other way, is process-wide.)
fn bind_private(path: &Path) -> io::Result<ControlSocket> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    let file = SocketFile {
        path: path.to_owned(),
        dev_ino: fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()))?,
    };
    fs::set_permissions(path, Permissions::from_mode(0o600))?;
    socket.listen(16)?;
    Ok(ControlSocket {
        listener: UnixListener::from(OwnedFd::from(socket)),
        file,
    })
}

fn accept_loop(listener: &UnixListener, target: &Arc<Target>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let target = Arc::clone(target);
                let spawned = std::thread::Builder::new()
                    .name("berth-control-conn".into())
                    .spawn(move || serve_conn(stream, &target));
                if let Err(err) = spawned {
                    tracing::warn!(%err, "cannot start a control connection's thread");
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => {
                // Out of descriptors, say: back off instead of spinning.
                tracing::warn!(%err, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Answer one connection's requests, a line each, until it closes, goes
/// idle, or sends a line too long to be a request.
fn serve_conn(stream: UnixStream, target: &Target) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut input).take(MAX_LINE + 1).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let complete = line.ends_with('\n');
        let (reply, then) = if !complete && line.len() as u64 > MAX_LINE {
            let error = format!("request longer than {MAX_LINE} bytes");
            (json!({"ok": false, "error": error}).to_string(), None)
        } else if line.trim().is_empty() {
            continue;
        } else {
            answer(line.trim(), target)
        };
        let mut bytes = reply.into_bytes();
        bytes.push(b'\n');
        let sent = out.write_all(&bytes).is_ok();
        // The drain starts after the answer is out: the process may exit
        // soon after.
        if let Some(deadline) = then {
            (target.shutdown)(deadline);
        }
        if !sent || !complete {
            return;
        }
    }
}

/// The answer to one request line (without its newline), and the drain's
/// deadline if it asks for a shutdown.
fn answer(line: &str, target: &Target) -> (String, Option<Duration>) {
    let request = match serde_json::from_str::<Request>(line) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "bad control request");
            let error = format!("bad request: {e}");
            return (json!({"ok": false, "error": error}).to_string(), None);
        }
    };
    let reply = match request {
        Request::Pause => {
            target.handle.pause_accepting();
            json!({"ok": true, "paused": true})
        }
        Request::Resume => {
            target.handle.resume_accepting();
            json!({"ok": true, "paused": false})
        }
        Request::Stats => {
            let stats = StatsReport::read(&target.handle, &target.pool, target.workers.as_ref());
            return (stats_answer(stats), None);
        }
        Request::Shutdown { deadline_secs } => {
            let deadline = deadline_secs.map_or(target.drain_timeout, Duration::from_secs);
            let reply = json!({"ok": true, "draining": true, "deadline_secs": deadline.as_secs()});
            return (reply.to_string(), Some(deadline));
        }
    };
    (reply.to_string(), None)
}

/// `{"ok":true,"stats":{...}}`, written straight from the report so that
/// its fields keep their order (a `serde_json::Value` would sort them).
fn stats_answer(stats: StatsReport) -> String {
    #[derive(serde::Serialize)]
    struct Answer {
        ok: bool,
        stats: StatsReport,
    }
    serde_json::to_string(&Answer { ok: true, stats })
        .unwrap_or_else(|e| json!({"ok": false, "error": e.to_string()}).to_string())
}
