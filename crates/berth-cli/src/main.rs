//! `berth`: the seed's sample servers, grown into real ones.
#![forbid(unsafe_code)]

mod bench;
mod control;
mod ctl;
mod echo;
mod logging;
mod metrics;
mod opts;
mod pop3;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth: a high-performance TCP server framework, and its servers.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as one JSON object each (on stderr).
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        global = true,
        default_value_t
    )]
    log_format: logging::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Echo the byte stream back (the seed's EchoServer).
    Echo(echo::EchoArgs),
    /// Echo whole packets: a 1-byte header holds the total length (the seed's PacketEchoServer).
    PacketEcho(echo::EchoArgs),
    /// Load a server and check every echoed byte (messages/s, MB/s, latency).
    Bench(bench::BenchArgs),
    /// Serve Maildir mailboxes over POP3 (RFC 1939, with RFC 2449 CAPA).
    Pop3(pop3::Pop3Args),
    /// Create a demo Maildir and users file for `berth pop3`, and print how to run it.
    Pop3Demo(pop3::DemoArgs),
    /// Control a running server through its --control socket: pause, resume, stats, shutdown.
    Ctl(ctl::CtlArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return opts::usage_error(err),
    };
    let log = cli.log_format;
    let result = match cli.command {
        Command::Echo(args) => echo::run_echo(args, log),
        Command::PacketEcho(args) => echo::run_packet_echo(args, log),
        Command::Bench(args) => {
            // The library's warnings (an engine fallback) go to stderr.
            let _log = logging::init(log, false);
            bench::run(args)
        }
        Command::Pop3(args) => pop3::run(args, log),
        Command::Pop3Demo(args) => pop3::run_demo(args),
        Command::Ctl(args) => ctl::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("berth: {err}");
            ExitCode::FAILURE
        }
    }
}
