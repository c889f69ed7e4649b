//! A hashed timer wheel, one per IO thread (Varghese and Lauck's scheme 4,
//! as in Netty's `HashedWheelTimer`): time is cut into ticks of [`TICK`];
//! an entry due at tick `t` waits in slot `t % SLOTS` and is looked at
//! each time the wheel passes that slot until `t` has come. Inserting is a
//! push; passing an empty slot costs a bit test; no system call is made per
//! entry. A bitmap of non-empty slots gives the nearest slot that needs a
//! look, which bounds the thread's wait.
//!
//! Entries are never removed early: whoever owns an entry keeps the tick it
//! is due and ignores an entry that no longer matches (a cancelled or moved
//! timer). See `timers.rs` for how connections use it.

use std::time::{Duration, Instant};

use crate::driver::key::Key;

/// The wheel's resolution.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// Slots in one revolution (about 41 s of ticks).
const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;

/// Which of a connection's timers an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// No bytes either way for the idle timeout.
    Idle,
    /// A frame (or line) begun and not finished within the frame timeout.
    Frame,
    /// The handler's own timer.
    User,
}

/// One scheduled timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    pub key: Key,
    pub kind: TimerKind,
    /// The tick it is due.
    pub at: u32,
}

pub(crate) struct Wheel {
    base: Instant,
    /// Every tick up to and including this one has been looked at.
    now: u32,
    slots: Vec<Vec<Due>>,
    /// Which slots hold entries.
    bits: [u64; WORDS],
    len: usize,
    /// The first tick at which a slot with entries comes round, if any
    /// (it may hold only entries for later revolutions: an early look).
    next: Option<u32>,
}

impl Wheel {
    pub fn new(base: Instant) -> Self {
        Wheel {
            base,
            now: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            bits: [0; WORDS],
            len: 0,
            next: None,
        }
    }

    /// The tick `at` falls in (time before the wheel's start is tick 0).
    pub fn tick_of(&self, at: Instant) -> u32 {
        let ms = at.saturating_duration_since(self.base).as_millis();
        u32::try_from(ms / TICK.as_millis()).unwrap_or(u32::MAX)
    }

    /// `d` in ticks, rounded up, at least one.
    pub fn ticks(d: Duration) -> u32 {
        let t = d.as_millis().div_ceil(TICK.as_millis()).max(1);
        u32::try_from(t).unwrap_or(u32::MAX / 2)
    }

    /// The tick the wheel has reached.
    pub fn now(&self) -> u32 {
        self.now
    }

    /// Entries waiting (including ones their owners no longer want).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Schedule `key`'s `kind` timer for tick `at` (a past tick fires at
    /// the next advance).
    pub fn insert(&mut self, key: Key, kind: TimerKind, at: u32) {
        let at = at.max(self.now.saturating_add(1));
        let slot = at as usize % SLOTS;
        self.slots[slot].push(Due { key, kind, at });
        self.bits[slot / 64] |= 1 << (slot % 64);
        self.len += 1;
        let visit = self.visit_of(slot);
        self.next = Some(self.next.map_or(visit, |n| n.min(visit)));
    }

    /// The first tick after `now` at which `slot` is looked at.
    fn visit_of(&self, slot: usize) -> u32 {
        let cur = self.now as usize % SLOTS;
        let ahead = (slot + SLOTS - cur) % SLOTS;
        let ahead = if ahead == 0 { SLOTS } else { ahead };
        self.now.saturating_add(ahead as u32)
    }

    /// When the wheel next needs a look, if it holds anything.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next.map(|t| self.base + TICK * t)
    }

    /// Move the wheel to `now`, handing every entry due by then to `fire`
    /// (in no particular order).
    pub fn advance(&mut self, now: Instant, mut fire: impl FnMut(Due)) {
        let target = self.tick_of(now);
        if self.next.is_none_or(|n| n > target) {
            self.now = self.now.max(target);
            return;
        }
        // Look at each slot passed, at most one revolution's worth.
        let passed = (target - self.now) as usize;
        let start = self.now as usize + 1;
        for i in 0..passed.min(SLOTS) {
            let slot = (start + i) % SLOTS;
            if self.bits[slot / 64] & (1 << (slot % 64)) == 0 {
                continue;
            }
            let entries = &mut self.slots[slot];
            let before = entries.len();
            entries.retain(|d| {
                if d.at <= target {
                    fire(*d);
                    false
                } else {
                    true
                }
            });
            self.len -= before - entries.len();
            if entries.is_empty() {
                self.bits[slot / 64] &= !(1 << (slot % 64));
            }
        }
        self.now = target;
        self.next = self.first_visit();
    }

    /// The first tick after `now` at which a slot with entries comes round.
    fn first_visit(&self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let cur = self.now as usize % SLOTS;
        // Scan the bitmap from the slot after `cur`, wrapping once.
        for step in 0..=WORDS {
            let word_idx = ((cur + 1) / 64 + step) % WORDS;
            let mut word = self.bits[word_idx];
            if step == 0 {
                word &= !0u64 << ((cur + 1) % 64);
            }
            if step == WORDS {
                word &= !(!0u64 << ((cur + 1) % 64));
            }
            if word != 0 {
                let slot = word_idx * 64 + word.trailing_zeros() as usize;
                return Some(self.visit_of(slot));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(idx: u32) -> Key {
        Key { idx, generation: 0 }
    }

    fn fired(w: &mut Wheel, at: Instant) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        w.advance(at, |d| out.push((d.key.idx, d.at)));
        out.sort();
        out
    }

    #[test]
    fn entries_fire_when_due_and_not_before() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.insert(key(1), TimerKind::Idle, 5);
        w.insert(key(2), TimerKind::Idle, 7);
        assert_eq!(w.next_deadline(), Some(t0 + TICK * 5));
        assert!(fired(&mut w, t0 + TICK * 4).is_empty());
        assert_eq!(fired(&mut w, t0 + TICK * 5), vec![(1, 5)]);
        assert_eq!(w.next_deadline(), Some(t0 + TICK * 7));
        assert_eq!(fired(&mut w, t0 + TICK * 100), vec![(2, 7)]);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn entries_beyond_one_revolution_wait_their_turn() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let far = SLOTS as u32 * 2 + 3;
        w.insert(key(1), TimerKind::Frame, far);
        // The slot comes round after 3 ticks: an early look, nothing fires.
        assert_eq!(w.next_deadline(), Some(t0 + TICK * 3));
        assert!(fired(&mut w, t0 + TICK * 3).is_empty());
        assert!(fired(&mut w, t0 + TICK * (SLOTS as u32 + 3)).is_empty());
        assert_eq!(w.len(), 1);
        assert_eq!(fired(&mut w, t0 + TICK * far), vec![(1, far)]);
    }

    #[test]
    fn a_long_jump_fires_everything_due_once() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        for i in 0..100u32 {
            w.insert(key(i), TimerKind::User, 1 + i * 97);
        }
        let all = fired(&mut w, t0 + TICK * 20_000);
        assert_eq!(all.len(), 100);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_past_tick_fires_at_the_next_advance() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        assert!(fired(&mut w, t0 + TICK * 50).is_empty());
        w.insert(key(9), TimerKind::User, 10);
        assert_eq!(fired(&mut w, t0 + TICK * 51), vec![(9, 51)]);
    }

    #[test]
    fn the_nearest_slot_wraps_around_the_bitmap() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        assert!(fired(&mut w, t0 + TICK * (SLOTS as u32 - 2)).is_empty());
        let at = SLOTS as u32 + 5; // slot 5, behind the cursor
        w.insert(key(1), TimerKind::Idle, at);
        assert_eq!(w.next_deadline(), Some(t0 + TICK * at));
        assert!(fired(&mut w, t0 + TICK * (at - 1)).is_empty());
        assert_eq!(fired(&mut w, t0 + TICK * at), vec![(1, at)]);
    }
}
