//! Keyless coins: mining to P2WSH(OP_TRUE) lets a wallet-less bitcoind make spendable coins.
//!
//! The witness script is the single opcode `OP_TRUE` (0x51), so anyone can spend the output by
//! revealing the script; no keys, no signatures, no wallet. Good for a regtest harness only.

use bitcoin::absolute::LockTime;
use bitcoin::blockdata::opcodes::OP_TRUE;
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

/// The regtest address of P2WSH(OP_TRUE).
pub const KEYLESS_ADDRESS: &str =
    "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85";

/// A spendable output locked to P2WSH(OP_TRUE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeylessCoin {
    /// Where the coin is.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: Amount,
}

impl KeylessCoin {
    /// The witness script, `OP_TRUE`.
    pub fn witness_script() -> ScriptBuf {
        ScriptBuf::from(vec![OP_TRUE.to_u8()])
    }

    /// The output script paying to [`KEYLESS_ADDRESS`].
    pub fn script_pubkey() -> ScriptBuf {
        ScriptBuf::new_p2wsh(&Self::witness_script().wscript_hash())
    }

    /// The address, derived (tests compare it with [`KEYLESS_ADDRESS`]).
    pub fn address() -> Address {
        Address::p2wsh(&Self::witness_script(), Network::Regtest)
    }

    /// A transaction spending this coin to `outputs` keyless outputs of equal value, paying
    /// `fee`. `sequence` below 0xfffffffe signals RBF (BIP 125).
    pub fn spend(&self, fee: Amount, outputs: usize, sequence: Sequence) -> Option<Transaction> {
        let outputs = outputs.max(1) as u64;
        let each = self.value.checked_sub(fee)?.to_sat() / outputs;
        if each < 1_000 {
            return None;
        }
        let mut witness = Witness::new();
        witness.push(Self::witness_script().as_bytes());
        Some(Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: self.outpoint,
                script_sig: ScriptBuf::new(),
                sequence,
                witness,
            }],
            output: (0..outputs)
                .map(|_| TxOut {
                    value: Amount::from_sat(each),
                    script_pubkey: Self::script_pubkey(),
                })
                .collect(),
        })
    }

    /// The coins a transaction created (every output is keyless when built by [`spend`](Self::spend)).
    pub fn outputs_of(tx: &Transaction) -> Vec<KeylessCoin> {
        let txid = tx.compute_txid();
        tx.output
            .iter()
            .enumerate()
            .filter(|(_, out)| out.script_pubkey == Self::script_pubkey())
            .map(|(vout, out)| KeylessCoin {
                outpoint: OutPoint {
                    txid,
                    vout: vout as u32,
                },
                value: out.value,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_address_is_the_known_keyless_address() {
        assert_eq!(KeylessCoin::address().to_string(), KEYLESS_ADDRESS);
    }

    #[test]
    fn spend_pays_fee_and_reveals_script() {
        let coin = KeylessCoin {
            outpoint: OutPoint::null(),
            value: Amount::from_sat(50_000),
        };
        let tx = coin
            .spend(Amount::from_sat(1_000), 2, Sequence::MAX)
            .expect("enough value");
        assert_eq!(tx.output.len(), 2);
        assert_eq!(
            tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>(),
            49_000
        );
        assert_eq!(tx.input[0].witness.to_vec(), vec![vec![0x51]]);
        assert!(coin
            .spend(Amount::from_sat(49_500), 1, Sequence::MAX)
            .is_none());
    }
}
