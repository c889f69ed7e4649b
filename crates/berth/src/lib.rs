//! berth: a reusable, high-performance TCP socket server framework for Linux.
//!
//! Implement [`Handler`] (only [`Handler::read_completed`] is required),
//! start a [`Server`], and berth owns the rest: listening, accepting, the IO
//! threads (io_uring, or epoll where io_uring is unavailable), pooled
//! buffers, per-connection ordering, half-close, shutdown and close.
//!
//! An echo server, and a client talking to it:
//!
//! ```
//! use std::io::{Read, Write};
//! use berth::{Conn, Handler, IoBuf, Lifecycle, Server};
//!
//! struct Echo;
//!
//! impl Lifecycle for Echo {
//!     type State = (); // per-connection state; lifecycle callbacks go here too
//! }
//!
//! impl Handler for Echo {
//!     fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
//!         let _ = conn.write_buf(buf); // echo without a copy
//!     }
//! }
//!
//! let server = Server::builder()
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .start(Echo)
//!     .expect("server starts");
//! let mut client = std::net::TcpStream::connect(server.local_addr()).unwrap();
//! client.write_all(b"hello").unwrap();
//! let mut reply = [0u8; 5];
//! client.read_exact(&mut reply).unwrap();
//! assert_eq!(&reply, b"hello");
//! server.shutdown(std::time::Duration::from_secs(1));
//! ```
//!
//! See `ARCHITECTURE.md` for the life of a connection, and the `examples/`
//! directory for more servers.
#![deny(unsafe_code)]

pub mod buffer;
pub mod codec;
mod conn;
mod driver;
pub mod engine;
mod error;
mod framed;
mod handler;
mod lifecycle;
mod listener;
pub mod proxy;
mod server;
pub mod servers;
pub mod signal;
mod sync;
pub mod systemd;
pub mod worker;

pub use buffer::{BufPool, IoBuf, IoBufMut, PoolStats};
pub use conn::{Conn, ConnError, ConnHandle, ConnId, Shutdown};
pub use driver::admission::{DESCRIPTOR_RESERVE, default_max_connections};
pub use driver::handover::DEFAULT_HANDOVER_GRACE;
pub use driver::limits::OverflowPolicy;
pub use driver::stats::CloseReason;
pub use engine::{EngineChoice, EngineKind, ParseEngineError, UringUnavailable, probe_uring};
pub use error::Error;
pub use framed::{
    FrameErrorAction, FrameHandler, FrameRun, Framed, FramedConn, FramedState, SendError,
};
pub use handler::Handler;
pub use lifecycle::{Closing, Lifecycle, Refusal, ServerEvent, Timeout};
pub use listener::ListenerSource;
pub use server::{
    Client, DEFAULT_ADDR, DEFAULT_BUFFER_SIZE, DEFAULT_MAX_BUFFERED, Server, ServerBuilder,
    ServerHandle, ServerStats, ShuttingDown, bind, default_ring_buffers,
};
pub use worker::{WorkError, WorkerBuildError, WorkerPool, WorkerPoolBuilder, WorkerStats};
