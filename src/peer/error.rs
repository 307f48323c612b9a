//! The error type of the peer module.

use std::io;

/// What can go wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing (`connecting to 127.0.0.1:18444`, ...).
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An operation did not finish in time; the string says which.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The node (or the caller) broke the wire protocol: wrong magic, oversized or
    /// badly checksummed frame, undecodable VERSION, over-long command name.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The node closed the connection (EOF or reset).
    #[error("the node closed the connection")]
    Closed,
}

impl PeerError {
    /// An [`PeerError::Io`] with its context.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> PeerError {
        PeerError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Whether an I/O error means the other side went away.
pub(crate) fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}
