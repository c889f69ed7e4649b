//! The bytes of every message: a fixed pattern with the message's sequence
//! number and intended send time written in, and the check of an echo
//! against it.

use super::mode::Mode;

/// Bytes of the variable fields in every message.
pub(super) const FIELDS: usize = 12;

/// The bytes of message `seq`: a deterministic pattern, with the sequence
/// number and the intended send time (ns since the run began) written in.
pub(super) struct Template {
    pub(super) bytes: Vec<u8>,
    /// Offset of the variable fields: a 4-byte sequence number, then an
    /// 8-byte timestamp.
    pub(super) fields_at: usize,
}

impl Template {
    pub(super) fn new(size: usize, mode: Mode) -> Self {
        let mut bytes: Vec<u8> = (0..size).map(|i| (i * 7 + 13) as u8).collect();
        if mode == Mode::Packet {
            let mut at = 0;
            while at < size {
                let len = (size - at).min(255);
                let len = if size - at - len == 1 { len - 1 } else { len }; // no 1-byte tail
                bytes[at] = len as u8;
                at += len;
            }
        }
        // Fields go after the first packet header (offset 1) in both modes.
        Template {
            bytes,
            fields_at: 1,
        }
    }

    pub(super) fn fill(&self, out: &mut Vec<u8>, seq: u32, ts: u64) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        self.stamp(out, seq, ts);
    }

    /// The variable fields of message `seq`, stamped `ts`.
    pub(super) fn fields(seq: u32, ts: u64) -> [u8; FIELDS] {
        let mut f = [0u8; FIELDS];
        f[..4].copy_from_slice(&seq.to_le_bytes());
        f[4..].copy_from_slice(&ts.to_le_bytes());
        f
    }

    /// Write the variable fields into `msg`, a copy of the template.
    pub(super) fn stamp(&self, msg: &mut [u8], seq: u32, ts: u64) {
        msg[self.fields_at..self.fields_at + FIELDS].copy_from_slice(&Self::fields(seq, ts));
    }

    /// Check `chunk`, the bytes of a message from offset `at` on, against
    /// the template: whether every fixed byte matches. The bytes of the
    /// variable fields are copied into `fields` instead.
    pub(super) fn check(&self, at: usize, chunk: &[u8], fields: &mut [u8; FIELDS]) -> bool {
        let end = at + chunk.len();
        let (f0, f1) = (self.fields_at, self.fields_at + FIELDS);
        let part = |from: usize, to: usize| &chunk[from - at..to - at];
        let mut ok = true;
        if at < f0 {
            let to = end.min(f0);
            ok &= part(at, to) == &self.bytes[at..to];
        }
        let (from, to) = (at.max(f0), end.min(f1));
        if from < to {
            fields[from - f0..to - f0].copy_from_slice(part(from, to));
        }
        if end > f1 {
            let from = at.max(f1);
            ok &= part(from, end) == &self.bytes[from..end];
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::{FIELDS, Mode, Template};

    /// Check `msg` in chunks that end at `cuts`; the fields as read, and
    /// whether every fixed byte matched.
    fn check_in_chunks(t: &Template, msg: &[u8], cuts: &[usize]) -> ([u8; FIELDS], bool) {
        let mut fields = [0u8; FIELDS];
        let mut ok = true;
        let mut at = 0;
        for &cut in cuts.iter().chain([&msg.len()]) {
            ok &= t.check(at, &msg[at..cut], &mut fields);
            at = cut;
        }
        (fields, ok)
    }

    #[test]
    fn check_reads_the_fields_and_accepts_an_exact_echo_however_it_is_split() {
        for mode in [Mode::Echo, Mode::Packet] {
            let t = Template::new(300, mode);
            let mut msg = Vec::new();
            t.fill(&mut msg, 0xa1b2_c3d4, 0x0102_0304_0506_0708);
            let mut want = [0u8; 12];
            want[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
            want[4..].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
            for a in 0..=msg.len() {
                for b in (a..=msg.len()).step_by(7) {
                    let (fields, ok) = check_in_chunks(&t, &msg, &[a, b]);
                    assert!(ok, "{mode:?}: split at {a} and {b}");
                    assert_eq!(fields, want, "{mode:?}: split at {a} and {b}");
                }
            }
        }
    }

    #[test]
    fn check_finds_a_wrong_byte_anywhere_outside_the_fields() {
        let t = Template::new(64, Mode::Echo);
        let mut msg = Vec::new();
        t.fill(&mut msg, 7, 9);
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x40;
            for cut in [0, 1, 5, 13, 14, 40, 64] {
                let (_, ok) = check_in_chunks(&t, &bad, &[cut]);
                let in_fields = (t.fields_at..t.fields_at + FIELDS).contains(&i);
                assert_eq!(ok, in_fields, "byte {i} changed, split at {cut}");
            }
        }
    }
}
