//! `berth ctl`: the client of a server's control socket (see
//! [`crate::control`] for the protocol).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::control::Request;

/// Flags of `berth ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The server's control socket (its `--control PATH`).
    #[arg(long, value_name = "PATH")]
    control: PathBuf,
    /// Seconds to wait for the server's answer.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Stop accepting; new connections wait in the kernel backlog.
    Pause,
    /// Accept again, starting with the connections that waited.
    Resume,
    /// Print the server's counters as one JSON object.
    Stats,
    /// Drain gracefully; the server exits when the drain ends.
    Shutdown {
        /// Seconds to drain before resetting the rest [default: the server's --drain-timeout].
        #[arg(long, value_name = "SECS")]
        deadline: Option<u64>,
    },
}

/// `berth ctl`.
pub fn run(args: CtlArgs) -> Result<(), String> {
    let request = match args.action {
        Action::Pause => Request::Pause,
        Action::Resume => Request::Resume,
        Action::Stats => Request::Stats,
        Action::Shutdown { deadline } => Request::Shutdown {
            deadline_secs: deadline,
        },
    };
    let line = ask(&args.control, request, Duration::from_secs(args.timeout))?;
    let shown = args.control.display();
    let reply: Answer<'_> =
        serde_json::from_str(&line).map_err(|e| format!("unreadable answer from {shown}: {e}"))?;
    if !reply.ok {
        let error = reply
            .error
            .as_deref()
            .unwrap_or("the server refused the request");
        return Err(format!("the server answered: {error}"));
    }
    match request {
        Request::Pause => println!("accepting paused"),
        Request::Resume => println!("accepting resumed"),
        // As the server wrote it, its fields in order.
        Request::Stats => match reply.stats {
            Some(stats) => println!("{}", stats.get()),
            None => return Err(format!("the answer from {shown} has no stats")),
        },
        Request::Shutdown { .. } => match reply.deadline_secs {
            Some(secs) => println!("draining; connections still open in {secs} s are reset"),
            None => println!("draining"),
        },
    }
    Ok(())
}

/// The fields of an answer that `berth ctl` reads.
#[derive(Deserialize)]
struct Answer<'a> {
    ok: bool,
    error: Option<String>,
    #[serde(borrow)]
    stats: Option<&'a RawValue>,
    deadline_secs: Option<u64>,
}

/// Send one request and read its answer line.
fn ask(path: &Path, request: Request, timeout: Duration) -> Result<String, String> {
    let shown = path.display();
    let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!(
            "no control socket at {shown} (is a server running with --control {shown}?)"
        ),
        ErrorKind::ConnectionRefused => {
            format!("nothing answers on {shown}: the server that made it is gone")
        }
        ErrorKind::PermissionDenied => format!(
            "cannot connect to {shown}: permission denied (it is mode 0600: run as the server's user)"
        ),
        _ => format!("cannot connect to {shown}: {e}"),
    })?;
    let io_error = |e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("the server did not answer within {} s", timeout.as_secs())
        }
        _ => format!("control socket {shown}: {e}"),
    };
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let mut line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(io_error)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(io_error)?;
    if answer.is_empty() {
        return Err(format!(
            "the server on {shown} closed the connection without answering"
        ));
    }
    Ok(answer)
}
