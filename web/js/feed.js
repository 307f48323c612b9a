// What every page shares: the connection to the websocket feed and small helpers to read its
// frames (tools.md §1.3) and to write text into the page.

// Reconnect delays: short at first (a restarted tool is back quickly), doubling up to a cap
// so a tool that stays down is not hammered.
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;

/**
 * Opens the feed and keeps it open. `subscription` is the page's subscription frame (an
 * object), sent on every (re)connection because a new connection starts subscribed to
 * nothing; `onEvent` receives each frame, parsed. The connection state is shown in the
 * element with id `feed-state`.
 */
export function connectFeed(subscription, onEvent) {
  const state = document.getElementById("feed-state");
  // The tool upgrades any path: using the page's own directory keeps the pages working
  // behind a proxy that serves them under a prefix.
  const url = new URL(".", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  let retryMs = FIRST_RETRY_MS;
  let events = 0;
  let live = false;

  const show = (text, kind) => {
    state.textContent = text;
    state.dataset.state = kind;
  };

  const connect = () => {
    show("connecting…", "connecting");
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      retryMs = FIRST_RETRY_MS;
      live = true;
      socket.send(JSON.stringify(subscription));
      show(`live, ${events} events`, "live");
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        // The tool only sends JSON; one bad frame should not stop the page.
        return;
      }
      events += 1;
      onEvent(frame);
    });
    // "error" is always followed by "close", so reconnecting here alone is enough.
    socket.addEventListener("close", () => {
      live = false;
      show(`disconnected, retrying in ${(retryMs / 1000).toFixed(1)} s`, "down");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    });
  };

  // The event count is refreshed once a second rather than per frame: a busy node sends
  // thousands of frames a second.
  setInterval(() => {
    if (live) show(`live, ${events} events`, "live");
  }, 1000);
  connect();
}

/**
 * `{"Name": value}` (a tagged oneof) as `[name, value]`; `[null, null]` for an unset oneof
 * (`null`).
 */
export function arm(tagged) {
  if (tagged === null || typeof tagged !== "object") return [null, null];
  const name = Object.keys(tagged)[0];
  return [name, tagged[name]];
}

/**
 * A frame as `{extractor, kind, body}`: `{"EbpfExtractor": {"ebpf_event": {"Message": body}}}`
 * is `{extractor: "EbpfExtractor", kind: "Message", body}`. `null` when the frame carries
 * no event.
 */
export function unwrap(frame) {
  const [extractor, inner] = arm(frame);
  if (inner === null) return null;
  // Each extractor's event oneof is the one field named `*_event` (the log extractor's
  // frame has plain fields beside it).
  const key = Object.keys(inner).find((k) => k.endsWith("_event"));
  const [kind, body] = arm(key === undefined ? null : inner[key]);
  return kind === null ? null : { extractor, kind, body };
}

/** Sets the text of the element with id `id` (text only: event data is never parsed as HTML). */
export function setText(id, value) {
  document.getElementById(id).textContent = String(value);
}

/** A hash in internal byte order (an array of numbers) as the usual reversed hex. */
export function hashHex(bytes) {
  return bytes
    .slice()
    .reverse()
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** A byte count for people: 1234567 -> "1.2 MB". */
export function formatBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** The local time of day, for "as of" labels. */
export function clock(date = new Date()) {
  return date.toLocaleTimeString([], { hour12: false });
}

/** A table cell with `text`, right-aligned when `numeric`. */
export function cell(text, numeric = false) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (numeric) td.className = "num";
  return td;
}
