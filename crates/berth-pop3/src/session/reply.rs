//! What a session answers a command with: a [`Reply`] built whole, or a
//! [`Response`] whose [`Body`] (of a multi-line response) is produced in
//! pieces by [`Session::fill`](crate::Session::fill).

use super::body::Body;

/// What the connection should do after sending a [`Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Keep reading commands.
    Continue,
    /// Close the connection once the reply has been sent.
    Close,
}

/// The response to one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The bytes to send, CRLF-terminated (including the `.CRLF` of a
    /// multi-line response).
    pub bytes: Vec<u8>,
    /// Whether to keep the connection open.
    pub after: After,
}

impl Reply {
    /// A `+OK` line.
    pub(super) fn ok(text: &str) -> Self {
        Self::line("+OK", text)
    }

    /// A `-ERR` line.
    pub(super) fn err(text: &str) -> Self {
        Self::line("-ERR", text)
    }

    fn line(status: &str, text: &str) -> Self {
        let mut bytes = Vec::with_capacity(status.len() + text.len() + 3);
        bytes.extend_from_slice(status.as_bytes());
        if !text.is_empty() {
            bytes.push(b' ');
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        Self {
            bytes,
            after: After::Continue,
        }
    }

    /// The reply, closing the connection once sent.
    pub(super) fn closing(mut self) -> Self {
        self.after = After::Close;
        self
    }

    /// Whether the reply is a positive (`+OK`) response.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.bytes.starts_with(b"+OK")
    }
}

/// The response to one command line, for a server that sends it in
/// pieces: the status line (with the whole body, for short responses), and
/// the rest of a multi-line response as a [`Body`] to produce with
/// [`Session::fill`](crate::Session::fill) before the next command runs.
#[derive(Debug)]
pub struct Response {
    /// The bytes to send first.
    pub head: Vec<u8>,
    /// The rest of a multi-line response, if it is produced in pieces.
    pub body: Option<Body>,
    /// Whether to keep the connection open after the whole response.
    pub after: After,
}

impl From<Reply> for Response {
    fn from(reply: Reply) -> Self {
        Response {
            head: reply.bytes,
            body: None,
            after: reply.after,
        }
    }
}

impl Response {
    /// The response as a [`Reply`], for one without a body.
    pub(super) fn into_reply(self) -> Reply {
        debug_assert!(self.body.is_none());
        Reply {
            bytes: self.head,
            after: self.after,
        }
    }
}
