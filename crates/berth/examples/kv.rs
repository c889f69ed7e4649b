//! A tiny key-value store speaking a line protocol: the complete example of
//! "Writing your own protocol server" in the README.
//!
//! ```text
//! SET key value...   -> OK
//! GET key            -> VALUE value...  |  NOT_FOUND
//! DEL key            -> DELETED         |  NOT_FOUND
//! COUNT              -> COUNT n
//! QUIT               -> BYE n (commands this connection sent), then close
//! ```
//!
//! `cargo run -p berth --example kv [ADDR:PORT]`, then `nc 127.0.0.1 5002`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use berth::codec::{FrameError, LineCodec, LineEnding};
use berth::signal::TerminationSignals;
use berth::{FrameErrorAction, FrameHandler, Framed, FramedConn, IoBuf, Lifecycle, Server};

/// Lines longer than this (terminator included) are refused, both ways.
const MAX_LINE: usize = 1024;

/// The server: one store shared by every connection.
#[derive(Default)]
struct KvServer {
    store: Mutex<HashMap<String, String>>,
}

/// What a connection remembers between lines.
#[derive(Default)]
struct Session {
    commands: u64,
}

impl KvServer {
    /// The reply to one command line, and whether to close afterwards.
    fn execute(&self, line: &str, commands: u64) -> (String, bool) {
        let mut words = line.splitn(3, ' ');
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let (key, rest) = (words.next(), words.next());
        let mut store = self.store.lock().unwrap();
        let reply = match (verb.as_str(), key, rest) {
            ("SET", Some(k), Some(v)) => {
                store.insert(k.to_owned(), v.to_owned());
                "OK".to_owned()
            }
            ("GET", Some(k), None) => match store.get(k) {
                Some(v) => format!("VALUE {v}"),
                None => "NOT_FOUND".to_owned(),
            },
            ("DEL", Some(k), None) => match store.remove(k) {
                Some(_) => "DELETED".to_owned(),
                None => "NOT_FOUND".to_owned(),
            },
            ("COUNT", None, None) => format!("COUNT {}", store.len()),
            ("QUIT", None, None) => return (format!("BYE {commands}"), true),
            _ => "ERR unknown command or wrong arguments".to_owned(),
        };
        (reply, false)
    }
}

impl Lifecycle for KvServer {
    type State = Session;
}

impl FrameHandler for KvServer {
    type Codec = LineCodec;

    /// One codec per connection: LF or CRLF lines of at most `MAX_LINE`.
    fn codec(&self) -> LineCodec {
        LineCodec::builder()
            .ending(LineEnding::Lf)
            .max_line_length(MAX_LINE)
            .build()
    }

    fn connection_established(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        _: &mut Session,
        _peer: std::net::SocketAddr,
    ) {
        let _ = conn.send("HELLO kv 1");
    }

    /// A whole line, without its terminator.
    fn frame(&self, conn: &mut FramedConn<'_, '_, LineCodec>, st: &mut Session, line: IoBuf) {
        st.commands += 1;
        let Ok(text) = std::str::from_utf8(&line) else {
            let _ = conn.send("ERR not UTF-8");
            return;
        };
        let (reply, close) = self.execute(text.trim_end(), st.commands);
        // The encoder appends "\n" and checks the same maximum. A reply
        // fits: "VALUE " is no longer than the "SET k " that stored it.
        let _ = conn.send(reply.as_str());
        if close {
            // After the queued replies; `closing` is not called.
            conn.conn().close();
        }
    }

    /// A line over `MAX_LINE`: answer and go on with the next line.
    fn frame_error(
        &self,
        conn: &mut FramedConn<'_, '_, LineCodec>,
        _: &mut Session,
        error: &FrameError,
    ) -> FrameErrorAction {
        let _ = conn.send(format!("ERR {error}").as_str());
        FrameErrorAction::Continue
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5002".to_owned())
        .parse()?;
    // Block SIGINT/SIGTERM before the IO threads start, so they inherit it.
    let signals = TerminationSignals::block()?;
    let server = Server::builder()
        .listen(addr)
        .start(Framed::new(KvServer::default()))?;
    println!("kv server on {} ({})", server.local_addr(), server.engine());
    signals.wait()?;
    server.shutdown(Duration::from_secs(5));
    Ok(())
}
