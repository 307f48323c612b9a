//! peerlab's live pages in a real browser. The embedded stack runs in-process (regtest node,
//! every extractor, NATS) with a transaction and a block every 500 ms and an honest inbound
//! peer; `peerlab tools websocket` serves its feed and the embedded pages; Debian's headless
//! Chromium loads each page.
//!
//! The browser is driven over the DevTools protocol (CDP, `--remote-debugging-port=0`)
//! rather than with `--dump-dom`, which cannot wait for websocket data: without a budget it
//! dumps at the load event, before the feed is open, and `--virtual-time-budget` runs the
//! page's timers in virtual time, so the dump comes after about a second of real time
//! whatever the budget (Chromium 156), with or without live data depending on the race.
//! Over CDP the test reads the page's own DOM until it shows live data (a tip height, P2P
//! message counts in both directions, the peers getpeerinfo reports, our peer's user agent)
//! and then until it shows newer data, so the pages are proven to update, each wait bounded
//! by [`PAGE_TIMEOUT`]. Each page's screenshot is saved as `target/web-<page>.png`, and a
//! page fails on any console call, uncaught exception or (non-verbose) log entry, a 404
//! included, as CDP reports them, and on any `CONSOLE` line Chromium prints on stderr; a
//! probe first shows that these checks do catch a warning and a 404.

use crate::common;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use peerlab::bus::{SubjectScheme, Subscriber};
use peerlab::peer::{Peer, PeerConfig};
use peerlab::shutdown::Shutdown;
use peerlab::stack::{drive_activity, EmbeddedConfig, EmbeddedStack};
use peerlab::tools::websocket::WebsocketTool;
use peerlab::tools::Tool as _;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How long a page may take to show what the test waits for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the DOM is read while waiting.
const POLL: Duration = Duration::from_millis(250);
/// Seconds of history the overview's charts must show before its screenshot.
const CHART_POINTS: u64 = 8;
/// The user agent of the honest peer, looked for in the peers table.
const USER_AGENT: &str = "/peerlab-web-test:0/";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One headless Chromium with one page, driven over CDP. Dropping it kills the browser.
struct Browser {
    child: Child,
    socket: Socket,
    /// The page's flattened CDP session.
    session: String,
    next_id: u64,
    /// Console calls, exceptions and log entries (other than verbose ones) of the page.
    problems: Vec<String>,
    /// Reads Chromium's stderr to the end; returns its lines.
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a `width` x `height` window and attaches to a blank page.
    async fn launch(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium runs (the quickstart installs Debian's chromium)");
        let stderr = child.stderr.take().expect("stderr");
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = url_tx.send(url.trim().to_string());
                }
                lines.push(line);
            }
            lines
        });
        // The sender goes with the thread, so a Chromium that exits early ends this wait.
        let url = tokio::task::spawn_blocking(move || url_rx.recv_timeout(common::TIMEOUT))
            .await
            .expect("waiting for chromium");
        let url = match url {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let lines = stderr.join().unwrap_or_default();
                panic!("no DevTools address from chromium ({e}): {lines:#?}");
            }
        };
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to chromium's DevTools");
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            problems: Vec::new(),
            stderr: Some(stderr),
            _profile: profile,
        };
        let target = browser
            .send(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .send(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
    }

    /// Calls `method` (on the browser when `session` is `None`) and returns its result;
    /// events read meanwhile are checked for problems.
    async fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            request["sessionId"] = session.into();
        }
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("sending {method} to chromium: {e}"));
        loop {
            let frame = tokio::time::timeout(common::TIMEOUT, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("chromium answers {method} in time"));
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                other => panic!("the DevTools connection ended during {method}: {other:?}"),
            };
            let message: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
            self.note(&message);
        }
    }

    /// Calls `method` on the page.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params).await
    }

    /// Records an event that means the page logged something or failed.
    fn note(&mut self, event: &Value) {
        let params = &event["params"];
        let problem = match event["method"].as_str() {
            Some("Runtime.consoleAPICalled") => Some(format!(
                "console.{}: {}",
                params["type"].as_str().unwrap_or("?"),
                params["args"]
            )),
            Some("Runtime.exceptionThrown") => Some(format!(
                "uncaught exception: {}",
                params["exceptionDetails"]
            )),
            // "verbose" entries (performance hints) are hidden in a browser's console by
            // default; everything else shows.
            Some("Log.entryAdded") if params["entry"]["level"] != "verbose" => {
                Some(format!("log entry: {}", params["entry"]))
            }
            _ => None,
        };
        self.problems.extend(problem);
    }

    /// Loads `url` and waits for its load event.
    async fn navigate(&mut self, url: &str) {
        let navigated = self.call("Page.navigate", json!({ "url": url })).await;
        assert!(
            navigated.get("errorText").is_none(),
            "loading {url}: {navigated}"
        );
        self.wait_for("the load event", "document.readyState", |state| {
            state == "complete"
        })
        .await;
    }

    /// The value of `expression` in the page (JSON-serialisable).
    async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Reads `expression` until `ready` holds (bounded by [`PAGE_TIMEOUT`]); returns it.
    async fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let value = self.evaluate(expression).await;
            if ready(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}: the page still shows {value:#} after {PAGE_TIMEOUT:?} \
                 (problems so far: {:?})",
                self.problems
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves a PNG of the whole page at `path` and checks it is a real picture.
    async fn screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": size["width"], "height": size["height"],
                              "scale": 1 },
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "a real screenshot ({} bytes)",
            png.len()
        );
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Closes the browser; returns what the page reported (console calls, exceptions, log
    /// entries) and the `CONSOLE` lines Chromium printed on stderr.
    async fn finish(mut self) -> (Vec<String>, Vec<String>) {
        // A last round trip: every event the page produced before it has been read.
        self.evaluate("0").await;
        let _ = self
            .socket
            .send(Message::Text(
                json!({ "id": 0, "method": "Browser.close" })
                    .to_string()
                    .into(),
            ))
            .await;
        let deadline = Instant::now() + common::TIMEOUT;
        while self.child.try_wait().expect("chromium status").is_none() {
            assert!(Instant::now() < deadline, "chromium did not close");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stderr = self.stderr.take().expect("stderr reader");
        let lines = tokio::task::spawn_blocking(move || stderr.join())
            .await
            .expect("join")
            .expect("stderr reader");
        let console = lines
            .into_iter()
            .filter(|l| l.contains("CONSOLE"))
            .collect();
        (std::mem::take(&mut self.problems), console)
    }

    /// Closes the browser; fails if the page or Chromium reported console output.
    async fn close(self, page: &str) {
        let (problems, console) = self.finish().await;
        assert!(
            console.is_empty(),
            "{page}: console messages on chromium's stderr: {console:#?}"
        );
        assert!(
            problems.is_empty(),
            "{page}: console messages, exceptions or log entries: {problems:#?}"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Only our own child, by its handle; harmless once it exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go.
fn screenshot_path(page: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("web-{page}.png"));
    let _ = std::fs::remove_file(&path);
    path
}

fn number(value: &Value) -> u64 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The overview's live numbers, read from the DOM.
const OVERVIEW: &str = r#"(() => {
  const text = (id) => document.getElementById(id).textContent;
  const rows = (id) => [...document.querySelectorAll(`#${id} tr`)]
    .map((tr) => [...tr.cells].map((td) => td.textContent));
  return {
    state: document.getElementById("feed-state").dataset.state,
    tip: text("tip-height"),
    tipHash: text("tip-hash"),
    messagesIn: text("messages-in-total"),
    messagesOut: text("messages-out-total"),
    rateIn: text("messages-in"),
    peers: text("peer-count"),
    types: rows("conn-types"),
    networks: rows("networks"),
    mempoolAdded: text("mempool-added"),
    mempoolRemoved: text("mempool-removed"),
    mempoolSize: text("mempool-size"),
    charts: document.querySelectorAll(".uplot canvas").length,
    points: [...document.querySelectorAll("[data-points]")].map((chart) => Number(chart.dataset.points)),
  };
})()"#;

/// The peers table, read from the DOM.
const PEERS: &str = r##"(() => ({
  state: document.getElementById("feed-state").dataset.state,
  count: document.getElementById("peer-count").textContent,
  rows: [...document.querySelectorAll("#peer-rows tr")].map((tr) => ({
    listed: !tr.classList.contains("unlisted"),
    cells: [...tr.cells].map((td) => td.textContent),
  })),
}))()"##;

fn has_type(rows: &Value, wanted: &str) -> bool {
    rows.as_array().is_some_and(|rows| {
        rows.iter()
            .any(|row| row[0] == wanted && number(&row[1]) > 0)
    })
}

/// The console checks are not vacuous: a warning and a 404 on a page of ours are caught,
/// the warning on both channels.
async fn console_output_is_caught(base: &str) {
    let mut browser = Browser::launch(800, 400).await;
    browser.navigate(&format!("{base}/")).await;
    let status = browser
        .call(
            "Runtime.evaluate",
            json!({
                "expression": r#"console.warn("peerlab-probe"); fetch("no-such-page").then((r) => r.status)"#,
                "awaitPromise": true,
                "returnByValue": true,
            }),
        )
        .await;
    assert_eq!(status["result"]["value"], 404, "{status}");
    // The 404's log entry may follow the response: read events until it is there.
    let deadline = Instant::now() + common::TIMEOUT;
    while !browser.problems.iter().any(|p| p.contains("404")) {
        assert!(
            Instant::now() < deadline,
            "no log entry for the 404: {:?}",
            browser.problems
        );
        browser.evaluate("0").await;
        tokio::time::sleep(POLL).await;
    }
    let (problems, console) = browser.finish().await;
    assert!(
        problems.iter().any(|p| p.contains("peerlab-probe")),
        "{problems:#?}"
    );
    assert!(
        console.iter().any(|l| l.contains("peerlab-probe")),
        "{console:#?}"
    );
}

async fn index_page(base: &str) {
    let mut browser = Browser::launch(1000, 500).await;
    browser.navigate(&format!("{base}/")).await;
    let links = browser
        .evaluate(
            r##"[...document.querySelectorAll("#pages a")].map((a) => a.getAttribute("href"))"##,
        )
        .await;
    assert_eq!(links, json!(["overview.html", "peers.html"]));
    browser.screenshot(&screenshot_path("index")).await;
    browser.close("index.html").await;
}

async fn overview_page(base: &str) {
    let mut browser = Browser::launch(1280, 1000).await;
    browser.navigate(&format!("{base}/overview.html")).await;
    let first = browser
        .wait_for("live data on the overview", OVERVIEW, |v| {
            v["state"] == "live"
                && number(&v["tip"]) > 0
                && v["tipHash"].as_str().is_some_and(|h| h.len() == 64)
                && number(&v["messagesIn"]) > 0
                && number(&v["messagesOut"]) > 0
                && number(&v["peers"]) >= 2
                && has_type(&v["types"], "inbound")
                && has_type(&v["types"], "manual")
                && v["networks"].as_array().is_some_and(|n| !n.is_empty())
                && number(&v["mempoolAdded"]) > 0
                && v["mempoolSize"]
                    .as_str()
                    .is_some_and(|s| s.parse::<u64>().is_ok())
                && v["charts"] == 2
        })
        .await;
    // Newer blocks and messages arrive while the page stays open: it updates live.
    let tip = number(&first["tip"]);
    let messages = number(&first["messagesIn"]);
    let later = browser
        .wait_for("the overview to update", OVERVIEW, |v| {
            number(&v["tip"]) > tip
                && number(&v["messagesIn"]) > messages
                && number(&v["mempoolRemoved"]) > 0
                && v["points"].as_array().is_some_and(|points| {
                    points.len() == 2 && points.iter().all(|p| p.as_u64() >= Some(CHART_POINTS))
                })
        })
        .await;
    assert!(
        later["rateIn"]
            .as_str()
            .is_some_and(|r| r.parse::<f64>().is_ok()),
        "{later:#}"
    );
    browser.screenshot(&screenshot_path("overview")).await;
    browser.close("overview.html").await;
}

async fn peers_page(base: &str) {
    let mut browser = Browser::launch(1600, 500).await;
    browser.navigate(&format!("{base}/peers.html")).await;
    // Columns: id, address, type, network, transport, version, subversion, ping, sent,
    // received, addr processed, addr rate-limited, messages in, messages out.
    let listed = |v: &Value| -> Vec<Vec<String>> {
        v["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|row| row["listed"] == true)
            .map(|row| {
                row["cells"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .collect()
    };
    let messages = |rows: &[Vec<String>]| -> (u64, u64) {
        rows.iter().fold((0, 0), |(i, o), row| {
            let n = |k: usize| row.get(k).and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
            (i + n(12), o + n(13))
        })
    };
    let first = browser
        .wait_for("live peers in the table", PEERS, |v| {
            let rows = listed(v);
            let (inbound, outbound) = messages(&rows);
            v["state"] == "live"
                && rows.len() >= 2
                && rows.iter().all(|r| r.len() == 14 && !r[1].is_empty())
                && rows.iter().any(|r| r[2] == "inbound" && r[6] == USER_AGENT)
                && rows.iter().any(|r| r[2] == "manual")
                && inbound > 0
                && outbound > 0
        })
        .await;
    let (inbound, outbound) = messages(&listed(&first));
    browser
        .wait_for("the peer table to update", PEERS, |v| {
            let (i, o) = messages(&listed(v));
            i > inbound && o > outbound
        })
        .await;
    browser.screenshot(&screenshot_path("peers")).await;
    browser.close("peers.html").await;
}

/// Runs one page's check and says how long it took.
async fn timed(page: &str, check: impl std::future::Future<Output = ()>) {
    let started = Instant::now();
    check.await;
    eprintln!("{page} checked in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_show_live_data_in_headless_chromium() {
    let started = Instant::now();
    let mut config = EmbeddedConfig::new(common::installation());
    // getpeerinfo, getmempoolinfo, getTip and the P2P extractor's pings (the node's inbound
    // messages; blocks and transactions are mostly outbound) every second, so the pages
    // need not wait long.
    config.observer.rpc_intervals = (Duration::from_secs(1), Duration::from_secs(2));
    config.observer.ipc_interval = Duration::from_secs(1);
    config.observer.p2p_ping_interval = Duration::from_secs(1);
    let mut stack = EmbeddedStack::start(config).await.expect("stack starts");
    let subscriber = Subscriber::connect(stack.nats(), SubjectScheme::Flat, &[])
        .await
        .expect("subscriber");
    let tool = WebsocketTool::bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the websocket tool binds");
    let base = format!("http://{}", tool.local_addr().expect("address"));
    let stop_tool = Shutdown::new();
    let tool = tokio::spawn(tool.run(subscriber, stop_tool.clone()));
    let shutdown = Shutdown::new();
    stack
        .observe(&shutdown)
        .await
        .expect("observer traces the node");
    let node = stack.node().expect("the stack holds its node");
    eprintln!("stack observed after {:?}", started.elapsed());

    // An honest inbound peer (the P2P extractor is the node's manual outbound one).
    let mut peer = Peer::connect(
        node.p2p_addr().into(),
        PeerConfig {
            user_agent: USER_AGENT.into(),
            ..PeerConfig::default()
        },
    )
    .await
    .expect("peer connects");
    peer.handshake().await.expect("handshake");
    let peer = tokio::spawn(async move {
        // Keep answering pings; ends when the node goes away.
        while peer.recv().await.is_ok() {}
    });

    // The browser runs in a task while this one keeps the node busy (RPC is blocking); the
    // activity stops when the browser is done, or fails.
    let activity = Shutdown::new();
    let browser = {
        let stop_activity = activity.clone().drop_guard();
        tokio::spawn(async move {
            let _stop_activity = stop_activity;
            timed("console probe", console_output_is_caught(&base)).await;
            timed("index.html", index_page(&base)).await;
            timed("overview.html", overview_page(&base)).await;
            timed("peers.html", peers_page(&base)).await;
        })
    };
    let deadline = Instant::now() + 4 * PAGE_TIMEOUT;
    let mined = tokio::task::block_in_place(|| {
        drive_activity(node, Duration::from_millis(500), &activity, Some(deadline))
    })
    .expect("regtest activity");
    let browsed = browser.await;

    peer.abort();
    stack.finish().await.expect("stack stops");
    stop_tool.cancel();
    let summary = tokio::time::timeout(common::TIMEOUT, tool)
        .await
        .expect("the tool stops in time")
        .expect("tool task")
        .expect("the tool ran");
    if let Err(panic) = browsed {
        std::panic::resume_unwind(panic.into_panic());
    }
    assert!(summary.clients >= 2 && summary.sent > 0, "{summary:?}");
    eprintln!(
        "pages checked in {:?}: {} blocks, {} transactions, {summary:?}",
        started.elapsed(),
        mined.blocks,
        mined.transactions
    );
}
