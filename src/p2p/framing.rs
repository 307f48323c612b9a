//! The v1 wire format: the 24-byte header, checksums, and an incremental frame parser.
//!
//! Header: magic (4) | command (12, NUL padded) | payload length (u32 LE) | checksum (first 4
//! bytes of SHA256d(payload)). The parser works on a caller-owned buffer so reading stays
//! cancel-safe, validates magic and length from the header alone, and never reserves more
//! than [`HEADER_LEN`] + [`MAX_PAYLOAD_LEN`] bytes because of a length it was sent.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use bitcoin::consensus::encode;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::Magic;
use bytes::BytesMut;

/// Length of the message header.
pub const HEADER_LEN: usize = 24;
/// Length of the command field.
pub const COMMAND_LEN: usize = 12;
/// Largest payload we accept (Bitcoin Core's `MAX_PROTOCOL_MESSAGE_LENGTH`).
pub const MAX_PAYLOAD_LEN: usize = 4_000_000;
/// Regtest network magic.
pub const REGTEST_MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// One message read from the node.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The command with its NUL padding removed (lossy UTF-8).
    pub command: String,
    /// The raw payload (checksum already verified).
    pub payload: Vec<u8>,
    /// The decoded message, `None` when rust-bitcoin cannot decode the payload. Commands it
    /// does not know decode to [`NetworkMessage::Unknown`].
    pub message: Option<NetworkMessage>,
}

impl Received {
    /// Whether this is a `command` message.
    pub fn is(&self, command: &str) -> bool {
        self.command == command
    }
}

/// First four bytes of SHA256d(`payload`).
pub fn checksum(payload: &[u8]) -> [u8; 4] {
    let hash = sha256d::Hash::hash(payload).to_byte_array();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// The 12-byte command field for `command`, or `None` if it is longer than 12 bytes.
/// Any bytes are accepted, so callers can craft invalid command names on purpose.
pub fn command_field(command: &[u8]) -> Option<[u8; COMMAND_LEN]> {
    let mut field = [0u8; COMMAND_LEN];
    field.get_mut(..command.len())?.copy_from_slice(command);
    Some(field)
}

/// A complete frame: header with the correct length and checksum, then `payload`.
///
/// Meant for crafting frames, including malformed ones (wrong magic, odd commands; corrupt
/// the checksum by editing bytes 20..24). It never fails: a command longer than 12 bytes is
/// truncated to 12 (use [`command_field`] to reject those instead).
pub fn frame(magic: [u8; 4], command: impl AsRef<[u8]>, payload: &[u8]) -> Vec<u8> {
    let command = command.as_ref();
    let mut field = [0u8; COMMAND_LEN];
    let n = command.len().min(COMMAND_LEN);
    field[..n].copy_from_slice(&command[..n]);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&field);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(payload));
    out.extend_from_slice(payload);
    out
}

/// `message` serialized by rust-bitcoin into a correctly framed message.
pub(crate) fn encode_message(magic: [u8; 4], message: NetworkMessage) -> Vec<u8> {
    encode::serialize(&RawNetworkMessage::new(Magic::from_bytes(magic), message))
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The header does not start with our magic; the stream is no longer in sync.
    BadMagic([u8; 4]),
    /// The announced payload is larger than [`MAX_PAYLOAD_LEN`]; the stream is no longer
    /// in sync (we refuse to read the payload).
    Oversized { command: String, len: u32 },
    /// The payload does not match its checksum. The frame was consumed, so the stream
    /// stays in sync.
    BadChecksum { command: String },
}

impl FrameError {
    /// Whether frame boundaries are lost after this error.
    pub(crate) fn desyncs(&self) -> bool {
        !matches!(self, FrameError::BadChecksum { .. })
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic(magic) => write!(f, "wrong magic {}", hex::encode(magic)),
            FrameError::Oversized { command, len } => write!(
                f,
                "`{command}` announces a {len}-byte payload, more than {MAX_PAYLOAD_LEN}"
            ),
            FrameError::BadChecksum { command } => write!(f, "`{command}` has a bad checksum"),
        }
    }
}

/// Takes the next complete frame off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `buf` then has capacity reserved for the whole
/// frame (bounded by [`MAX_PAYLOAD_LEN`]). Bad magic and oversized frames leave `buf`
/// untouched; a checksum mismatch consumes the frame.
pub(crate) fn parse_frame(
    buf: &mut BytesMut,
    magic: [u8; 4],
) -> Result<Option<Received>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut got_magic = [0u8; 4];
    got_magic.copy_from_slice(&header[..4]);
    if got_magic != magic {
        return Err(FrameError::BadMagic(got_magic));
    }
    let command = command_name(&header[4..4 + COMMAND_LEN]);
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&header[16..20]);
    let len = u32::from_le_bytes(len_bytes);
    let payload_len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD_LEN)
        .ok_or(FrameError::Oversized {
            command: command.clone(),
            len,
        })?;
    let total = HEADER_LEN + payload_len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let frame = buf.split_to(total);
    let payload = &frame[HEADER_LEN..];
    if checksum(payload) != frame[20..24] {
        return Err(FrameError::BadChecksum { command });
    }
    Ok(Some(Received {
        command,
        payload: payload.to_vec(),
        message: decode_message(&frame),
    }))
}

/// The command name: NUL padding removed, lossy UTF-8.
fn command_name(field: &[u8]) -> String {
    let end = field.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Decodes a complete, checksummed frame with rust-bitcoin. Any failure, including a panic
/// inside the decoder, gives `None`.
fn decode_message(frame: &[u8]) -> Option<NetworkMessage> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        encode::deserialize::<RawNetworkMessage>(frame).ok()
    }))
    .ok()
    .flatten()
    .map(RawNetworkMessage::into_payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Result<Option<Received>, FrameError> {
        parse_frame(&mut BytesMut::from(bytes), REGTEST_MAGIC)
    }

    #[test]
    fn empty_payload_checksum() {
        assert_eq!(hex::encode(checksum(&[])), "5df6e0e2");
    }

    #[test]
    fn frame_matches_rust_bitcoin() {
        let ping = NetworkMessage::Ping(0x0102_0304_0506_0708);
        let ours = frame(
            REGTEST_MAGIC,
            "ping",
            &0x0102_0304_0506_0708u64.to_le_bytes(),
        );
        assert_eq!(ours, encode_message(REGTEST_MAGIC, ping));
        let verack = frame(REGTEST_MAGIC, b"verack", &[]);
        assert_eq!(
            hex::encode(verack),
            "fabfb5da76657261636b000000000000000000005df6e0e2"
        );
    }

    #[test]
    fn parses_a_frame_split_over_reads() {
        let bytes = encode_message(REGTEST_MAGIC, NetworkMessage::Pong(7));
        let mut buf = BytesMut::new();
        for chunk in bytes.chunks(5) {
            assert_eq!(parse_frame(&mut buf, REGTEST_MAGIC), Ok(None));
            buf.extend_from_slice(chunk);
        }
        let received = parse_frame(&mut buf, REGTEST_MAGIC).unwrap().unwrap();
        assert!(received.is("pong"));
        assert_eq!(received.message, Some(NetworkMessage::Pong(7)));
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_wrong_magic() {
        let bytes = frame([1, 2, 3, 4], "ping", &[0; 8]);
        assert_eq!(parse_all(&bytes), Err(FrameError::BadMagic([1, 2, 3, 4])));
    }

    #[test]
    fn rejects_oversized_length_without_reserving_it() {
        let mut header = frame(REGTEST_MAGIC, "block", &[]);
        header[16..20].copy_from_slice(&4_000_001u32.to_le_bytes());
        let mut buf = BytesMut::from(&header[..]);
        let err = parse_frame(&mut buf, REGTEST_MAGIC).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { len: 4_000_001, .. }));
        assert!(err.desyncs());
        assert!(buf.capacity() < 1_000);

        header[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_all(&header).is_err());
    }

    #[test]
    fn bad_checksum_consumes_the_frame() {
        let mut bytes = frame(REGTEST_MAGIC, "ping", &1u64.to_le_bytes());
        bytes[20] ^= 0xff;
        bytes.extend(frame(REGTEST_MAGIC, "pong", &2u64.to_le_bytes()));
        let mut buf = BytesMut::from(&bytes[..]);
        let err = parse_frame(&mut buf, REGTEST_MAGIC).unwrap_err();
        assert!(!err.desyncs());
        let next = parse_frame(&mut buf, REGTEST_MAGIC).unwrap().unwrap();
        assert_eq!(next.message, Some(NetworkMessage::Pong(2)));
    }

    #[test]
    fn undecodable_payloads_give_no_message() {
        // A ping needs 8 bytes; a version needs far more.
        for (command, payload) in [("ping", &[1u8, 2][..]), ("version", &[0xff; 30][..])] {
            let received = parse_all(&frame(REGTEST_MAGIC, command, payload))
                .unwrap()
                .unwrap();
            assert_eq!(received.command, command);
            assert_eq!(received.payload, payload);
            assert_eq!(received.message, None);
        }
        let odd = parse_all(&frame(REGTEST_MAGIC, b"\xffweird", &[]))
            .unwrap()
            .unwrap();
        assert_eq!(odd.message, None);
        let unknown = parse_all(&frame(REGTEST_MAGIC, "sendtxrcncl", &[0; 12]))
            .unwrap()
            .unwrap();
        assert!(matches!(
            unknown.message,
            Some(NetworkMessage::Unknown { .. })
        ));
    }

    #[test]
    fn command_field_limits_length() {
        assert_eq!(command_field(b"ping").unwrap()[..5], *b"ping\0");
        assert!(command_field(b"123456789012").is_some());
        assert!(command_field(b"1234567890123").is_none());
    }
}
