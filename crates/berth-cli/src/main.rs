//! `berth`: the seed's sample servers, grown into real ones.

mod bench;
mod echo;
mod metrics;
mod opts;
mod pop3;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth: a high-performance TCP server framework, and its servers.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return opts::usage_error(err),
    };
    let result = match cli.command {
        Command::Echo(args) => echo::run_echo(args),
        Command::PacketEcho(args) => echo::run_packet_echo(args),
        Command::Bench(args) => bench::run(args),
        Command::Pop3(args) => pop3::run(args),
        Command::Pop3Demo(args) => pop3::run_demo(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("berth: {err}");
            ExitCode::FAILURE
        }
    }
}
