//! The twelve RPCs the extractor polls, which timer each belongs to, and the order a tick
//! calls them in (extractors.md §2.2).
//!
//! Invariants: [`RpcMethod::ALL`] lists every method once, in the spec's flag order;
//! [`schedule`] returns a timer's enabled methods in the spec's call order, which is the order
//! their events reach the bus within one tick.

use std::collections::BTreeSet;
use std::fmt;

/// One RPC the extractor polls. The name is Core's lower-case method name, which is also the
/// `rpc_method` label of upstream's metrics and the suffix of its `--disable-<rpc>` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RpcMethod {
    /// `getpeerinfo` -> `peer_infos`.
    GetPeerInfo,
    /// `getmempoolinfo` -> `mempool_info`.
    GetMempoolInfo,
    /// `uptime` -> `uptime`.
    Uptime,
    /// `getnettotals` -> `net_totals`.
    GetNetTotals,
    /// `getmemoryinfo` (mode `stats`) -> `memory_info`.
    GetMemoryInfo,
    /// `getaddrmaninfo` -> `addrman_info`.
    GetAddrmanInfo,
    /// `getchaintxstats` (no arguments) -> `chain_tx_stats`.
    GetChainTxStats,
    /// `getnetworkinfo` -> `network_info`.
    GetNetworkInfo,
    /// `getblockchaininfo` -> `blockchain_info`.
    GetBlockchainInfo,
    /// `getorphantxs` (verbosity 2) -> `orphan_txs`; Core v29 and later.
    GetOrphanTxs,
    /// `getrawaddrman` -> `addrman`.
    GetRawAddrman,
    /// `estimatesmartfee` for each of [`FEE_TARGETS`] x [`FEE_MODES`] -> six
    /// `estimate_smart_fee` events.
    EstimateSmartFee,
}

/// Which of the two timers a method runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// `--query-interval` (default 10 s).
    Frequent,
    /// `--query-interval-less-frequent` (default 120 s).
    LessFrequent,
}

/// The confirmation targets `estimatesmartfee` is asked for (the outer loop).
pub const FEE_TARGETS: [u32; 3] = [1, 6, 144];

/// The estimate modes `estimatesmartfee` is asked for (the inner loop), as Core spells them.
pub const FEE_MODES: [&str; 2] = ["economical", "conservative"];

/// The frequent timer's call order.
const FREQUENT: [RpcMethod; 9] = [
    RpcMethod::GetPeerInfo,
    RpcMethod::GetMempoolInfo,
    RpcMethod::Uptime,
    RpcMethod::GetNetTotals,
    RpcMethod::GetMemoryInfo,
    RpcMethod::GetAddrmanInfo,
    RpcMethod::GetNetworkInfo,
    RpcMethod::GetOrphanTxs,
    RpcMethod::EstimateSmartFee,
];

/// The less-frequent timer's call order.
const LESS_FREQUENT: [RpcMethod; 3] = [
    RpcMethod::GetChainTxStats,
    RpcMethod::GetBlockchainInfo,
    RpcMethod::GetRawAddrman,
];

impl RpcMethod {
    /// Every method, in the order of the spec's `--disable-*` flags.
    pub const ALL: [RpcMethod; 12] = [
        RpcMethod::GetPeerInfo,
        RpcMethod::GetMempoolInfo,
        RpcMethod::Uptime,
        RpcMethod::GetNetTotals,
        RpcMethod::GetMemoryInfo,
        RpcMethod::GetAddrmanInfo,
        RpcMethod::GetChainTxStats,
        RpcMethod::GetNetworkInfo,
        RpcMethod::GetBlockchainInfo,
        RpcMethod::GetOrphanTxs,
        RpcMethod::GetRawAddrman,
        RpcMethod::EstimateSmartFee,
    ];

    /// Core's method name.
    pub fn name(self) -> &'static str {
        match self {
            RpcMethod::GetPeerInfo => "getpeerinfo",
            RpcMethod::GetMempoolInfo => "getmempoolinfo",
            RpcMethod::Uptime => "uptime",
            RpcMethod::GetNetTotals => "getnettotals",
            RpcMethod::GetMemoryInfo => "getmemoryinfo",
            RpcMethod::GetAddrmanInfo => "getaddrmaninfo",
            RpcMethod::GetChainTxStats => "getchaintxstats",
            RpcMethod::GetNetworkInfo => "getnetworkinfo",
            RpcMethod::GetBlockchainInfo => "getblockchaininfo",
            RpcMethod::GetOrphanTxs => "getorphantxs",
            RpcMethod::GetRawAddrman => "getrawaddrman",
            RpcMethod::EstimateSmartFee => "estimatesmartfee",
        }
    }

    /// The method with Core's name `name`.
    pub fn from_name(name: &str) -> Option<RpcMethod> {
        RpcMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The command-line flag that turns it off (`--disable-getpeerinfo`).
    pub fn disable_flag(self) -> String {
        format!("--disable-{}", self.name())
    }

    /// The timer it runs on.
    pub fn timer(self) -> Timer {
        if LESS_FREQUENT.contains(&self) {
            Timer::LessFrequent
        } else {
            Timer::Frequent
        }
    }
}

impl fmt::Display for RpcMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The enabled methods of `timer`, in call order.
pub fn schedule(timer: Timer, disabled: &BTreeSet<RpcMethod>) -> Vec<RpcMethod> {
    let order: &[RpcMethod] = match timer {
        Timer::Frequent => &FREQUENT,
        Timer::LessFrequent => &LESS_FREQUENT,
    };
    order
        .iter()
        .copied()
        .filter(|m| !disabled.contains(m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_on_exactly_one_timer_once() {
        let none = BTreeSet::new();
        let mut scheduled = schedule(Timer::Frequent, &none);
        scheduled.extend(schedule(Timer::LessFrequent, &none));
        assert_eq!(scheduled.len(), 12);
        let unique: BTreeSet<_> = scheduled.iter().collect();
        assert_eq!(unique.len(), 12);
        for method in RpcMethod::ALL {
            let on = if FREQUENT.contains(&method) {
                Timer::Frequent
            } else {
                Timer::LessFrequent
            };
            assert_eq!(method.timer(), on, "{method}");
        }
    }

    #[test]
    fn ticks_call_in_the_spec_order_and_skip_disabled_methods() {
        let disabled: BTreeSet<_> = [RpcMethod::Uptime, RpcMethod::GetRawAddrman].into();
        let names = |t| {
            schedule(t, &disabled)
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Timer::Frequent),
            [
                "getpeerinfo",
                "getmempoolinfo",
                "getnettotals",
                "getmemoryinfo",
                "getaddrmaninfo",
                "getnetworkinfo",
                "getorphantxs",
                "estimatesmartfee"
            ]
        );
        assert_eq!(
            names(Timer::LessFrequent),
            ["getchaintxstats", "getblockchaininfo"]
        );
    }

    #[test]
    fn names_flags_and_lookup_agree() {
        for method in RpcMethod::ALL {
            assert_eq!(RpcMethod::from_name(method.name()), Some(method));
            assert_eq!(method.disable_flag(), format!("--disable-{method}"));
        }
        assert_eq!(RpcMethod::from_name("getblock"), None);
    }
}
