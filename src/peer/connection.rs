//! [`Peer`]: one v1 TCP connection to a node, driven by the caller.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{debug, trace, warn};

use super::builders::version_message;
use super::config::{random_nonce, PeerConfig};
use super::error::{is_disconnect, PeerError};
use crate::p2p::{command_field, encode_message, frame, parse_frame, Received};

/// Lowest common version at which `wtxidrelay` and `sendaddrv2` are exchanged.
const FEATURE_NEGOTIATION_VERSION: u32 = 70016;
/// Initial read buffer size.
const READ_CHUNK: usize = 16 * 1024;

/// Where the byte stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stream {
    /// Frames can be read.
    InSync,
    /// A framing error lost the frame boundaries; reading frames is no longer possible.
    Desynced(String),
    /// The node closed the connection.
    Closed,
}

/// One TCP connection to a node, speaking the v1 transport.
///
/// Every operation is bounded by [`PeerConfig::io_timeout`] (or the timeout passed in) and
/// is cancel-safe: bytes already read stay in the read buffer and bytes not yet written stay
/// in the write queue, so a timed-out or dropped call loses no message and corrupts no frame.
#[derive(Debug)]
pub struct Peer {
    stream: TcpStream,
    config: PeerConfig,
    nonce: u64,
    local: SocketAddr,
    remote: SocketAddr,
    /// Bytes read but not yet parsed into frames.
    inbox: BytesMut,
    /// Bytes queued for the node but not yet written.
    outbox: BytesMut,
    /// Messages parsed but not yet returned by `recv`.
    backlog: VecDeque<Received>,
    state: Stream,
    their_version: Option<VersionMessage>,
}

impl Peer {
    /// Opens a TCP connection to `addr` (bounded by `io_timeout`). Nothing is sent yet.
    pub async fn connect(addr: SocketAddr, config: PeerConfig) -> Result<Peer, PeerError> {
        let context = || format!("connecting to {addr}");
        let stream = timeout(config.io_timeout, open_stream(addr, config.bind))
            .await
            .map_err(|_| PeerError::Timeout(context()))?
            .map_err(|e| PeerError::io(context(), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| PeerError::io("setting TCP_NODELAY", e))?;
        let local = stream
            .local_addr()
            .map_err(|e| PeerError::io("reading the local address", e))?;
        let nonce = config.nonce.unwrap_or_else(random_nonce);
        debug!(%local, remote = %addr, "connected");
        Ok(Peer {
            stream,
            config,
            nonce,
            local,
            remote: addr,
            inbox: BytesMut::with_capacity(READ_CHUNK),
            outbox: BytesMut::new(),
            backlog: VecDeque::new(),
            state: Stream::InSync,
            their_version: None,
        })
    }

    /// Runs the version handshake, bounded by `io_timeout` as a whole.
    ///
    /// Sends our VERSION, then waits for the node's VERSION and VERACK. On the node's VERSION
    /// we send `wtxidrelay` and `sendaddrv2` (when both sides speak at least 70016) and then
    /// our VERACK, in the order Bitcoin Core uses. Other messages that arrive meanwhile are
    /// kept and returned by later [`recv`](Self::recv) calls. Returns the node's VERSION.
    pub async fn handshake(&mut self) -> Result<VersionMessage, PeerError> {
        let limit = self.config.io_timeout;
        bounded(limit, "the version handshake", self.handshake_inner()).await
    }

    async fn handshake_inner(&mut self) -> Result<VersionMessage, PeerError> {
        let ours = version_message(&self.config, self.nonce, self.remote);
        self.queue(encode_message(
            self.config.magic,
            NetworkMessage::Version(ours),
        ));
        self.flush().await?;

        let mut theirs: Option<VersionMessage> = None;
        let mut verack = false;
        let mut others = Vec::new();
        while theirs.is_none() || !verack {
            let received = self.next().await?;
            match received.message {
                Some(NetworkMessage::Version(version)) if theirs.is_none() => {
                    debug!(local = %self.local, version = version.version,
                        user_agent = %version.user_agent, "node version");
                    if version.version.min(self.config.version) >= FEATURE_NEGOTIATION_VERSION {
                        self.queue_message(NetworkMessage::WtxidRelay);
                        self.queue_message(NetworkMessage::SendAddrV2);
                    }
                    self.queue_message(NetworkMessage::Verack);
                    self.flush().await?;
                    theirs = Some(version);
                }
                Some(NetworkMessage::Verack) => verack = true,
                None if received.is("version") && theirs.is_none() => {
                    return Err(PeerError::Protocol(format!(
                        "undecodable VERSION payload {}",
                        hex::encode(&received.payload)
                    )));
                }
                _ => others.push(received),
            }
        }
        // Give the unrelated messages back to `recv`, in arrival order.
        for received in others.into_iter().rev() {
            self.backlog.push_front(received);
        }
        let theirs = theirs.ok_or_else(|| PeerError::Protocol("no VERSION".into()))?;
        self.their_version = Some(theirs.clone());
        Ok(theirs)
    }

    /// Sends `msg`, framed with our magic, its length and checksum.
    pub async fn send(&mut self, msg: NetworkMessage) -> Result<(), PeerError> {
        trace!(local = %self.local, command = %msg.command(), "send");
        let bytes = encode_message(self.config.magic, msg);
        self.send_bytes(&bytes).await
    }

    /// Sends a correctly framed message with any command (at most 12 bytes, NUL padded;
    /// `&str`, `&[u8; 12]` and byte slices work) and any payload.
    pub async fn send_raw(
        &mut self,
        command: impl AsRef<[u8]>,
        payload: &[u8],
    ) -> Result<(), PeerError> {
        let command = command.as_ref();
        if command_field(command).is_none() {
            return Err(PeerError::Protocol(format!(
                "command {:?} is longer than 12 bytes",
                String::from_utf8_lossy(command)
            )));
        }
        let bytes = frame(self.config.magic, command, payload);
        self.send_bytes(&bytes).await
    }

    /// Sends `bytes` as they are: for malformed frames, wrong magic, bad checksums, garbage.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), PeerError> {
        if self.state == Stream::Closed {
            return Err(PeerError::Closed);
        }
        self.queue(bytes.to_vec());
        let limit = self.config.io_timeout;
        bounded(limit, "sending", self.flush()).await
    }

    /// The next message from the node, within `io_timeout`.
    ///
    /// A `ping` is answered with a `pong` of the same nonce (unless
    /// [`PeerConfig::answer_pings`] is off) and is still returned. Errors: `Closed` when the
    /// node closed the connection, `Protocol` for a frame with wrong magic or an oversized
    /// length (every later call fails the same way, the stream is out of sync) or a bad
    /// checksum (that frame is skipped, later calls continue), `Timeout`.
    pub async fn recv(&mut self) -> Result<Received, PeerError> {
        let limit = self.config.io_timeout;
        bounded(limit, "waiting for a message", self.next()).await
    }

    /// Receives until `pred` accepts a message and returns it; messages before it are
    /// dropped (pings among them are still answered). Fails with `Timeout` after `limit`.
    pub async fn recv_until(
        &mut self,
        mut pred: impl FnMut(&Received) -> bool,
        limit: Duration,
    ) -> Result<Received, PeerError> {
        let find = async {
            loop {
                let received = self.next().await?;
                if pred(&received) {
                    return Ok(received);
                }
                trace!(local = %self.local, command = %received.command, "skipped");
            }
        };
        bounded(limit, "waiting for a matching message", find).await
    }

    /// Reads and discards everything until the node closes the connection: `Ok` on EOF or
    /// reset, `Timeout` if it is still open after `limit`. Queued messages are discarded.
    pub async fn wait_closed(&mut self, limit: Duration) -> Result<(), PeerError> {
        self.backlog.clear();
        if self.state == Stream::Closed {
            return Ok(());
        }
        let drain = async {
            loop {
                self.inbox.clear();
                self.inbox.reserve(READ_CHUNK);
                match self.stream.read_buf(&mut self.inbox).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if is_disconnect(&e) => return Ok(()),
                    Err(e) => return Err(PeerError::io("waiting for the node to disconnect", e)),
                }
            }
        };
        match timeout(limit, drain).await {
            Ok(result) => {
                self.inbox.clear();
                self.state = Stream::Closed;
                debug!(local = %self.local, "node closed the connection");
                result
            }
            Err(_) => Err(PeerError::Timeout(format!(
                "the node kept the connection open for {limit:?}"
            ))),
        }
    }

    /// Our end of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The node's end of the connection.
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }

    /// The nonce of our VERSION.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The node's VERSION, once [`handshake`](Self::handshake) succeeded.
    pub fn their_version(&self) -> Option<&VersionMessage> {
        self.their_version.as_ref()
    }

    /// The configuration this peer was connected with.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// Hands over the connection after writing what is queued: for traffic at wire speed,
    /// which the message-at-a-time API would slow down (the flood benchmark writes bursts of
    /// pings and discards the answers). What was read but not yet returned is dropped.
    pub async fn into_stream(mut self) -> Result<TcpStream, PeerError> {
        let limit = self.config.io_timeout;
        bounded(limit, "flushing", self.flush()).await?;
        Ok(self.stream)
    }

    /// Writes what is still queued and shuts the connection down (bounded by `io_timeout`;
    /// errors are only logged, the socket is closed either way).
    pub async fn close(mut self) {
        let limit = self.config.io_timeout;
        let shutdown = async {
            self.flush().await?;
            self.stream
                .shutdown()
                .await
                .map_err(|e| PeerError::io("shutting down", e))
        };
        if let Err(e) = bounded(limit, "closing", shutdown).await {
            debug!(local = %self.local, error = %e, "close");
        }
    }

    /// The next message: from the backlog, else from the socket. Pings are answered at
    /// parse time; the answer is flushed before the message is returned. Cancel-safe.
    async fn next(&mut self) -> Result<Received, PeerError> {
        loop {
            if let Err(e) = self.flush().await {
                // A node that already closed may still have left messages for us.
                if self.backlog.is_empty() {
                    return Err(e);
                }
                warn!(local = %self.local, error = %e, "could not answer");
            }
            if let Some(received) = self.backlog.pop_front() {
                trace!(local = %self.local, command = %received.command,
                    len = received.payload.len(), "recv");
                return Ok(received);
            }
            self.read_frame().await?;
        }
    }

    /// Reads until one frame is parsed into the backlog. Cancel-safe.
    async fn read_frame(&mut self) -> Result<(), PeerError> {
        match &self.state {
            Stream::InSync => {}
            Stream::Closed => return Err(PeerError::Closed),
            Stream::Desynced(why) => {
                return Err(PeerError::Protocol(format!(
                    "stream out of sync after: {why}"
                )))
            }
        }
        loop {
            match parse_frame(&mut self.inbox, self.config.magic) {
                Ok(Some(received)) => {
                    self.on_frame(received);
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(local = %self.local, error = %e, "bad frame");
                    if e.desyncs() {
                        self.state = Stream::Desynced(e.to_string());
                    }
                    return Err(PeerError::Protocol(e.to_string()));
                }
            }
            if self.inbox.capacity() == self.inbox.len() {
                self.inbox.reserve(READ_CHUNK);
            }
            match self.stream.read_buf(&mut self.inbox).await {
                Ok(0) => return Err(self.closed()),
                Ok(_) => {}
                Err(e) if is_disconnect(&e) => return Err(self.closed()),
                Err(e) => return Err(PeerError::io("reading from the node", e)),
            }
        }
    }

    /// Files a parsed frame, queueing the pong for a ping.
    fn on_frame(&mut self, received: Received) {
        if let (true, Some(NetworkMessage::Ping(nonce))) =
            (self.config.answer_pings, &received.message)
        {
            trace!(local = %self.local, nonce, "answering ping");
            self.queue_message(NetworkMessage::Pong(*nonce));
        }
        self.backlog.push_back(received);
    }

    fn queue_message(&mut self, msg: NetworkMessage) {
        self.queue(encode_message(self.config.magic, msg));
    }

    fn queue(&mut self, bytes: Vec<u8>) {
        self.outbox.extend_from_slice(&bytes);
    }

    /// Writes the queue. Cancel-safe: written bytes leave the queue as they are written.
    async fn flush(&mut self) -> Result<(), PeerError> {
        while !self.outbox.is_empty() {
            match self.stream.write(&self.outbox).await {
                Ok(0) => return Err(self.closed()),
                Ok(n) => self.outbox.advance(n),
                Err(e) if is_disconnect(&e) => return Err(self.closed()),
                Err(e) => return Err(PeerError::io("writing to the node", e)),
            }
        }
        Ok(())
    }

    /// Records that the node went away.
    fn closed(&mut self) -> PeerError {
        if self.state != Stream::Closed {
            debug!(local = %self.local, "node closed the connection");
        }
        self.state = Stream::Closed;
        self.outbox.clear();
        PeerError::Closed
    }
}

/// `fut`, failing with `Timeout(what …)` after `limit`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    timeout(limit, fut)
        .await
        .map_err(|_| PeerError::Timeout(format!("{what} (after {limit:?})")))?
}

/// A TCP connection to `addr`, from `bind` when given.
async fn open_stream(
    addr: SocketAddr,
    bind: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect(addr).await;
    };
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}
