//! Connections behind a proxy (`ServerBuilder::proxy_protocol`): each
//! accepted connection must start with a PROXY protocol header (v1 or v2;
//! never guessed). Until the header is complete the connection reads into
//! its stash and the handler does not know it; then its peer becomes the
//! client's address the header gives, the handler meets it
//! (`connection_established`), and the bytes after the header are
//! delivered as usual. A connection whose first bytes are not a valid
//! header, that ends before one, or that does not complete it within the
//! frame timeout is closed abortively with a log line, and counted.

use crate::driver::backend::Backend;
use crate::driver::core::Core;
use crate::driver::key::Key;
use crate::driver::state::flags::*;
use crate::driver::stats::{CloseReason, ThreadStats};
use crate::handler::Handler;
use crate::proxy::{self, Parsed};

impl<H: Handler, I> Core<H, I> {
    /// Bytes of a connection still waiting for its header.
    #[cold]
    pub(super) fn proxy_data<B: Backend<Io = I>>(
        &mut self,
        be: &mut B,
        key: Key,
        buf: crate::buffer::IoBuf,
    ) {
        let Some(e) = self.entry(key) else { return };
        e.st.stash.push_back(buf);
        // The header is short (the parser refuses more than its bound):
        // look at no more than that, plus one byte.
        let limit = proxy::DEFAULT_MAX_LEN + 1;
        let mut bytes = Vec::with_capacity(limit.min(512));
        for b in &e.st.stash {
            let take = (limit - bytes.len()).min(b.len());
            bytes.extend_from_slice(&b[..take]);
            if bytes.len() == limit {
                break;
            }
        }
        match proxy::parse(&bytes) {
            Ok(Parsed::Incomplete { .. }) => self.kick(be, key),
            Ok(Parsed::Complete { header, consumed }) => {
                let mut left = consumed;
                while left > 0 {
                    let Some(front) = e.st.stash.front_mut() else {
                        break;
                    };
                    if front.len() <= left {
                        left -= front.len();
                        e.st.stash.pop_front();
                    } else {
                        front.advance(left);
                        left = 0;
                    }
                }
                let proxy_peer = e.st.peer;
                if let Some(client) = header.source() {
                    e.st.peer = client;
                }
                e.st.clear(AWAIT_PROXY);
                e.st.timers.frame_at = 0;
                tracing::debug!(conn = %e.st.id, proxy = %proxy_peer, client = %e.st.peer,
                    version = header.version().number(), "PROXY header");
                self.establish(be, key);
            }
            Err(err) => {
                tracing::warn!(conn = %e.st.id, peer = %e.st.peer, %err,
                    "no valid PROXY protocol header; closing the connection");
                self.proxy_failed(be, key);
            }
        }
    }

    /// Close a connection that brought no valid header: abortively, not
    /// known to the handler, counted.
    #[cold]
    pub(super) fn proxy_failed<B: Backend<Io = I>>(&mut self, be: &mut B, key: Key) {
        ThreadStats::add(&self.stats.proxy_errors, 1);
        if let Some(e) = self.entry(key) {
            e.st.stash.clear();
            e.st.close_for(CloseReason::Error);
            e.st.set(ABORT);
        }
        self.kick(be, key);
    }
}
