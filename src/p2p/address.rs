//! How peer-observer names the addresses that are not IPs: Tor v2 and v3 onion names and
//! I2P `.b32.i2p` names, and the way back from a name to its bytes.
//!
//! One place for both directions, so the decoder's spelling and the re-encoder's parsing can
//! never drift apart. SHA3 and base32 come from well-kept crates (`sha3`, `data-encoding`).
//!
//! Invariants: names are RFC 4648 base32, lowercase and unpadded; [`base32_decode`] accepts
//! only that spelling (so a name decodes back to the same bytes and re-encodes to the same
//! name); a Tor v3 name carries its checksum and version, which [`torv3_pubkey`] checks.

use data_encoding::BASE32_NOPAD;
use sha3::{Digest as _, Sha3_256};

/// The version byte of Tor v3 names.
const TORV3_VERSION: u8 = 3;

/// RFC 4648 base32, lowercase, unpadded: the form Tor and I2P names use.
pub fn base32_lower(data: &[u8]) -> String {
    BASE32_NOPAD.encode(data).to_ascii_lowercase()
}

/// The `N` bytes spelled by `text` in [`base32_lower`]'s form, or `None` for any other
/// spelling (uppercase, padding, wrong length, non-zero trailing bits).
pub fn base32_decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != (N * 8).div_ceil(5) || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let bytes = BASE32_NOPAD
        .decode(text.to_ascii_uppercase().as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

/// A Tor v2 name: base32 of the 10-byte service id, then `.onion`.
pub fn onion_v2(service_id: &[u8]) -> String {
    format!("{}.onion", base32_lower(service_id))
}

/// A Tor v3 name (rend-spec-v3 §6): base32(PUBKEY | CHECKSUM | VERSION) + ".onion", where
/// CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[..2] and VERSION = 3.
pub fn onion_v3(pubkey: &[u8; 32]) -> String {
    let checksum = Sha3_256::new()
        .chain_update(b".onion checksum")
        .chain_update(pubkey)
        .chain_update([TORV3_VERSION])
        .finalize();
    let mut name = [0u8; 35];
    name[..32].copy_from_slice(pubkey);
    name[32..34].copy_from_slice(&checksum[..2]);
    name[34] = TORV3_VERSION;
    format!("{}.onion", base32_lower(&name))
}

/// The public key of a Tor v3 name, when its spelling, checksum and version are right.
pub fn torv3_pubkey(name: &str) -> Option<[u8; 32]> {
    let decoded: [u8; 35] = base32_decode(name.strip_suffix(".onion")?)?;
    let mut pubkey = [0u8; 32];
    pubkey.copy_from_slice(&decoded[..32]);
    (onion_v3(&pubkey) == name).then_some(pubkey)
}

/// An I2P name: base32 of the 32-byte destination hash, then `.b32.i2p`.
pub fn i2p(hash: &[u8]) -> String {
    format!("{}.b32.i2p", base32_lower(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha3_is_the_fips_202_one() {
        // The empty-input vector of FIPS 202, through the crate this module uses.
        assert_eq!(
            hex::encode(Sha3_256::digest(b"")),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
    }

    #[test]
    fn a_known_tor_v3_name_round_trips() {
        // The Tor Project's own onion service.
        let name = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
        let pubkey = torv3_pubkey(name).expect("a valid v3 name");
        assert_eq!(onion_v3(&pubkey), name);
        // One changed character breaks the checksum.
        assert_eq!(
            torv3_pubkey("2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wie.onion"),
            None
        );
    }

    #[test]
    fn base32_accepts_only_its_own_spelling() {
        let bytes = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        let text = base32_lower(&bytes);
        assert_eq!(text, "32w353ybaibqibig");
        // RFC 4648's test vectors, lowercase.
        assert_eq!(base32_lower(b""), "");
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_decode::<10>(&text), Some(bytes));
        assert_eq!(base32_decode::<10>(&text.to_ascii_uppercase()), None);
        assert_eq!(base32_decode::<10>("32w353ybaibqibi"), None);
        // 1 byte = 2 characters with 2 trailing bits, which must be zero.
        assert_eq!(base32_decode::<1>("ab"), None);
        assert_eq!(base32_decode::<1>("aa"), Some([0]));
    }
}
