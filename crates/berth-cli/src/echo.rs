//! `berth echo` and `berth packet-echo`: the seed's sample servers.

use berth::servers::{Echo, PacketEcho};
use berth::{Framed, Handler};
use clap::Args;

use crate::logging::LogFormat;
use crate::opts::ServerOpts;

/// The echo servers' receive buffer: they send every received byte
/// straight back, so a large buffer means fewer, larger receives and sends
/// for streams (as the C and tokio peers use) and costs nothing for small
/// messages: only the bytes received are touched.
const ECHO_BUFFER_SIZE: u32 = 64 * 1024;

/// Flags of `berth echo` and `berth packet-echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    server: ServerOpts,
    /// Text sent to each client when it connects (the seed's welcome message).
    #[arg(long, value_name = "TEXT")]
    welcome: Option<String>,
}

/// The echo servers' idle timeout unless `--idle-timeout` says otherwise.
const ECHO_IDLE_SECS: u64 = 300;

pub fn run_echo(args: EchoArgs, log: LogFormat) -> Result<(), String> {
    serve(args, log, Echo::new)
}

pub fn run_packet_echo(args: EchoArgs, log: LogFormat) -> Result<(), String> {
    serve(args, log, |welcome| Framed::new(PacketEcho::new(welcome)))
}

/// Serve the handler `make` builds from the welcome text.
fn serve<H: Handler>(
    args: EchoArgs,
    log: LogFormat,
    make: impl FnOnce(Option<Vec<u8>>) -> H,
) -> Result<(), String> {
    let startup = args.server.startup(log)?;
    let welcome = args.welcome.map(String::into_bytes);
    let idle = args.server.idle_timeout_or(ECHO_IDLE_SECS);
    args.server.serve(
        startup,
        make(welcome),
        ECHO_BUFFER_SIZE,
        |b, _| b.idle_timeout(idle),
        None,
    )
}
