//! The load generator's side of every connection: send the first window,
//! check each echo, record its latency, send the next message in its place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use berth::{Conn, Handler, IoBuf, Lifecycle, ServerEvent};

use super::send::send_many;
use super::shared::Shared;
use super::template::FIELDS;

/// Per-connection state: where we are in the echoed stream.
#[derive(Default)]
pub(super) struct ConnBench {
    next_send: u32,
    next_recv: u32,
    /// Bytes of the current message received so far.
    recv_off: usize,
    /// The current message's fields as received.
    fields: [u8; FIELDS],
    broken: bool,
}

/// The client's handler: every connection of the run.
pub(super) struct Bench(pub(super) Arc<Shared>);

impl Lifecycle for Bench {
    type State = ConnBench;

    fn connect_failed(&self, _: SocketAddr, err: &std::io::Error) {
        let b = &self.0;
        // Connects still pending when the run ends fail as it stops.
        if b.stop.load(Relaxed) {
            return;
        }
        if b.dialer.retries(err) {
            // The pair the run chose was taken: the next one, whatever the
            // mode (a connection of a closed-loop run is replaced too).
            b.counters.connect_retry(err);
            b.dialer.reconnect();
            return;
        }
        b.counters.connect_error(err);
        self.reconnect();
    }

    fn server_event(&self, event: ServerEvent<'_>) {
        if let ServerEvent::ConnectionClosed { .. } = event {
            let b = &self.0;
            if !b.load.churn && !b.stop.load(Relaxed) {
                b.counters.closes.fetch_add(1, Relaxed);
            }
            self.reconnect();
        }
    }
}

impl Handler for Bench {
    fn connection_established(&self, conn: &mut Conn<'_>, st: &mut ConnBench, _: SocketAddr) {
        let b = &self.0;
        b.counters.established.fetch_add(1, Relaxed);
        b.dialer.established();
        if b.load.open_loop {
            b.paced.add(conn.handle());
        } else {
            // The whole first window in one write (it may span buffers).
            let n = if b.load.churn { 1 } else { b.load.depth };
            send_many(
                conn,
                &b.load.template,
                &mut st.next_send,
                n,
                b.window.now_ns(),
            );
        }
    }

    fn read_completed(&self, conn: &mut Conn<'_>, st: &mut ConnBench, buf: IoBuf) {
        let b = &self.0;
        if st.broken {
            return;
        }
        // One clock reading for the whole buffer: its messages arrived
        // together, and the replies they trigger leave together.
        let now = Instant::now();
        let now_ns = b.window.ns_at(now);
        let measuring = b.window.measures(now);
        let mut shard = None;
        let mut echoed = 0u32;
        let mut data = &buf[..];
        while !data.is_empty() {
            let take = data.len().min(b.load.size - st.recv_off);
            if !b
                .load
                .template
                .check(st.recv_off, &data[..take], &mut st.fields)
            {
                st.broken = true;
            }
            st.recv_off += take;
            data = &data[take..];
            if st.recv_off < b.load.size {
                break;
            }
            // A whole message came back.
            st.recv_off = 0;
            let seq = u32::from_le_bytes(st.fields[..4].try_into().unwrap());
            let sent = u64::from_le_bytes(st.fields[4..].try_into().unwrap());
            if seq != st.next_recv || sent > now_ns {
                st.broken = true;
            }
            if st.broken {
                b.counters.mismatches.fetch_add(1, Relaxed);
                conn.abort();
                return;
            }
            st.next_recv = st.next_recv.wrapping_add(1);
            echoed += 1;
            if measuring {
                let s = shard.get_or_insert_with(|| b.latency.shard(conn));
                let _ = s.hist.record((now_ns.saturating_sub(sent) / 1000).max(1));
                s.messages += 1;
            }
            if b.load.churn {
                if measuring {
                    b.counters.completed_conns.fetch_add(1, Relaxed);
                }
                conn.close();
                break;
            }
        }
        drop(shard);
        b.counters
            .total_messages
            .fetch_add(u64::from(echoed), Relaxed);
        if echoed > 0 && !b.load.churn && !b.load.open_loop && !b.stop.load(Relaxed) {
            send_many(conn, &b.load.template, &mut st.next_send, echoed, now_ns);
        }
    }
}

impl Bench {
    /// In churn mode, replace a finished connection while the run lasts.
    fn reconnect(&self) {
        let b = &self.0;
        if b.load.churn && !b.stop.load(Relaxed) {
            b.dialer.reconnect();
        }
    }
}
