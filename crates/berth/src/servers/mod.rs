//! The seed's sample servers, ready to run: [`Echo`] and [`PacketEcho`].
//!
//! `berth echo` and `berth packet-echo` are these handlers behind the
//! command line; they are also small, complete examples of the API.

mod echo;
mod packet_echo;

pub use echo::Echo;
pub use packet_echo::{PacketEcho, packet_codec};
