//! `berth bench`: a load generator built on berth's outbound connections.
//!
//! Every message carries its sequence number and the time it was meant to
//! be sent; the echo is checked byte for byte against what was sent, and
//! latency is measured from the intended send time, so an open-loop run
//! (`--rate`) does not hide queueing (coordinated omission).
//!
//! The pieces: `args` (the flags), `mode` (the framing), `template` (the
//! bytes of a message and the check of its echo), `send` (messages written
//! into pooled buffers), `handler` (each connection's side of the echo),
//! `shared` (what the IO threads, the pacer and `run` share), `pace` (the
//! open-loop sender), `dial` (where connections go and come from), `stats`
//! (the measured window, histograms, counters), `report` (the results) and
//! `attack` (slowloris and never-reading connections beside the load).

mod args;
mod attack;
mod dial;
mod handler;
mod mode;
mod pace;
mod report;
mod send;
mod shared;
mod stats;
mod template;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use berth::Client;

pub use args::BenchArgs;
use attack::Attack;
use handler::Bench;
use pace::pace;
use report::Report;
use shared::Shared;

pub fn run(args: BenchArgs) -> Result<(), String> {
    args.check()?;
    let shared = Arc::new(Shared::new(&args)?);
    // The attackers first, so that they are in place when the window opens;
    // they stop with the run, or shortly after its end whatever happens.
    let attack = Attack::start(args.attack_plan(), shared.window.to + ATTACK_GRACE)?;
    let client = start(&args, &shared)?;
    let pacer = args.rate.map(|rate| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let s = &*shared;
            pace(&s.paced, &s.load.template, &s.window, &s.stop, rate);
        })
    });
    wait_for_end(&shared, !args.json && std::io::stdout().is_terminal());
    shared.stop.store(true, Relaxed);
    if let Some(p) = pacer {
        let _ = p.join();
    }
    shared.paced.clear();
    let attack = attack.stop();
    client.shutdown(Duration::from_millis(200));

    let mut report = collect(&shared, &args);
    report.attack = attack;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    match report.failure(args.addr) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// How long attackers may outlive the measured window if the run does not
/// stop them (it always does, unless it is stuck).
const ATTACK_GRACE: Duration = Duration::from_secs(2);

/// Start the client and open `--conns` connections on it.
fn start(args: &BenchArgs, shared: &Arc<Shared>) -> Result<Client<Bench>, String> {
    let mut builder = berth::Server::builder()
        .io_threads(args.threads as usize)
        .buffer_size(64 * 1024)
        .ring_buffers(512);
    if let Some(engine) = args.engine {
        builder = builder.engine(engine);
    }
    let client = builder
        .start_client(Bench(Arc::clone(shared)))
        .map_err(|e| e.to_string())?;
    shared.dialer.set_control(client.handle());
    for _ in 0..args.conns {
        shared
            .dialer
            .connect(&client.handle(), Duration::from_secs(10))?;
    }
    Ok(client)
}

/// Sleep until the measured window ends, showing progress on a spinner
/// if `progress`.
fn wait_for_end(shared: &Shared, progress: bool) {
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let end = shared.window.to;
    let mut last = (Instant::now(), 0u64);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
        if let Some(bar) = &bar {
            let c = &shared.counters;
            let total = c.total_messages.load(Relaxed);
            let now = Instant::now();
            let rate = (total - last.1) as f64 / (now - last.0).as_secs_f64();
            last = (now, total);
            let phase = if now < shared.window.from {
                "warmup"
            } else {
                "measuring"
            };
            bar.set_message(format!(
                "{phase}: {:.0} msg/s, {} conns, {} errors",
                rate,
                c.established.load(Relaxed),
                c.connect_errors.load(Relaxed) + c.mismatches.load(Relaxed)
            ));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// The results, once the client has stopped.
fn collect(shared: &Shared, args: &BenchArgs) -> Report {
    let (hist, messages) = shared.latency.merged();
    let c = &shared.counters;
    let secs = (shared.window.to - shared.window.from).as_secs_f64();
    Report {
        messages,
        secs,
        size: shared.load.size,
        hist,
        mismatches: c.mismatches.load(Relaxed),
        connect_errors: c.connect_errors.load(Relaxed),
        connect_errors_by_kind: c.connect_errors_by_kind.counts(),
        connect_retries: c.connect_retries.load(Relaxed),
        connect_retries_by_kind: c.connect_retries_by_kind.counts(),
        closes: c.closes.load(Relaxed),
        conns_per_sec: args
            .churn
            .then(|| c.completed_conns.load(Relaxed) as f64 / secs),
        attack: None,
    }
}
