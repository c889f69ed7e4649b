//! Connections behind a proxy (`ServerBuilder::proxy_protocol`): the
//! handler sees the address the PROXY header gives, whatever reads the
//! header arrives in; a connection without a valid header is closed,
//! counted, and never reaches the handler. On both engines.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use berth::{Conn, EngineChoice, Handler, IoBuf, Lifecycle};
use common::*;

/// Echoes, and records the peers it was introduced to.
#[derive(Default)]
struct Peers(Mutex<Vec<SocketAddr>>);

impl Lifecycle for Peers {
    type State = ();
}

impl Handler for Peers {
    fn connection_established(&self, c: &mut Conn<'_>, _: &mut (), peer: SocketAddr) {
        assert_eq!(c.peer_addr(), peer);
        self.0.lock().unwrap().push(peer);
    }

    fn read_completed(&self, conn: &mut Conn<'_>, _: &mut (), buf: IoBuf) {
        let _ = conn.write_buf(buf);
    }
}

fn server(engine: EngineChoice) -> TestServer<Peers> {
    start_with(
        builder(engine)
            .proxy_protocol(true)
            .frame_timeout(Duration::from_secs(2)),
        Peers::default(),
    )
}

fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 only here")
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&d.ip().octets());
    h.extend_from_slice(&s.port().to_be_bytes());
    h.extend_from_slice(&d.port().to_be_bytes());
    h
}

fn echo_back(s: &mut TcpStream, data: &[u8]) {
    let mut got = vec![0; data.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, data);
}

/// Read until the server closes the connection (an end-of-file or a
/// reset, not the read timeout); returns what came before.
fn read_until_server_closes(s: &mut TcpStream) -> Vec<u8> {
    let (rest, end) = read_until_closed(s);
    if let Err(e) = end {
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "not closed: {e}");
    }
    rest
}

fn v1_header_gives_the_client_address_even_split_byte_by_byte(engine: EngineChoice) {
    let t = server(engine);
    let mut s = t.connect();
    s.set_nodelay(true).unwrap();
    let header = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 5001\r\n";
    for b in header {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1)); // separate reads
    }
    s.write_all(b"hello").unwrap();
    echo_back(&mut s, b"hello");
    let want: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    assert_eq!(*t.handler().0.lock().unwrap(), [want]);
    drop(s);
    t.finish();
}

fn v2_header_and_data_in_one_write(engine: EngineChoice) {
    let t = server(engine);
    let mut s = t.connect();
    let src: SocketAddr = "203.0.113.9:5555".parse().unwrap();
    let mut bytes = v2_header(src, "127.0.0.1:5001".parse().unwrap());
    bytes.extend_from_slice(b"after the header");
    s.write_all(&bytes).unwrap();
    echo_back(&mut s, b"after the header");
    assert_eq!(*t.handler().0.lock().unwrap(), [src]);
    drop(s);
    t.finish();
}

fn a_connection_without_a_header_is_closed_and_counted(engine: EngineChoice) {
    let t = server(engine);
    let mut s = t.connect();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let rest = read_until_server_closes(&mut s);
    assert!(rest.is_empty(), "nothing is echoed");
    assert!(eventually(IO_TIMEOUT, || t
        .server()
        .stats()
        .proxy_header_errors
        == 1));
    assert!(t.handler().0.lock().unwrap().is_empty(), "never introduced");
    // Others are still served.
    let mut ok = t.connect();
    ok.write_all(b"PROXY UNKNOWN\r\nping").unwrap();
    echo_back(&mut ok, b"ping");
    drop(ok);
    t.finish();
}

fn a_header_that_never_completes_times_out(engine: EngineChoice) {
    let t = server(engine);
    let mut s = t.connect();
    s.write_all(b"PROXY TCP4 192.0.2.7").unwrap();
    let rest = read_until_server_closes(&mut s); // by the frame timeout
    assert!(rest.is_empty());
    assert!(eventually(IO_TIMEOUT, || t
        .server()
        .stats()
        .proxy_header_errors
        == 1));
    t.finish();
}

both_engines!(
    v1_header_gives_the_client_address_even_split_byte_by_byte,
    v2_header_and_data_in_one_write,
    a_connection_without_a_header_is_closed_and_counted,
    a_header_that_never_completes_times_out,
);
