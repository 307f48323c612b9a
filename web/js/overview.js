// The node overview: connections (from the RPC extractor's getpeerinfo), P2P message rates
// and mempool activity (from eBPF events) and the chain tip, updated live.

import { arm, cell, clock, connectFeed, formatBytes, hashHex, setText, unwrap } from "./feed.js";

/* global uPlot */

// How much history the charts keep, in one-second points.
const WINDOW_SECONDS = 300;
const MIN_SPAN_SECONDS = 60;
const CHART_HEIGHT = 220;

// What the overview shows; connections come from getpeerinfo, so eBPF connection events
// are not needed.
const SUBSCRIPTION = {
  ebpf: { messages: true, mempool: true, validation: true },
  rpc: true,
  ipc: true,
};

// Mempool event arms, by the counter they feed.
const MEMPOOL_CHANGES = { Added: "added", Removed: "removed", Replaced: "replaced", Rejected: "rejected" };

// Events counted since the last chart tick, and since the page opened.
const tick = { in: 0, out: 0, added: 0, removed: 0 };
const totals = { in: 0, out: 0, added: 0, removed: 0, replaced: 0, rejected: 0 };

/**
 * A uPlot line chart of per-second rates, one series per label, over the time the page has
 * been open, up to the last WINDOW_SECONDS.
 */
function rateChart(target, series) {
  const data = [[], ...series.map(() => [])];
  const options = {
    width: target.clientWidth,
    height: CHART_HEIGHT,
    scales: {
      // At least a minute wide, so the first seconds do not stretch across the chart.
      x: { time: true, range: (_u, min, max) => [Math.min(min, max - MIN_SPAN_SECONDS), max] },
      // From zero, and at least 0..1 so an idle node is a flat line at the bottom.
      y: { range: (_u, _min, max) => [0, Math.max(1, max)] },
    },
    axes: [{}, { label: "per second" }],
    series: [{}, ...series.map(({ label, color }) => ({ label, stroke: color, width: 1.5 }))],
  };
  const plot = new uPlot(options, data, target);
  window.addEventListener("resize", () => {
    plot.setSize({ width: target.clientWidth, height: CHART_HEIGHT });
  });
  return {
    // Appends one point per series at time `t` (seconds), dropping the oldest once the
    // window is full.
    push(t, values) {
      data[0].push(t);
      values.forEach((v, i) => data[i + 1].push(v));
      if (data[0].length > WINDOW_SECONDS) data.forEach((column) => column.shift());
      plot.setData(data);
      // How much history is drawn, for readers of the DOM (the tests).
      target.dataset.points = String(data[0].length);
    },
  };
}

const messagesChart = rateChart(document.getElementById("messages-chart"), [
  { label: "in", color: "#0969da" },
  { label: "out", color: "#bf3989" },
]);
const mempoolChart = rateChart(document.getElementById("mempool-chart"), [
  { label: "added", color: "#1a7f37" },
  { label: "removed", color: "#9a6700" },
]);

/** Fills `tbody` with one row per key of `counts`, largest first. */
function countRows(tbody, counts) {
  const rows = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, count]) => {
      const tr = document.createElement("tr");
      tr.append(cell(name), cell(count, true));
      return tr;
    });
  tbody.replaceChildren(...rows);
}

function onPeerInfos(infos) {
  const byType = new Map();
  const byNetwork = new Map();
  for (const info of infos) {
    byType.set(info.connection_type, (byType.get(info.connection_type) ?? 0) + 1);
    byNetwork.set(info.network, (byNetwork.get(info.network) ?? 0) + 1);
  }
  setText("peer-count", infos.length);
  setText("peers-updated", `(getpeerinfo at ${clock()})`);
  countRows(document.getElementById("conn-types"), byType);
  countRows(document.getElementById("networks"), byNetwork);
}

// The latest tip reported by either source wins: block-connected events arrive first, IPC
// getTip confirms it every few seconds (and is the only source without eBPF).
function onTip(height, hash, source) {
  setText("tip-height", height);
  setText("tip-hash", hashHex(hash));
  setText("tip-source", `${source} at ${clock()}`);
}

function onEvent(frame) {
  const event = unwrap(frame);
  if (event === null) return;
  const { extractor, kind, body } = event;
  if (extractor === "EbpfExtractor" && kind === "Message") {
    if (body.meta.inbound) {
      tick.in += 1;
      totals.in += 1;
    } else {
      tick.out += 1;
      totals.out += 1;
    }
  } else if (extractor === "EbpfExtractor" && kind === "Mempool") {
    const [change] = arm(body.event);
    const key = MEMPOOL_CHANGES[change];
    if (key !== undefined) {
      totals[key] += 1;
      setText(`mempool-${key}`, totals[key]);
      if (key in tick) tick[key] += 1;
    }
  } else if (extractor === "EbpfExtractor" && kind === "Validation") {
    const [change, block] = arm(body.event);
    if (change === "BlockConnected") onTip(block.height, block.hash, "block connected");
  } else if (extractor === "IpcExtractor" && kind === "BlockTip") {
    onTip(body.height, body.hash, "IPC getTip");
  } else if (extractor === "RpcExtractor" && kind === "PeerInfos") {
    onPeerInfos(body.infos);
  } else if (extractor === "RpcExtractor" && kind === "MempoolInfo") {
    setText("mempool-size", body.size);
    setText("mempool-bytes", formatBytes(body.bytes));
  }
}

// Once a second: rates over the time that actually passed (timers drift, and a background
// tab runs them late), then the counters restart.
let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  const seconds = Math.max((now - lastTick) / 1000, 0.001);
  lastTick = now;
  const rate = (n) => Math.round((n / seconds) * 10) / 10;
  const t = Math.floor(Date.now() / 1000);
  setText("messages-in", rate(tick.in));
  setText("messages-out", rate(tick.out));
  setText("messages-in-total", totals.in);
  setText("messages-out-total", totals.out);
  messagesChart.push(t, [rate(tick.in), rate(tick.out)]);
  mempoolChart.push(t, [rate(tick.added), rate(tick.removed)]);
  tick.in = tick.out = tick.added = tick.removed = 0;
}, 1000);

connectFeed(SUBSCRIPTION, onEvent);
