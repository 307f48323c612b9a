//! `--anonymize`: peer addresses replaced by keyed pseudonyms before they reach the file.
//!
//! Every IP (v4, v6), Tor, I2P and CJDNS address in an event is replaced by a pseudonym of the
//! same network type, derived with HMAC-SHA256 under a key: the same address always maps to
//! the same pseudonym within a recording (so a peer stays one peer), and without the key the
//! mapping cannot be reversed. Ports are kept. Covered: message and connection metadata,
//! addr/addrv2 entries, version receiver/sender, RPC peer infos, the node's local addresses
//! (getnetworkinfo) and getrawaddrman entries, P2P-extractor announcements. Inside payloads we could not decode (unknown P2P messages, events that do
//! not parse) and in log text, two passes run: every address seen so far is replaced where it
//! occurs in binary form (4 or 16 bytes), and every textual IPv4 or IPv6 address (bare, with a
//! port, or in brackets) standing as a word of its own is replaced by its pseudonym. Hostnames
//! and onion names in free text are replaced only once seen in a structured field.
//! The key itself is never written.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hmac::{Hmac, Mac};
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::event::proto::bitcoin_primitives::{address, Address};
use crate::event::proto::ebpf_extractor::connection::connection_event;
use crate::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use crate::event::proto::ebpf_extractor::message::message_event::Msg;
use crate::event::proto::event::event::PeerObserverEvent;
use crate::event::proto::log_extractor::log::LogEvent;
use crate::event::proto::p2p_extractor::p2p::P2pEvent;
use crate::event::proto::rpc_extractor::rpc::RpcEvent;
use crate::event::Event;

/// Where the pseudonym key came from (recorded in the metadata; the key is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// A key file given by the user: pseudonyms are stable across recordings.
    File,
    /// Random for this recording only.
    Random,
}

/// Replaces peer addresses in encoded events. See the module docs.
pub struct Anonymizer {
    key: [u8; 32],
    source: KeySource,
    /// Original address bytes (4 or 16) -> pseudonym bytes, for scrubbing raw payloads.
    binary: HashMap<Vec<u8>, Vec<u8>>,
    /// Original address text -> pseudonym text.
    text: HashMap<String, String>,
}

impl Anonymizer {
    /// With a random key (one recording's pseudonyms).
    pub fn random() -> std::io::Result<Anonymizer> {
        let mut key = [0u8; 32];
        use std::io::Read as _;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(Anonymizer::with_key(key, KeySource::Random))
    }

    /// With the key in `path`: 64 hex digits, or any content (hashed to a key).
    pub fn from_key_file(path: &Path) -> std::io::Result<Anonymizer> {
        let content = std::fs::read(path)?;
        let trimmed = String::from_utf8_lossy(&content).trim().to_string();
        let key = match hex::decode(&trimmed) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => Sha256::digest(&content).into(),
        };
        if content.is_empty() {
            return Err(std::io::Error::other(format!(
                "key file {} is empty",
                path.display()
            )));
        }
        Ok(Anonymizer::with_key(key, KeySource::File))
    }

    fn with_key(key: [u8; 32], source: KeySource) -> Anonymizer {
        Anonymizer {
            key,
            source,
            binary: HashMap::new(),
            text: HashMap::new(),
        }
    }

    /// Where the key came from.
    pub fn key_source(&self) -> KeySource {
        self.source
    }

    /// The anonymized encoding of an `event.Event`; bytes that do not decode are scrubbed.
    pub fn anonymize(&mut self, payload: &[u8]) -> Vec<u8> {
        match Event::decode(payload) {
            Ok(mut event) => {
                self.event(&mut event);
                crate::event::wire::encode(&event)
            }
            Err(_) => self.scrub_payload(payload),
        }
    }

    fn event(&mut self, event: &mut Event) {
        match event.peer_observer_event.as_mut() {
            Some(PeerObserverEvent::EbpfExtractor(ebpf)) => match ebpf.ebpf_event.as_mut() {
                Some(EbpfEvent::Message(m)) => {
                    m.meta.addr = self.endpoint(&m.meta.addr);
                    match m.msg.as_mut() {
                        Some(Msg::Addr(a)) => a.addresses.iter_mut().for_each(|a| self.address(a)),
                        Some(Msg::Addrv2(a)) => {
                            a.addresses.iter_mut().for_each(|a| self.address(a))
                        }
                        Some(Msg::Version(v)) => {
                            self.address(&mut v.receiver);
                            self.address(&mut v.sender);
                        }
                        Some(Msg::Unknown(u)) => u.payload = self.scrub_payload(&u.payload),
                        _ => {}
                    }
                }
                Some(EbpfEvent::Connection(c)) => match c.event.as_mut() {
                    Some(connection_event::Event::Inbound(e)) => {
                        e.conn.addr = self.endpoint(&e.conn.addr)
                    }
                    Some(connection_event::Event::Outbound(e)) => {
                        e.conn.addr = self.endpoint(&e.conn.addr)
                    }
                    Some(connection_event::Event::Closed(e)) => {
                        e.conn.addr = self.endpoint(&e.conn.addr)
                    }
                    Some(connection_event::Event::InboundEvicted(e)) => {
                        e.conn.addr = self.endpoint(&e.conn.addr)
                    }
                    Some(connection_event::Event::Misbehaving(e)) => {
                        self.scrub_text(&mut e.message)
                    }
                    None => {}
                },
                // No addresses in these.
                Some(
                    EbpfEvent::Mempool(_) | EbpfEvent::Validation(_) | EbpfEvent::Utxocache(_),
                )
                | None => {}
            },
            Some(PeerObserverEvent::RpcExtractor(rpc)) => match rpc.rpc_event.as_mut() {
                Some(RpcEvent::PeerInfos(infos)) => {
                    for info in &mut infos.infos {
                        info.address = self.endpoint(&info.address);
                        info.address_bind = self.endpoint(&info.address_bind);
                        info.address_local = self.endpoint(&info.address_local);
                    }
                }
                Some(RpcEvent::NetworkInfo(info)) => {
                    for local in &mut info.local_addresses {
                        local.address = self.host(&local.address);
                    }
                }
                Some(RpcEvent::Addrman(addrman)) => {
                    for bucket in addrman.new.values_mut().chain(addrman.tried.values_mut()) {
                        for entry in bucket.entries.values_mut() {
                            entry.address = self.host(&entry.address);
                            entry.source = self.host(&entry.source);
                        }
                    }
                }
                // No peer addresses in these.
                Some(
                    RpcEvent::MempoolInfo(_)
                    | RpcEvent::Uptime(_)
                    | RpcEvent::NetTotals(_)
                    | RpcEvent::MemoryInfo(_)
                    | RpcEvent::AddrmanInfo(_)
                    | RpcEvent::ChainTxStats(_)
                    | RpcEvent::BlockchainInfo(_)
                    | RpcEvent::OrphanTxs(_)
                    | RpcEvent::EstimateSmartFee(_),
                )
                | None => {}
            },
            Some(PeerObserverEvent::P2pExtractor(p2p)) => {
                if let Some(P2pEvent::AddressAnnouncement(a)) = p2p.p2p_event.as_mut() {
                    a.addresses.iter_mut().for_each(|a| self.address(a));
                }
            }
            Some(PeerObserverEvent::LogExtractor(log)) => {
                if let Some(LogEvent::UnknownLogMessage(m)) = log.log_event.as_mut() {
                    self.scrub_text(&mut m.raw_message);
                }
            }
            // A block tip carries no address.
            Some(PeerObserverEvent::IpcExtractor(_)) => {}
            None => {}
        }
    }

    fn address(&mut self, a: &mut Address) {
        let Some(kind) = a.address.as_mut() else {
            return;
        };
        match kind {
            address::Address::Ipv4(s) | address::Address::Ipv6(s) => *s = self.host(s),
            address::Address::Torv2(s) => *s = self.named(s, "torv2", 10, ".onion"),
            address::Address::Torv3(s) => *s = self.named(s, "torv3", 35, ".onion"),
            address::Address::I2p(s) => *s = self.named(s, "i2p", 32, ".b32.i2p"),
            address::Address::Cjdns(s) => *s = self.host(s),
            address::Address::Unknown(u) => {
                let fresh = self.mac(b"unknown", &u.address, u.address.len());
                self.binary.insert(u.address.clone(), fresh.clone());
                u.address = fresh;
            }
        }
    }

    /// `ip:port`, `[ipv6]:port`, a bare IP, or `name:port` (onion, i2p, hostnames).
    fn endpoint(&mut self, text: &str) -> String {
        if text.is_empty() {
            return String::new();
        }
        if let Ok(socket) = text.parse::<std::net::SocketAddr>() {
            let ip = self.ip(socket.ip());
            return std::net::SocketAddr::new(ip, socket.port()).to_string();
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return self.ip(ip).to_string();
        }
        match text.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
                format!("{}:{port}", self.host(host))
            }
            _ => self.host(text),
        }
    }

    /// An IP's text, or a Tor / I2P / other host name.
    fn host(&mut self, host: &str) -> String {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return self.ip(ip).to_string();
        }
        if host.ends_with(".b32.i2p") {
            return self.named(host, "i2p", 32, ".b32.i2p");
        }
        if host.ends_with(".onion") {
            let len = if host.len() > 30 { 35 } else { 10 };
            return self.named(host, "onion", len, ".onion");
        }
        self.named(host, "host", 10, ".invalid")
    }

    /// The pseudonym of an IP, same family; v4-mapped IPv6 keeps its mapping.
    fn ip(&mut self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => IpAddr::V4(self.ipv4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V6(self.ipv4(v4).to_ipv6_mapped()),
                None => {
                    let h = self.mac(b"ipv6", &v6.octets(), 12);
                    let mut octets = [0u8; 16];
                    // fc00::/8 is CJDNS in Bitcoin; keep that network type, otherwise use the
                    // documentation prefix 2001:db8::/32 so pseudonyms are recognisable.
                    if v6.octets()[0] == 0xfc {
                        octets[0] = 0xfc;
                        octets[1..4].copy_from_slice(&[0, 0, 0]);
                    } else {
                        octets[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                    }
                    octets[4..].copy_from_slice(&h);
                    let pseudo = Ipv6Addr::from(octets);
                    self.remember(
                        &v6.octets(),
                        &pseudo.octets(),
                        &v6.to_string(),
                        &pseudo.to_string(),
                    );
                    IpAddr::V6(pseudo)
                }
            },
        }
    }

    fn ipv4(&mut self, v4: Ipv4Addr) -> Ipv4Addr {
        let h = self.mac(b"ipv4", &v4.octets(), 3);
        // 10.0.0.0/8: still IPv4, and clearly not a public peer.
        let pseudo = Ipv4Addr::new(10, h[0], h[1], h[2]);
        self.remember(
            &v4.octets(),
            &pseudo.octets(),
            &v4.to_string(),
            &pseudo.to_string(),
        );
        self.remember(
            &v4.to_ipv6_mapped().octets(),
            &pseudo.to_ipv6_mapped().octets(),
            "",
            "",
        );
        pseudo
    }

    /// A base32 name of `len` pseudonymous bytes with `suffix`.
    fn named(&mut self, original: &str, domain: &str, len: usize, suffix: &str) -> String {
        let h = self.mac(domain.as_bytes(), original.as_bytes(), len);
        let pseudo = format!("{}{suffix}", crate::p2p::address::base32_lower(&h));
        self.text.insert(original.to_string(), pseudo.clone());
        pseudo
    }

    fn remember(&mut self, original: &[u8], pseudo: &[u8], original_text: &str, pseudo_text: &str) {
        self.binary.insert(original.to_vec(), pseudo.to_vec());
        if !original_text.is_empty() {
            self.text
                .insert(original_text.to_string(), pseudo_text.to_string());
        }
    }

    /// HMAC-SHA256(key, domain || data), truncated or extended to `len` bytes.
    fn mac(&self, domain: &[u8], data: &[u8], len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut counter = 0u8;
        while out.len() < len {
            // The key length is fixed, so HMAC construction cannot fail.
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
                break;
            };
            mac.update(domain);
            mac.update(&[0, counter]);
            mac.update(data);
            out.extend_from_slice(&mac.finalize().into_bytes());
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        out
    }

    /// Replaces every address seen so far (4- and 16-byte forms) inside raw bytes.
    fn scrub_bytes(&self, bytes: &mut [u8]) {
        for (original, pseudo) in &self.binary {
            replace_all(bytes, original, pseudo);
        }
    }

    /// An undecodable payload, scrubbed of binary and textual addresses.
    fn scrub_payload(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut bytes = payload.to_vec();
        self.scrub_bytes(&mut bytes);
        let bytes = self.scrub_address_text(&bytes);
        let mut bytes = bytes;
        // Addresses first seen as text are now known in binary form too.
        self.scrub_bytes(&mut bytes);
        bytes
    }

    /// Replaces textual addresses and known host names in free text.
    fn scrub_text(&mut self, text: &mut String) {
        let scrubbed = self.scrub_address_text(text.as_bytes());
        // Only ASCII runs were replaced, by ASCII: the text stays valid UTF-8.
        let mut result = String::from_utf8_lossy(&scrubbed).into_owned();
        for (original, pseudo) in &self.text {
            if result.contains(original.as_str()) {
                result = result.replace(original.as_str(), pseudo);
            }
        }
        *text = result;
    }

    /// Every IPv4 / IPv6 address written as text in `input` (any bytes), replaced by its
    /// pseudonym; ports, brackets and surrounding bytes are kept.
    ///
    /// A candidate is a maximal run of hex digits, dots and colons that stands as a word of
    /// its own: no letter, digit or `_` touches it, unless a `:` or `.` separates them
    /// (`addr:1.2.3.4`, `1.2.3.4:8333:peer`). So `CConnman::Start` or `v28.1.0.0rc1` are left
    /// alone.
    fn scrub_address_text(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        while i < input.len() {
            if !is_address_char(input[i]) {
                out.push(input[i]);
                i += 1;
                continue;
            }
            let start = i;
            while i < input.len() && is_address_char(input[i]) {
                i += 1;
            }
            let run = &input[start..i];
            let before_ok = start == 0 || !is_word_char(input[start - 1]);
            let after_ok = i == input.len() || !is_word_char(input[i]);
            // The whole run first (`::1` is an address), then without leading separators,
            // which are kept as they are and count as a word boundary (`addr:1.2.3.4`).
            if let Some(replaced) = (before_ok && after_ok)
                .then(|| self.address_token(run))
                .flatten()
            {
                out.extend_from_slice(replaced.as_bytes());
                continue;
            }
            let lead = run.iter().take_while(|b| matches!(b, b':' | b'.')).count();
            let token = &run[lead..];
            let trail = token
                .iter()
                .rev()
                .take_while(|b| matches!(b, b':' | b'.'))
                .count();
            let standalone = (lead > 0 || before_ok) && (trail > 0 || after_ok);
            out.extend_from_slice(&run[..lead]);
            match standalone.then(|| self.address_token(token)).flatten() {
                Some(replaced) => out.extend_from_slice(replaced.as_bytes()),
                None => out.extend_from_slice(token),
            }
        }
        out
    }

    /// The pseudonymous form of a token that is an address (optionally `ipv4:port`, and with
    /// trailing punctuation dots or colons kept), or `None`.
    fn address_token(&mut self, token: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(token).ok()?;
        let core = text.trim_end_matches(['.', ':']);
        let trailing = &text[core.len()..];
        if let Ok(socket) = core.parse::<std::net::SocketAddrV4>() {
            let ip = self.ipv4(*socket.ip());
            return Some(format!("{ip}:{}{trailing}", socket.port()));
        }
        if let Ok(v4) = core.parse::<Ipv4Addr>() {
            return Some(format!("{}{trailing}", self.ipv4(v4)));
        }
        // An IPv6 address needs at least two colons and one hex digit ("::" alone is not one).
        let colons = core.bytes().filter(|b| *b == b':').count();
        if colons >= 2 && core.bytes().any(|b| b.is_ascii_hexdigit()) {
            if let Ok(v6) = core.parse::<Ipv6Addr>() {
                return Some(format!("{}{trailing}", self.ip(IpAddr::V6(v6))));
            }
        }
        None
    }
}

/// Characters an IP address is written with (hex digits, dots, colons).
fn is_address_char(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b'.' || b == b':'
}

/// Characters that make a neighbouring run part of a longer word.
fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn replace_all(bytes: &mut [u8], needle: &[u8], replacement: &[u8]) {
    if needle.is_empty() || needle.len() != replacement.len() || bytes.len() < needle.len() {
        return;
    }
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i..i + needle.len()].copy_from_slice(replacement);
            i += needle.len();
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anonymizer() -> Anonymizer {
        Anonymizer::with_key([7; 32], KeySource::File)
    }

    #[test]
    fn endpoints_keep_family_and_port_and_are_consistent() {
        let mut a = anonymizer();
        let v4 = a.endpoint("203.0.113.9:8333");
        assert!(v4.starts_with("10.") && v4.ends_with(":8333"), "{v4}");
        assert_eq!(
            a.endpoint("203.0.113.9:18444").split(':').next(),
            v4.split(':').next()
        );
        let v6 = a.endpoint("[2a01:4f8::1]:8333");
        assert!(
            v6.starts_with("[2001:db8:") && v6.ends_with("]:8333"),
            "{v6}"
        );
        let onion =
            a.endpoint("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333");
        assert!(
            onion.ends_with(".onion:8333") && !onion.starts_with("pg6mm"),
            "{onion}"
        );
        assert_eq!(onion.split('.').next().map(str::len), Some(56));
    }

    #[test]
    fn different_keys_give_different_pseudonyms() {
        let mut other = Anonymizer::with_key([8; 32], KeySource::File);
        assert_ne!(
            anonymizer().endpoint("198.51.100.1:1"),
            other.endpoint("198.51.100.1:1")
        );
    }

    #[test]
    fn free_text_and_raw_bytes_are_scrubbed() {
        let mut a = anonymizer();
        let mut text = "Received addr from 198.51.100.7, peer=3.".to_string();
        a.scrub_text(&mut text);
        assert!(
            !text.contains("198.51.100.7") && text.contains("peer=3."),
            "{text}"
        );
        let mut raw = vec![1, 198, 51, 100, 7, 2];
        a.scrub_bytes(&mut raw);
        assert_ne!(&raw[1..5], &[198, 51, 100, 7]);
    }

    /// Regression (issue 9.3): an unknown message's payload carrying `peer at
    /// 127.0.0.1:18444` kept the text verbatim.
    #[test]
    fn textual_addresses_in_undecodable_payloads_are_replaced() {
        let mut a = anonymizer();
        let payload = b"\x00\xffpeer at 127.0.0.1:18444, also [2a01:4f8::1]:8333 and ::1 and 2a01:4f8:0:1::2.";
        let out = a.scrub_payload(payload);
        let text = String::from_utf8_lossy(&out);
        for original in ["127.0.0.1", "2a01:4f8::1", "2a01:4f8:0:1::2", " ::1 "] {
            assert!(!text.contains(original), "{original} kept in {text}");
        }
        assert!(
            text.contains(":18444, also ["),
            "port and brackets kept: {text}"
        );
        assert!(text.contains("]:8333 and "), "{text}");
        assert!(out.starts_with(b"\x00\xffpeer at 10."), "{text}");
        // The pseudonym is the same one the structured fields get.
        let structured = a.endpoint("127.0.0.1:18444");
        assert!(text.contains(&structured), "{structured} not in {text}");
    }

    #[test]
    fn code_names_versions_and_times_are_not_addresses() {
        let mut a = anonymizer();
        let mut text =
            "CConnman::ThreadMessageHandler v28.1.0.0rc1 at 12:34:56 block 00ab::cd_x".to_string();
        let before = text.clone();
        a.scrub_text(&mut text);
        assert_eq!(text, before);
        let mut log = "connection from [fe80::1%eth0]:8333 and 2001:db8:1:2:3:4:5:6".to_string();
        a.scrub_text(&mut log);
        assert!(!log.contains("2001:db8:1:2:3:4:5:6"), "{log}");
        // Separated from a word by ':' or '.', an address is still one.
        let mut tagged = "addr:198.51.100.9 and 198.51.100.10:8333:peer".to_string();
        a.scrub_text(&mut tagged);
        assert!(
            !tagged.contains("198.51.100.9") && !tagged.contains("198.51.100.10"),
            "{tagged}"
        );
        assert!(
            tagged.starts_with("addr:10.") && tagged.ends_with(":8333:peer"),
            "{tagged}"
        );
    }
}
