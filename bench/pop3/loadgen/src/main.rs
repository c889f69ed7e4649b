//! pop3load: POP3 sessions against a server, for `bench/pop3`.
//!
//! ```text
//! pop3load --addr 127.0.0.1:PORT --maildir DIR --users FILE
//!          --mode full|poll|login [--depth D] [--duration S] [--warmup S]
//!          [--user NAME] [--sessions N]
//! ```
//!
//! - `full`: one thread per user of FILE (`name:password` lines), each
//!   running sessions back to back: USER, PASS, STAT, LIST, UIDL, RETR of
//!   every message, QUIT. `--depth D` RETRs are kept in flight (1:
//!   lockstep); the commands the client can send are written just before
//!   it would wait for the server, so a window refills with one write.
//!   Every RETR body is compared byte for byte with the message's wire
//!   form (CRLF line ends, dot-stuffed, `.CRLF`), read from DIR and found
//!   by the message's UIDL (the unique part of its file name).
//! - `poll`: the same threads, sessions of USER, PASS, STAT, LIST, UIDL,
//!   QUIT (a mail client checking for mail).
//! - `login`: `--sessions N` sessions of USER, PASS, STAT, UIDL, QUIT for
//!   `--user`, one after another.
//!
//! Counts (messages, bytes, sessions) cover the measured window, from
//! `--warmup` seconds after the start for `--duration` seconds; `login`
//! counts everything. One JSON object goes to stdout.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);
const READ_BUF: usize = 256 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Full,
    Poll,
    Login,
}

struct Args {
    addr: SocketAddr,
    maildir: String,
    users: String,
    mode: Mode,
    depth: usize,
    duration: f64,
    warmup: f64,
    user: Option<String>,
    sessions: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        addr: "127.0.0.1:1110".parse().unwrap(),
        maildir: String::new(),
        users: String::new(),
        mode: Mode::Full,
        depth: 1,
        duration: 10.0,
        warmup: 2.0,
        user: None,
        sessions: 10,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--maildir" => args.maildir = value()?,
            "--users" => args.users = value()?,
            "--mode" => {
                args.mode = match value()?.as_str() {
                    "full" => Mode::Full,
                    "poll" => Mode::Poll,
                    "login" => Mode::Login,
                    other => return Err(format!("unknown mode {other}")),
                }
            }
            "--depth" => args.depth = value()?.parse().map_err(|e| format!("--depth: {e}"))?,
            "--duration" => {
                args.duration = value()?.parse().map_err(|e| format!("--duration: {e}"))?
            }
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--user" => args.user = Some(value()?),
            "--sessions" => {
                args.sessions = value()?.parse().map_err(|e| format!("--sessions: {e}"))?
            }
            "--json" => {}
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.users.is_empty() || (args.mode == Mode::Full && args.maildir.is_empty()) {
        return Err("--users (and --maildir for --mode full) are required".into());
    }
    args.depth = args.depth.max(1);
    Ok(args)
}

/// The wire form of a stored message, as a RETR body.
fn wire(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 16 + 8);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let line = match line.strip_suffix(b"\n") {
            Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
            None => line,
        };
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The expected RETR bodies of one mailbox, by unique name.
type Expected = HashMap<Vec<u8>, Arc<[u8]>>;

fn load_mailbox(dir: &Path) -> io::Result<Expected> {
    let mut map = HashMap::new();
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            if name.starts_with(b".") {
                continue;
            }
            let unique = name.split(|&b| b == b':').next().unwrap_or(name).to_vec();
            map.insert(unique, wire(&fs::read(entry.path())?).into());
        }
    }
    Ok(map)
}

/// Finds the expected body for a UIDL: the unique name itself (berth), or
/// a unique name it is a prefix of (Dovecot's `%f` drops `,S=`-style
/// fields).
fn lookup<'a>(expected: &'a Expected, uidl: &[u8]) -> Option<&'a Arc<[u8]>> {
    expected.get(uidl).or_else(|| {
        expected
            .iter()
            .find(|(k, _)| k.starts_with(uidl) && k.get(uidl.len()) == Some(&b','))
            .map(|(_, v)| v)
    })
}

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    sessions: AtomicU64,
    mismatches: AtomicU64,
    errors: AtomicU64,
}

/// When counting starts and stops.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// A client connection: a read buffer, and commands waiting to be sent
/// just before the client waits for the server.
struct Conn {
    s: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    out: Vec<u8>,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Conn {
    fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.set_read_timeout(Some(TIMEOUT))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        s.set_nodelay(true)?;
        let mut c = Conn {
            s,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            out: Vec::new(),
        };
        c.ok_line()?;
        Ok(c)
    }

    /// Queue a command.
    fn queue(&mut self, command: &str) {
        self.out.extend_from_slice(command.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Send the queued commands, then read more.
    fn fill(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.s.write_all(&self.out)?;
            self.out.clear();
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.s.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// One line, without its CR LF, as a range of the buffer.
    fn line(&mut self) -> io::Result<(usize, usize)> {
        let mut scanned = 0;
        loop {
            let from = self.start + scanned;
            if let Some(i) = self.buf[from..self.end].iter().position(|&b| b == b'\n') {
                let lf = from + i;
                let end = if lf > self.start && self.buf[lf - 1] == b'\r' {
                    lf - 1
                } else {
                    lf
                };
                let line = (self.start, end);
                self.start = lf + 1;
                return Ok(line);
            }
            scanned = self.end - self.start;
            self.fill()?;
        }
    }

    /// A status line that must be positive.
    fn ok_line(&mut self) -> io::Result<()> {
        let (a, b) = self.line()?;
        if !self.buf[a..b].starts_with(b"+OK") {
            return Err(bad(format!(
                "{:?}",
                String::from_utf8_lossy(&self.buf[a..b])
            )));
        }
        Ok(())
    }

    fn command(&mut self, command: &str) -> io::Result<()> {
        self.queue(command);
        self.ok_line()
    }

    /// A multi-line response's lines (unstuffed not needed here), each
    /// given to `each`.
    fn lines(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        loop {
            let (a, b) = self.line()?;
            let line = &self.buf[a..b];
            if line == b"." {
                return Ok(());
            }
            each(line);
        }
    }

    /// Read exactly `expected.len()` bytes and compare them.
    fn body(&mut self, expected: &[u8]) -> io::Result<bool> {
        let mut at = 0;
        while at < expected.len() {
            if self.start == self.end {
                self.fill()?;
            }
            let n = (self.end - self.start).min(expected.len() - at);
            if self.buf[self.start..self.start + n] != expected[at..at + n] {
                return Ok(false);
            }
            self.start += n;
            at += n;
        }
        Ok(true)
    }
}

fn login(c: &mut Conn, user: &str, password: &str) -> io::Result<()> {
    c.command(&format!("USER {user}"))?;
    c.command(&format!("PASS {password}"))
}

/// One full session; counts its messages inside the window.
fn full_session(
    addr: SocketAddr,
    user: &str,
    password: &str,
    expected: &Expected,
    depth: usize,
    window: Window,
    counters: &Counters,
) -> io::Result<bool> {
    let mut c = Conn::connect(addr)?;
    login(&mut c, user, password)?;
    c.command("STAT")?;
    c.command("LIST")?;
    let mut count = 0;
    c.lines(|_| count += 1)?;
    c.command("UIDL")?;
    let mut bodies = Vec::with_capacity(count);
    let mut unknown = None;
    c.lines(|line| {
        let uidl = line.splitn(2, |&b| b == b' ').nth(1).unwrap_or_default();
        match lookup(expected, uidl) {
            Some(body) => bodies.push(Arc::clone(body)),
            None => unknown = Some(String::from_utf8_lossy(uidl).into_owned()),
        }
    })?;
    if let Some(uidl) = unknown {
        return Err(bad(format!("UIDL {uidl} matches no file")));
    }
    let mut next = 0;
    while next < bodies.len().min(depth) {
        next += 1;
        c.queue(&format!("RETR {next}"));
    }
    for body in &bodies {
        c.ok_line()?;
        if !c.body(body)? {
            counters.mismatches.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        let now = Instant::now();
        if window.contains(now) {
            counters.messages.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
        } else if now >= window.end {
            return Ok(false);
        }
        if next < bodies.len() {
            next += 1;
            c.queue(&format!("RETR {next}"));
        }
    }
    c.command("QUIT")?;
    Ok(true)
}

/// One poll session (no RETR); `uidl_only` for `login` mode.
fn poll_session(addr: SocketAddr, user: &str, password: &str, list: bool) -> io::Result<()> {
    let mut c = Conn::connect(addr)?;
    login(&mut c, user, password)?;
    c.command("STAT")?;
    if list {
        c.command("LIST")?;
        c.lines(|_| {})?;
    }
    c.command("UIDL")?;
    c.lines(|_| {})?;
    c.command("QUIT")
}

fn run() -> Result<String, String> {
    let args = parse_args()?;
    let users_text = fs::read_to_string(&args.users).map_err(|e| format!("{}: {e}", args.users))?;
    let users: Vec<(String, String)> = users_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .collect();
    let counters = Arc::new(Counters::default());

    if args.mode == Mode::Login {
        let name = args.user.clone().ok_or("--mode login needs --user")?;
        let password = users
            .iter()
            .find(|(u, _)| *u == name)
            .map(|(_, p)| p.clone())
            .ok_or(format!("no user {name}"))?;
        let started = Instant::now();
        for _ in 0..args.sessions {
            poll_session(args.addr, &name, &password, false)
                .map_err(|e| format!("session: {e}"))?;
        }
        let secs = started.elapsed().as_secs_f64();
        return Ok(format!(
            "{{\"sessions\": {}, \"secs\": {secs:.6}, \"ms_per_session\": {:.3}}}",
            args.sessions,
            secs * 1000.0 / args.sessions as f64
        ));
    }

    let users: Vec<(String, String)> = match &args.user {
        Some(only) => users.into_iter().filter(|(u, _)| u == only).collect(),
        None => users,
    };
    let expected: Vec<Arc<Expected>> = if args.mode == Mode::Full {
        users
            .iter()
            .map(|(u, _)| load_mailbox(&Path::new(&args.maildir).join(u)).map(Arc::new))
            .collect::<io::Result<_>>()
            .map_err(|e| format!("reading the maildir: {e}"))?
    } else {
        users.iter().map(|_| Arc::new(HashMap::new())).collect()
    };

    let start = Instant::now() + Duration::from_millis(50);
    let window = Window {
        start: start + Duration::from_secs_f64(args.warmup),
        end: start + Duration::from_secs_f64(args.warmup + args.duration),
    };
    let threads: Vec<_> = users
        .iter()
        .zip(expected)
        .map(|((user, password), expected)| {
            let (user, password) = (user.clone(), password.clone());
            let counters = Arc::clone(&counters);
            let (addr, mode, depth) = (args.addr, args.mode, args.depth);
            std::thread::spawn(move || {
                while Instant::now() < window.end {
                    let outcome = match mode {
                        Mode::Full => full_session(
                            addr, &user, &password, &expected, depth, window, &counters,
                        ),
                        _ => poll_session(addr, &user, &password, true).map(|()| true),
                    };
                    match outcome {
                        Ok(true) if window.contains(Instant::now()) => {
                            counters.sessions.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if counters.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("pop3load: {user}: {e}");
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a client thread panicked")?;
    }
    let secs = args.duration;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(format!(
        "{{\"messages\": {}, \"msgs_per_sec\": {:.1}, \"mb_per_sec\": {:.2}, \"sessions\": {}, \
         \"sessions_per_sec\": {:.2}, \"mismatches\": {}, \"errors\": {}, \"window_secs\": {secs}}}",
        get(&counters.messages),
        get(&counters.messages) as f64 / secs,
        get(&counters.bytes) as f64 / secs / 1e6,
        get(&counters.sessions),
        get(&counters.sessions) as f64 / secs,
        get(&counters.mismatches),
        get(&counters.errors),
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pop3load: {e}");
            ExitCode::FAILURE
        }
    }
}
