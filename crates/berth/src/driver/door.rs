//! The one door into user code. Every call the framework makes into a
//! handler (and into its state type's `Default` and `Drop`) goes through
//! here, under `catch_unwind`: a panic in a connection's callback marks that
//! connection for an abortive close; a panic in a callback that concerns no
//! connection (`connect_failed`, `server_event`) is logged. Either way the
//! IO thread, and every other connection, carries on.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::conn::Conn;
use crate::driver::state::flags::ABORT;
use crate::lifecycle::{Lifecycle, Refusal, ServerEvent};

/// The text of a panic's payload, for the log line.
fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(not a string)"
    }
}

/// Run a callback of the connection `conn`. If it panics, the connection
/// is marked to be aborted at its next reconciliation and `None` is
/// returned.
#[inline]
pub(crate) fn conn_call<H: ?Sized, S, R>(
    handler: &H,
    conn: &mut Conn<'_>,
    state: &mut S,
    f: impl FnOnce(&H, &mut Conn<'_>, &mut S) -> R,
) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(|| f(handler, conn, state))) {
        Ok(r) => Some(r),
        Err(payload) => {
            tracing::error!(conn = %conn.id(), panic = message(&*payload), "handler callback panicked; aborting the connection");
            conn.st.set(ABORT);
            None
        }
    }
}

/// Deliver a server event; a panic is logged.
pub(crate) fn server_event<H: Lifecycle + ?Sized>(handler: &H, event: ServerEvent<'_>) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler.server_event(event))) {
        tracing::error!(
            panic = message(&*payload),
            "server_event panicked; the server carries on"
        );
    }
}

/// Report an outbound connect that failed; a panic is logged.
pub(crate) fn connect_failed<H: Lifecycle + ?Sized>(
    handler: &H,
    addr: SocketAddr,
    err: &io::Error,
) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler.connect_failed(addr, err))) {
        tracing::error!(%addr, panic = message(&*payload), "connect_failed panicked; the server carries on");
    }
}

/// The refusal line for a connection over a limit; a panic is logged.
pub(crate) fn refusal<H: Lifecycle + ?Sized>(
    handler: &H,
    peer: SocketAddr,
    reason: Refusal,
) -> Option<Vec<u8>> {
    match catch_unwind(AssertUnwindSafe(|| handler.refusal(peer, reason))) {
        Ok(line) => line,
        Err(payload) => {
            tracing::error!(%peer, panic = message(&*payload), "refusal panicked; closing without one");
            None
        }
    }
}

/// A new connection's state, or `None` if the state type's `Default` panicked.
pub(crate) fn new_state<S: Default>() -> Option<S> {
    match catch_unwind(S::default) {
        Ok(s) => Some(s),
        Err(payload) => {
            tracing::error!(
                panic = message(&*payload),
                "creating a connection's state panicked; refusing the connection"
            );
            None
        }
    }
}

/// Drop what holds a connection's state: the state's `Drop` is user code
/// too. A panic is logged.
pub(crate) fn drop_state<T>(holder: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(holder))) {
        tracing::error!(
            panic = message(&*payload),
            "dropping a connection's state panicked; the server carries on"
        );
    }
}

/// Replace a closed connection's state with a fresh one (dropping the old
/// one runs user code too). `false` if either panicked: the object is then
/// not reused.
pub(crate) fn renew_state<S: Default>(state: &mut S) -> bool {
    let renewed = catch_unwind(AssertUnwindSafe(|| *state = S::default()));
    if let Err(payload) = &renewed {
        tracing::error!(
            panic = message(&**payload),
            "dropping or creating a connection's state panicked; not reusing it"
        );
    }
    renewed.is_ok()
}
