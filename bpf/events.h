/* Records the BPF programs put into ring buffers. Mirrored in src/extractor/ebpf/records.rs
 * with size assertions on both sides: change both together. Every record starts with a
 * __u32 kind so several kinds share one ring. */
#pragma once

#include <linux/types.h>

#define MAX_PEER_ADDR_LENGTH 68 /* Tor v3 (62 chars) + ":12345" */
#define MAX_PEER_CONN_TYPE_LENGTH 20
#define MAX_MSG_TYPE_LENGTH 20
#define MAX_MISBEHAVING_MESSAGE_LENGTH 128
#define MAX_REJECT_REASON_LENGTH 120
#define MAX_REMOVAL_REASON_LENGTH 16

/* Probe ids: index into the counters map and the kind of the record they emit. */
enum probe_id {
	PROBE_INBOUND_MESSAGE = 0,
	PROBE_OUTBOUND_MESSAGE = 1,
	PROBE_INBOUND_CONNECTION = 2,
	PROBE_OUTBOUND_CONNECTION = 3,
	PROBE_CLOSED_CONNECTION = 4,
	PROBE_EVICTED_INBOUND_CONNECTION = 5,
	PROBE_MISBEHAVING_CONNECTION = 6,
	PROBE_MEMPOOL_ADDED = 7,
	PROBE_MEMPOOL_REMOVED = 8,
	PROBE_MEMPOOL_REPLACED = 9,
	PROBE_MEMPOOL_REJECTED = 10,
	PROBE_BLOCK_CONNECTED = 11,
	PROBE_UTXOCACHE_FLUSH = 12,
	PROBE_UTXOCACHE_ADD = 13,
	PROBE_UTXOCACHE_SPENT = 14,
	PROBE_UTXOCACHE_UNCACHE = 15,
	PROBE_COUNT = 16,
};

/* First member of every record: what it is and when it was taken (CLOCK_MONOTONIC ns), so
 * userspace can merge records of several rings back into the order they happened. */
struct record_header {
	__u32 kind;
	__u32 reserved;
	__u64 ktime_ns;
};

/* Emitted / dropped per probe (per CPU; userspace sums). */
struct probe_counter {
	__u64 emitted;
	__u64 dropped;
};

/* P2P message; `copied` payload bytes follow the header (capacity depends on the size
 * class). `truncated` is set when the payload was larger than the largest class.
 * `peer_known` is set when `addr` and `conn_type` were left unread because an earlier record
 * of this process and generation carried them (see known_peers in peerlab.bpf.c). */
struct message_record {
	struct record_header h;
	__u8 truncated;
	__u8 peer_known;
	__u8 pad[2];
	__s64 peer_id;
	__u64 size;
	__u64 copied;
	char addr[MAX_PEER_ADDR_LENGTH];
	char conn_type[MAX_PEER_CONN_TYPE_LENGTH];
	char command[MAX_MSG_TYPE_LENGTH];
	__u32 pad2;
	/* payload follows */
};

/* inbound / outbound / closed / evicted connection. `value` is the connection count
 * (inbound/outbound) or the connection time in seconds (closed/evicted). */
struct connection_record {
	struct record_header h;
	__s32 network;
	__s64 peer_id;
	__u64 value;
	char addr[MAX_PEER_ADDR_LENGTH];
	char conn_type[MAX_PEER_CONN_TYPE_LENGTH];
};

struct misbehaving_record {
	struct record_header h;
	__u32 pad;
	__s64 peer_id;
	char message[MAX_MISBEHAVING_MESSAGE_LENGTH];
};

struct mempool_added_record {
	struct record_header h;
	__s32 vsize;
	__s64 fee;
	__u8 txid[32];
};

struct mempool_removed_record {
	struct record_header h;
	__s32 vsize;
	__s64 fee;
	__u64 entry_time;
	__u8 txid[32];
	char reason[MAX_REMOVAL_REASON_LENGTH];
};

struct mempool_replaced_record {
	struct record_header h;
	__s32 replaced_vsize;
	__s64 replaced_fee;
	__u64 replaced_entry_time;
	__s64 replacement_fee;
	__s32 replacement_vsize;
	__u8 replaced_by_transaction;
	__u8 pad[3];
	__u8 replaced_txid[32];
	__u8 replacement_id[32];
};

struct mempool_rejected_record {
	struct record_header h;
	__u32 pad;
	__u8 txid[32];
	char reason[MAX_REJECT_REASON_LENGTH];
};

struct block_connected_record {
	struct record_header h;
	__s32 height;
	__u64 transactions;
	__s64 sigops;
	__s64 duration_ns;
	__s32 inputs;
	__u32 pad;
	__u8 hash[32];
};

struct utxocache_flush_record {
	struct record_header h;
	__u32 mode;
	__s64 duration_us;
	__u64 coins;
	__u64 bytes;
	__u8 prune;
	__u8 pad[7];
};

/* add / spent / uncache */
struct utxocache_coin_record {
	struct record_header h;
	__u32 vout;
	__u32 height;
	__u8 coinbase;
	__u8 pad[3];
	__s64 value;
	__u8 txid[32];
};

/* The Rust mirrors assert the same sizes. */
_Static_assert(sizeof(struct record_header) == 16, "record_header");
_Static_assert(sizeof(struct message_record) == 160, "message_record");
_Static_assert(sizeof(struct connection_record) == 128, "connection_record");
_Static_assert(sizeof(struct misbehaving_record) == 160, "misbehaving_record");
_Static_assert(sizeof(struct mempool_added_record) == 64, "mempool_added_record");
_Static_assert(sizeof(struct mempool_removed_record) == 88, "mempool_removed_record");
_Static_assert(sizeof(struct mempool_replaced_record) == 120, "mempool_replaced_record");
_Static_assert(sizeof(struct mempool_rejected_record) == 176, "mempool_rejected_record");
_Static_assert(sizeof(struct block_connected_record) == 88, "block_connected_record");
_Static_assert(sizeof(struct utxocache_flush_record) == 56, "utxocache_flush_record");
_Static_assert(sizeof(struct utxocache_coin_record) == 72, "utxocache_coin_record");
