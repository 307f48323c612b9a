//! Label values exactly as peer-observer's metrics tool writes them (metrics.md §1), so its
//! dashboards' queries and template variables match.

use std::net::IpAddr;

use crate::event::proto::bitcoin_primitives::{address, inventory_item, Address, InventoryItem};

/// `inbound` / `outbound`.
pub fn direction(inbound: bool) -> &'static str {
    if inbound {
        "inbound"
    } else {
        "outbound"
    }
}

/// The IP of a peer address (`ip:port`, `[v6]:port`): cut at the last `:`, then drop the
/// brackets; an address without `:` is used as is.
pub fn ip_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.replace(['[', ']'], "")
}

/// The subnet of an IP: IPv4 its /24 as `a.b.c.0`, IPv6 its /64 in compressed form, anything
/// else (Tor, I2P names) unchanged.
pub fn subnet_of(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0")
        }
        Ok(IpAddr::V6(v6)) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            std::net::Ipv6Addr::from(segments).to_string()
        }
        Err(_) => ip.to_string(),
    }
}

/// The network name of an announced address (`IPv4`, `IPv6`, `TorV2`, `TorV3`, `I2P`,
/// `CJDNS`, `Unknown`), and its address text when it has one.
pub fn network_of(entry: &Address) -> (&'static str, Option<&str>) {
    match &entry.address {
        Some(address::Address::Ipv4(a)) => ("IPv4", Some(a)),
        Some(address::Address::Ipv6(a)) => ("IPv6", Some(a)),
        Some(address::Address::Torv2(a)) => ("TorV2", Some(a)),
        Some(address::Address::Torv3(a)) => ("TorV3", Some(a)),
        Some(address::Address::I2p(a)) => ("I2P", Some(a)),
        Some(address::Address::Cjdns(a)) => ("CJDNS", Some(a)),
        Some(address::Address::Unknown(_)) | None => ("Unknown", None),
    }
}

/// The type name of an inventory item (`None` when no arm is set).
pub fn inv_type(item: &InventoryItem) -> &'static str {
    match &item.item {
        Some(inventory_item::Item::Transaction(_)) => "Tx",
        Some(inventory_item::Item::Block(_)) => "Block",
        Some(inventory_item::Item::Wtx(_)) => "WTx",
        Some(inventory_item::Item::WitnessTransaction(_)) => "WitnessTx",
        Some(inventory_item::Item::WitnessBlock(_)) => "WitnessBlock",
        Some(inventory_item::Item::CompactBlock(_)) => "CompactBlock",
        Some(inventory_item::Item::Unknown(_)) => "Unknown",
        Some(inventory_item::Item::Error(_)) => "Error",
        None => "None",
    }
}

/// The size class of an inbound ping's nonce.
pub fn nonce_class(nonce: u64) -> &'static str {
    match nonce {
        0 => "0",
        1..=0xff => "u8",
        0x100..=0xffff => "u16",
        0x1_0000..=0xffff_ffff => "u32",
        _ => "u64",
    }
}

/// Median of `values` (sorted here); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// Mean of `values`; `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_and_subnets_follow_upstream() {
        assert_eq!(ip_of("203.0.113.7:8333"), "203.0.113.7");
        assert_eq!(ip_of("[2604:d500:4:1::2]:8333"), "2604:d500:4:1::2");
        assert_eq!(ip_of("abc.onion"), "abc.onion");
        assert_eq!(subnet_of("203.0.113.7"), "203.0.113.0");
        assert_eq!(subnet_of("2604:d500:4:1:aa::2"), "2604:d500:4:1::");
        assert_eq!(subnet_of("abc.onion"), "abc.onion");
    }

    #[test]
    fn nonce_classes_and_statistics() {
        assert_eq!(nonce_class(0), "0");
        assert_eq!(nonce_class(255), "u8");
        assert_eq!(nonce_class(256), "u16");
        assert_eq!(nonce_class(70_000), "u32");
        assert_eq!(nonce_class(u64::MAX), "u64");
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        assert_eq!(mean(&[1.0, 2.0]), Some(1.5));
    }
}
