//! Writing messages: copies of the template, stamped, written straight into
//! pooled buffers, as many messages per buffer as fit.

use berth::{Conn, IoBufMut};

use super::template::{FIELDS, Template};

/// Send the next `n` messages of a connection, numbered from `*next_seq`
/// on and stamped `ts`, written straight into pooled buffers (as many
/// messages per buffer as fit); `*next_seq` ends past the last one.
pub(super) fn send_many(conn: &mut Conn<'_>, t: &Template, next_seq: &mut u32, n: u32, ts: u64) {
    let size = t.bytes.len();
    let mut left = n as usize;
    let mut out = Filler::new(conn);
    while left > 0 {
        // As many whole messages as fit, written in place in one go.
        let buf = out.buf();
        let k = (buf.remaining() / size).min(left);
        if k > 0 {
            let spare = &mut buf.spare_mut()[..k * size];
            for msg in spare.chunks_exact_mut(size) {
                msg.copy_from_slice(&t.bytes);
                t.stamp(msg, *next_seq, ts);
                *next_seq = next_seq.wrapping_add(1);
            }
            buf.advance(k * size);
            left -= k;
            if buf.remaining() == 0 {
                out.flush();
            }
            continue;
        }
        // A message that straddles two buffers goes in pieces.
        let fields = Template::fields(*next_seq, ts);
        *next_seq = next_seq.wrapping_add(1);
        out.put(&t.bytes[..t.fields_at]);
        out.put(&fields);
        out.put(&t.bytes[t.fields_at + FIELDS..]);
        left -= 1;
    }
    out.finish();
}

/// Fills pooled buffers with outgoing bytes and queues each one as it
/// fills up, so a message is copied once, from the template.
struct Filler<'c, 'a> {
    conn: &'c mut Conn<'a>,
    buf: Option<IoBufMut>,
}

impl<'c, 'a> Filler<'c, 'a> {
    fn new(conn: &'c mut Conn<'a>) -> Self {
        Filler { conn, buf: None }
    }

    /// The buffer being filled (a new one if none is).
    fn buf(&mut self) -> &mut IoBufMut {
        self.buf.get_or_insert_with(|| self.conn.pool().alloc())
    }

    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let buf = self.buf();
            let took = buf.extend_from_slice(bytes);
            bytes = &bytes[took..];
            if buf.remaining() == 0 {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if let Some(buf) = self.buf.take().filter(|b| !b.is_empty()) {
            let _ = self.conn.write_buf(buf.freeze());
        }
    }

    fn finish(mut self) {
        self.flush();
    }
}
