//! [`Key`]: a connection's (or a pending connect's) slot on its IO thread.

/// Index plus generation, so a command or completion for a closed
/// connection never reaches the slot's next user: the generation is bumped
/// when a slot is freed, and every lookup compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Key {
    pub idx: u32,
    pub generation: u32,
}
