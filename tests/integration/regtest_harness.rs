//! The regtest harness against a real bitcoind: mine, spend a keyless coin, see it in the mempool.

use crate::common;

use std::time::Duration;

use bitcoin::Amount;
use peerlab::node::{
    verify_tracepoints, NodeRpc, RegtestConfig, RegtestNode, BITCOIN_CORE_TRACEPOINTS,
};

#[test]
fn mined_coin_is_spent_into_the_mempool() {
    let node =
        RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("regtest node starts");
    assert_eq!(node.height().expect("getblockcount"), 0);

    let hashes = node.mine(101).expect("mine 101 blocks");
    assert_eq!(hashes.len(), 101);
    assert_eq!(node.height().expect("getblockcount"), 101);

    // Block 1's coinbase matured at height 101 (coinbase maturity is 100).
    let coin = node.coinbase_coin(1).expect("coinbase of block 1");
    assert_eq!(coin.value, Amount::from_sat(50 * 100_000_000));
    let tx = node
        .spend(&coin, Amount::from_sat(1_000), false)
        .expect("build spend");
    let txid = node
        .send(&tx)
        .expect("sendrawtransaction accepts the keyless spend");
    assert_eq!(txid, tx.compute_txid());
    assert!(
        node.mempool().expect("getrawmempool").contains(&txid),
        "txid {txid} not in the mempool"
    );

    let entry: serde_json::Value = node
        .rpc("getmempoolentry", &[serde_json::json!(txid.to_string())])
        .expect("entry");
    assert_eq!(entry["fees"]["base"].as_f64(), Some(0.00001));

    node.stop(Duration::from_secs(30)).expect("clean stop");
}

#[test]
fn immature_coinbase_is_refused() {
    let node =
        RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("regtest node starts");
    node.mine(2).expect("mine");
    let coin = node.coinbase_coin(1).expect("coinbase");
    let tx = node
        .spend(&coin, Amount::from_sat(1_000), false)
        .expect("build spend");
    let err = node
        .send(&tx)
        .expect_err("an immature coinbase spend must be rejected");
    assert!(
        err.to_string().contains("premature"),
        "unexpected error: {err}"
    );
}

#[test]
fn provisioned_bitcoind_has_all_tracepoints_with_semaphores() {
    let notes = verify_tracepoints(&common::bitcoind()).expect("traceable");
    for name in BITCOIN_CORE_TRACEPOINTS {
        let sites: Vec<_> = notes.iter().filter(|n| n.full_name() == name).collect();
        assert!(!sites.is_empty(), "{name} missing");
        assert!(
            sites.iter().all(|n| n.semaphore_file_offset.is_some()),
            "{name} lacks a semaphore"
        );
    }
}

#[test]
fn two_nodes_run_side_by_side_on_distinct_ports() {
    let a = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node a");
    let b = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node b");
    assert_ne!(a.p2p_addr(), b.p2p_addr());
    assert_ne!(a.rpc_addr(), b.rpc_addr());
    assert_ne!(a.pid().expect("pid a"), b.pid().expect("pid b"));
}
