//! A server's life in the `berth` process: what must happen before any
//! thread starts ([`Startup`]), then serving until a signal or `berth ctl
//! shutdown`, the graceful drain, and its end.
//!
//! ```text
//! Startup::begin   systemd listener, signals blocked, logs, control socket
//! run              server started -> READY=1
//!                  first SIGTERM/SIGINT or ctl shutdown -> STOPPING=1, drain
//!                  a second signal -> reset what is left, exit 1
//!                  drained -> exit 0
//! ```
//!
//! The signal thread and the control thread feed one channel that the
//! main thread waits on, so both end in the same drain.

use std::net::TcpListener;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use berth::signal::{TerminationSignal, TerminationSignals};
use berth::{Handler, Server, WorkerPool};

use crate::control::{ControlSocket, Target};
use crate::logging::{self, LogFormat, LogGuard};
use crate::metrics::MetricsServer;

/// What a server process sets up before any thread starts.
pub struct Startup {
    /// The listener passed by systemd socket activation, if any.
    pub inherited: Option<TcpListener>,
    signals: TerminationSignals,
    control: Option<ControlSocket>,
    /// Declared last: dropped last, so every line before it is written.
    _log: LogGuard,
}

impl Startup {
    /// Take the socket-activation listener (while the process has one
    /// thread, so its variables can be removed), block SIGTERM and SIGINT
    /// (so every thread started afterwards inherits the mask, and only the
    /// signal thread receives them), start logging, and claim the control
    /// socket. Call it before anything else starts a thread.
    pub fn begin(
        log: LogFormat,
        verbose: bool,
        control: Option<&std::path::Path>,
    ) -> Result<Startup, String> {
        let inherited = berth::systemd::take_listener().map_err(|e| e.to_string())?;
        let signals = TerminationSignals::block().map_err(|e| format!("signals: {e}"))?;
        let log = logging::init(log, verbose);
        if let Some(l) = &inherited {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(%addr, "serving the socket systemd passed (fd 3) instead of --listen");
        }
        let control = control.map(ControlSocket::claim).transpose()?;
        Ok(Startup {
            inherited,
            signals,
            control,
            _log: log,
        })
    }
}

/// A worker pool the handler runs its jobs on: its queue shows in
/// `stats`, and after the drain it is shut down, waiting at most `finish`
/// for the jobs still queued.
pub struct Workers {
    pub pool: WorkerPool,
    pub finish: Duration,
}

/// What the main thread waits for.
enum Event {
    Signal(TerminationSignal),
    /// `berth ctl shutdown`, with its deadline.
    Shutdown(Duration),
    /// The drain ended: every IO thread has stopped.
    Drained,
}

/// Serve until a termination signal or `berth ctl shutdown`, then drain.
/// Ok after a drain that ended by itself or at its deadline; an error if a
/// second signal cut it short.
pub fn run<H: Handler>(
    server: Server<H>,
    startup: Startup,
    drain_timeout: Duration,
    workers: Option<Workers>,
    metrics: MetricsServer,
) -> Result<(), String> {
    let Startup {
        signals,
        control,
        _log,
        ..
    } = startup;
    let handle = server.handle();
    let (events, rx) = mpsc::channel();
    spawn_signal_thread(signals, events.clone())?;
    let _control = match control {
        Some(socket) => {
            let tx = events.clone();
            Some(socket.serve(Target {
                handle: handle.clone(),
                pool: server.buffer_pool().clone(),
                workers: workers.as_ref().map(|w| w.pool.clone()),
                drain_timeout,
                shutdown: Box::new(move |deadline| {
                    let _ = tx.send(Event::Shutdown(deadline));
                }),
            })?)
        }
        None => None,
    };
    notify("READY=1");

    let deadline = match rx.recv() {
        Ok(Event::Signal(signal)) => {
            tracing::info!(
                ?signal,
                drain_secs = drain_timeout.as_secs(),
                "draining connections"
            );
            drain_timeout
        }
        Ok(Event::Shutdown(deadline)) => {
            tracing::info!(
                drain_secs = deadline.as_secs(),
                "draining connections (berth ctl shutdown)"
            );
            deadline
        }
        Ok(Event::Drained) | Err(_) => Duration::ZERO,
    };
    notify("STOPPING=1");
    handle.shutdown(deadline);
    std::thread::Builder::new()
        .name("berth-drain".into())
        .spawn(move || {
            server.wait();
            let _ = events.send(Event::Drained);
        })
        .map_err(|e| format!("cannot wait for the drain: {e}"))?;
    let mut cut_short = None;
    loop {
        match rx.recv() {
            Ok(Event::Drained) | Err(_) => break,
            Ok(Event::Signal(signal)) => {
                if cut_short.is_none() {
                    tracing::warn!(
                        ?signal,
                        live = handle.stats().open(),
                        "second signal: resetting the remaining connections now"
                    );
                    handle.shutdown(Duration::ZERO);
                    cut_short = Some(signal);
                }
            }
            // Brings the deadline forward if it is earlier.
            Ok(Event::Shutdown(deadline)) => handle.shutdown(deadline),
        }
    }
    metrics.stop();
    if let Some(Workers { pool, finish }) = workers
        && !pool.shutdown(finish)
    {
        tracing::warn!("worker threads still busy at exit");
    }
    // The last line: the totals delivered to and written by the handler.
    let stats = handle.stats();
    tracing::info!(
        bytes_in = stats.bytes_read,
        bytes_out = stats.bytes_written,
        "stopped"
    );
    match cut_short {
        Some(signal) => Err(format!("drain cut short by a second signal ({signal:?})")),
        None => Ok(()),
    }
}

/// Wait for SIGTERM/SIGINT on a thread of its own, for the life of the
/// process, and pass each one on.
fn spawn_signal_thread(signals: TerminationSignals, events: Sender<Event>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("berth-signals".into())
        .spawn(move || {
            loop {
                match signals.wait() {
                    Ok(signal) => {
                        if events.send(Event::Signal(signal)).is_err() {
                            return;
                        }
                    }
                    Err(err) => {
                        tracing::error!(%err, "waiting for signals failed");
                        return;
                    }
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// Tell systemd (`Type=notify`), if it is listening.
fn notify(state: &str) {
    if let Err(err) = berth::systemd::notify(state) {
        tracing::warn!(%err, state, "cannot notify systemd");
    }
}
