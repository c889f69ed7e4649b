//! Shared pieces of the Rust peer servers: the command line and the
//! packet-echo framing scan.
//!
//! Packet protocol (the seed's PacketEchoServer): each packet starts with a
//! one-byte header holding the TOTAL packet length, header included. A
//! header of 1 is an empty packet, 255 the largest; a header of 0 is
//! malformed, and the connection is closed after echoing the whole packets
//! that came before it.

use std::net::SocketAddr;

/// What the server echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The byte stream, as it comes.
    Echo,
    /// Whole 1-byte-length-prefixed packets only.
    Packet,
}

/// Parsed command line.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Echo or packet mode.
    pub mode: Mode,
}

fn usage(prog: &str) -> String {
    format!(
        "usage: {prog} [--listen ADDR:PORT] [--mode echo|packet]\n  \
         --listen  address and port (default 127.0.0.1:5001)\n  \
         --mode    echo (default) or packet"
    )
}

fn fail(prog: &str, msg: &str) -> ! {
    eprintln!("{prog}: {msg}\n{}", usage(prog));
    std::process::exit(2);
}

/// Parses `--listen ADDR:PORT` and `--mode echo|packet` (also `--flag=value`);
/// prints one line and exits with status 2 on a bad command line.
pub fn parse_args() -> Opts {
    let mut args = std::env::args();
    let prog = args.next().unwrap_or_else(|| "peer".into());
    let mut opts = Opts {
        listen: SocketAddr::from(([127, 0, 0, 1], 5001)),
        mode: Mode::Echo,
    };
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{}", usage(&prog));
            std::process::exit(0);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        if flag != "--listen" && flag != "--mode" {
            fail(&prog, &format!("unknown argument '{arg}'"));
        }
        let Some(value) = inline.or_else(|| args.next()) else {
            fail(&prog, &format!("{flag} needs a value"));
        };
        if flag == "--listen" {
            opts.listen = value
                .parse()
                .unwrap_or_else(|_| fail(&prog, &format!("bad --listen '{value}'")));
        } else {
            opts.mode = match value.as_str() {
                "echo" => Mode::Echo,
                "packet" => Mode::Packet,
                _ => fail(&prog, &format!("bad --mode '{value}' (echo|packet)")),
            };
        }
    }
    opts
}

/// Scans bytes that start on a packet boundary. Returns the length of the
/// prefix made of whole packets, and whether the scan stopped on a
/// malformed header (0), after which everything is garbage.
pub fn packet_scan(buf: &[u8]) -> (usize, bool) {
    let mut i = 0;
    while i < buf.len() {
        let h = usize::from(buf[i]);
        if h == 0 {
            return (i, true);
        }
        if h > buf.len() - i {
            break;
        }
        i += h;
    }
    (i, false)
}

#[cfg(test)]
mod tests {
    use super::packet_scan;

    #[test]
    fn scan_stops_at_partial_and_malformed() {
        assert_eq!(packet_scan(b""), (0, false));
        assert_eq!(packet_scan(b"\x01\x03ab"), (4, false));
        assert_eq!(packet_scan(b"\x01\x03a"), (1, false));
        assert_eq!(packet_scan(b"\x02a\x00\x01"), (2, true));
    }
}
