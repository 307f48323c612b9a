// The per-peer table: one row per peer of the latest getpeerinfo snapshot (RPC extractor),
// with the P2P messages counted to and from it (eBPF message events, keyed by peer id).

import { cell, clock, connectFeed, formatBytes, setText, unwrap } from "./feed.js";

const SUBSCRIPTION = { ebpf: { messages: true }, rpc: true };

// How often the table is redrawn at most: messages arrive far faster than anyone reads.
const RENDER_MS = 500;

/**
 * Peers by id: `info` is the peer's entry in the latest snapshot (null when the peer was
 * only seen in messages since), `addr` its address from messages, `in`/`out` its message
 * counts.
 */
const peers = new Map();
let dirty = false;

function peer(id) {
  let p = peers.get(id);
  if (p === undefined) {
    p = { info: null, addr: "", in: 0, out: 0 };
    peers.set(id, p);
  }
  return p;
}

// A snapshot lists every connected peer: peers missing from it have gone (and their counts
// with them). Peers that connect later show up through their messages until the next one.
function onPeerInfos(infos) {
  const listed = new Set(infos.map((info) => info.id));
  for (const id of peers.keys()) {
    if (!listed.has(id)) peers.delete(id);
  }
  for (const info of infos) peer(info.id).info = info;
  setText("peers-updated", `(getpeerinfo at ${clock()})`);
  dirty = true;
}

function onMessage(meta) {
  const p = peer(meta.peer_id);
  p.addr = meta.addr;
  if (meta.inbound) p.in += 1;
  else p.out += 1;
  dirty = true;
}

function onEvent(frame) {
  const event = unwrap(frame);
  if (event === null) return;
  if (event.extractor === "EbpfExtractor" && event.kind === "Message") onMessage(event.body.meta);
  if (event.extractor === "RpcExtractor" && event.kind === "PeerInfos") {
    onPeerInfos(event.body.infos);
  }
}

// getpeerinfo reports 0 before the first pong.
const ping = (seconds) => (seconds > 0 ? `${(seconds * 1000).toFixed(1)} ms` : "—");

function row(id, p) {
  const tr = document.createElement("tr");
  tr.dataset.peerId = String(id);
  const info = p.info;
  if (info === null) {
    tr.className = "unlisted";
    tr.append(cell(id, true), cell(p.addr));
    for (let i = 0; i < 10; i += 1) tr.append(cell("—"));
  } else {
    tr.append(
      cell(id, true),
      cell(info.address),
      cell(info.connection_type),
      cell(info.network),
      cell(info.transport_protocol_type),
      cell(info.version, true),
      cell(info.subversion),
      cell(ping(info.ping_time), true),
      cell(formatBytes(info.bytes_sent), true),
      cell(formatBytes(info.bytes_received), true),
      cell(info.addr_processed, true),
      cell(info.addr_rate_limited, true),
    );
  }
  tr.append(cell(p.in, true), cell(p.out, true));
  return tr;
}

setInterval(() => {
  if (!dirty) return;
  dirty = false;
  const ids = [...peers.keys()].sort((a, b) => a - b);
  document.getElementById("peer-rows").replaceChildren(...ids.map((id) => row(id, peers.get(id))));
  setText("peer-count", ids.length);
}, RENDER_MS);

connectFeed(SUBSCRIPTION, onEvent);
