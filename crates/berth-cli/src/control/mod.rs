//! The control socket (`--control PATH`), the seed's "off switch": a
//! Unix-domain stream socket, mode 0600, that speaks newline-delimited
//! JSON. Each request is one line holding one object; each gets one line
//! back. A connection may send several requests, one after another.
//!
//! ```text
//! {"cmd":"pause"}                        -> {"ok":true,"paused":true}
//! {"cmd":"resume"}                       -> {"ok":true,"paused":false}
//! {"cmd":"stats"}                        -> {"ok":true,"stats":{...}}
//! {"cmd":"shutdown"}                     -> {"ok":true,"draining":true,"deadline_secs":30}
//! {"cmd":"shutdown","deadline_secs":5}   -> {"ok":true,"draining":true,"deadline_secs":5}
//! anything else                          -> {"ok":false,"error":"..."}
//! ```
//!
//! From a shell: `echo '{"cmd":"stats"}' | socat - UNIX-CONNECT:PATH`.
//! `berth ctl` ([`crate::ctl`]) is the client.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the protocol: [`Request`] |
//! | `socket.rs` | claiming the path (stale and live sockets), the thread that answers |
//! | `stats.rs` | the `stats` object |

mod socket;
mod stats;

use serde::{Deserialize, Serialize};

pub use socket::{ControlSocket, Target};

/// One request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Stop accepting: new connections wait in the kernel backlog.
    Pause,
    /// Accept again, starting with the connections that waited.
    Resume,
    /// The server's counters.
    Stats,
    /// The graceful drain; the server exits when it ends.
    Shutdown {
        /// Seconds to drain before the rest are reset (default: the
        /// server's `--drain-timeout`). During a drain, an earlier deadline
        /// brings it forward; a later one changes nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_secs: Option<u64>,
    },
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn requests_read_as_documented() {
        let read = |line: &str| serde_json::from_str::<Request>(line).map_err(|e| e.to_string());
        assert_eq!(read(r#"{"cmd":"pause"}"#), Ok(Request::Pause));
        assert_eq!(read(r#"{"cmd":"resume"}"#), Ok(Request::Resume));
        assert_eq!(read(r#"{"cmd":"stats"}"#), Ok(Request::Stats));
        assert_eq!(
            read(r#"{"cmd":"shutdown"}"#),
            Ok(Request::Shutdown {
                deadline_secs: None
            })
        );
        assert_eq!(
            read(r#"{"deadline_secs":5,"cmd":"shutdown"}"#),
            Ok(Request::Shutdown {
                deadline_secs: Some(5)
            })
        );
        assert!(read(r#"{"cmd":"reboot"}"#).unwrap_err().contains("reboot"));
        assert!(read("pause").is_err());
        let line = serde_json::to_string(&Request::Shutdown {
            deadline_secs: Some(3),
        })
        .unwrap();
        assert_eq!(line, r#"{"cmd":"shutdown","deadline_secs":3}"#);
        assert_eq!(
            serde_json::to_string(&Request::Stats).unwrap(),
            r#"{"cmd":"stats"}"#
        );
    }
}
