//! Leafnode links from nats-server's monitoring endpoint (`/leafz`): one HTTP/1.0 GET over a
//! plain TCP stream (the project has no HTTP client, and the endpoint needs none of one).
//!
//! Invariants:
//! - the whole fetch (connect, request, reply) is bounded by one timeout, and the reply by
//!   [`MAX_REPLY_BYTES`], so a wrong URL or a stalled server cannot hang a status check;
//! - only `http://` is spoken (nats-server serves its monitoring port without TLS unless
//!   `https` is configured, which is refused by name);
//! - fields of the reply default when absent: servers before 2.10 send no leaf `name`;
//! - credentials in the URL never appear in an error.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The most reply bytes read (a leaf is about 300 bytes of JSON: room for thousands).
pub const MAX_REPLY_BYTES: usize = 4 << 20;

/// What can go wrong fetching `/leafz`.
#[derive(Debug, thiserror::Error)]
pub enum LeafzError {
    /// The monitoring URL is not one this client speaks.
    #[error("bad monitoring URL `{url}`: {reason}")]
    BadUrl {
        /// The URL, credentials redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting, sending or receiving failed, or took longer than allowed.
    #[error("cannot fetch {url}: {reason}")]
    Fetch {
        /// The URL fetched, credentials redacted.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The reply was not `/leafz` JSON.
    #[error("{url} did not answer with leafnode JSON: {reason}")]
    Reply {
        /// The URL fetched, credentials redacted.
        url: String,
        /// What is wrong with the reply.
        reason: String,
    },
}

/// One leafnode connection, as `/leafz` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    /// The remote server's name (nats-server 2.10 and later; empty before).
    #[serde(default)]
    pub name: String,
    /// The account the link is bound to.
    #[serde(default)]
    pub account: String,
    /// The remote address.
    #[serde(default)]
    pub ip: String,
    /// The remote port.
    #[serde(default)]
    pub port: u16,
    /// Round-trip time as the server writes it (`304µs`, `1.2ms`).
    #[serde(default)]
    pub rtt: String,
    /// Messages received over the link.
    #[serde(default)]
    pub in_msgs: u64,
    /// Messages sent over the link.
    #[serde(default)]
    pub out_msgs: u64,
    /// Bytes received over the link.
    #[serde(default)]
    pub in_bytes: u64,
    /// Bytes sent over the link.
    #[serde(default)]
    pub out_bytes: u64,
    /// Subscriptions the link carries.
    #[serde(default)]
    pub subscriptions: u64,
}

/// A `/leafz` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leafz {
    /// The answering server's id.
    #[serde(default)]
    pub server_id: String,
    /// Its leafnode links (the server writes `null` for none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub leafs: Vec<Leaf>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Leaf>, D::Error> {
    Ok(Option::<Vec<Leaf>>::deserialize(d)?.unwrap_or_default())
}

/// Where a GET goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Host as dialled (brackets of an IPv6 literal removed).
    host: String,
    port: u16,
    /// The `Host` header (`host:port`, brackets kept).
    authority: String,
    path: String,
}

/// The `/leafz` address under a monitoring URL: `http://HOST:PORT` (or a URL already ending
/// in `/leafz`).
fn leafz_target(url: &str) -> Result<Target, LeafzError> {
    let bad = |reason: &str| LeafzError::BadUrl {
        url: crate::secret::redact_url(url),
        reason: reason.to_string(),
    };
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => {
            return Err(bad(
                "https is not supported; give the plain http:// monitoring port",
            ))
        }
        Some(_) => return Err(bad("only http:// is supported")),
        None => url,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // Credentials are not needed by the monitoring port; drop them rather than send them.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let parse_port = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| bad("the port is not a number from 1 to 65535"))
    };
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8222`.
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, "")) => (host, 8222),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, parse_port(port)?),
                None => return Err(bad("text after the IPv6 address")),
            },
            None => return Err(bad("an unclosed `[` in the host")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, parse_port(port)?),
            None => (authority, 8222),
        },
    };
    if host.is_empty() || port == 0 {
        return Err(bad("give it as http://HOST:PORT"));
    }
    let path = path.trim_end_matches('/');
    let path = if path.ends_with("/leafz") {
        path.to_string()
    } else {
        format!("{path}/leafz")
    };
    Ok(Target {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path,
    })
}

/// The body of an HTTP reply with status 200.
fn reply_body(reply: &[u8]) -> Result<&[u8], String> {
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the reply has no end of headers")?;
    let head = String::from_utf8_lossy(&reply[..end]);
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/") {
        return Err(format!("not an HTTP reply: {status:?}"));
    }
    if code != "200" {
        return Err(format!("HTTP status {:?}", status.trim()));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        // An HTTP/1.0 request must not get one; refuse rather than misread it.
        return Err("a chunked reply to an HTTP/1.0 request".to_string());
    }
    Ok(&reply[end + 4..])
}

/// Parses a `/leafz` JSON body.
pub fn parse_leafz(body: &[u8]) -> Result<Leafz, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Fetches `/leafz` from the monitoring URL `monitor` (e.g. `http://127.0.0.1:8222`), all of
/// it within `timeout`.
pub async fn fetch_leafz(monitor: &str, timeout: Duration) -> Result<Leafz, LeafzError> {
    let target = leafz_target(monitor)?;
    let shown = crate::secret::redact_url(&format!("http://{}{}", target.authority, target.path));
    let reply = tokio::time::timeout(timeout, get(&target))
        .await
        .map_err(|_| LeafzError::Fetch {
            url: shown.clone(),
            reason: format!("no complete reply within {}s", timeout.as_secs_f64()),
        })?
        .map_err(|reason| LeafzError::Fetch {
            url: shown.clone(),
            reason,
        })?;
    let body = reply_body(&reply).map_err(|reason| LeafzError::Reply {
        url: shown.clone(),
        reason,
    })?;
    parse_leafz(body).map_err(|reason| LeafzError::Reply { url: shown, reason })
}

async fn get(target: &Target) -> Result<Vec<u8>, String> {
    let mut stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: peerlab\r\n\r\n",
        target.path, target.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the server closes the connection after the reply.
    let mut reply = Vec::new();
    (&mut stream)
        .take(MAX_REPLY_BYTES as u64 + 1)
        .read_to_end(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    if reply.len() > MAX_REPLY_BYTES {
        return Err(format!("the reply exceeds {MAX_REPLY_BYTES} bytes"));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What nats-server 2.9 answers with one leaf (no `name` yet).
    const LEAFZ_2_9: &str = r#"{
      "server_id": "NABHEAK3",
      "now": "2026-11-29T19:26:56.601530603Z",
      "leafnodes": 1,
      "leafs": [
        {"account": "$G", "ip": "127.0.0.1", "port": 58498, "rtt": "304µs",
         "in_msgs": 3, "out_msgs": 4, "in_bytes": 30, "out_bytes": 40, "subscriptions": 4}
      ]
    }"#;

    #[test]
    fn targets_default_the_port_and_append_leafz() {
        let t = leafz_target("http://127.0.0.1:8222").expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8222));
        assert_eq!(t.path, "/leafz");
        assert_eq!(leafz_target("localhost").expect("parses").port, 8222);
        let t = leafz_target("http://[::1]:9000/base/").expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("[::1]:9000", "/base/leafz")
        );
        assert_eq!(leafz_target("http://[::1]").expect("parses").port, 8222);
        let t = leafz_target("http://h:1/leafz").expect("parses");
        assert_eq!(t.path, "/leafz");
        let t = leafz_target("http://user:secret@h:1").expect("parses");
        assert_eq!(t.authority, "h:1");
        for bad in [
            "https://h:8222",
            "nats://h:4222",
            "http://h:x",
            "http://:80",
            "http://h:0",
            "http://[::1",
            "http://[::1]x",
        ] {
            assert!(leafz_target(bad).is_err(), "{bad}");
        }
        let e = leafz_target("ftp://user:secret@h").expect_err("refused");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn replies_are_checked_and_parsed() {
        let ok = format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{LEAFZ_2_9}");
        let leafz = parse_leafz(reply_body(ok.as_bytes()).expect("body")).expect("json");
        assert_eq!(leafz.server_id, "NABHEAK3");
        assert_eq!(leafz.leafs.len(), 1);
        let leaf = &leafz.leafs[0];
        assert_eq!(
            (leaf.name.as_str(), leaf.port, leaf.out_msgs),
            ("", 58498, 4)
        );
        assert_eq!(leaf.rtt, "304µs");
        let none = parse_leafz(br#"{"server_id":"X","leafs":null}"#).expect("json");
        assert!(none.leafs.is_empty());
        assert!(reply_body(b"HTTP/1.0 404 Not Found\r\n\r\n").is_err());
        assert!(reply_body(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(reply_body(b"SSH-2.0\r\n\r\n").is_err());
        assert!(reply_body(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_leafz(b"<html>").is_err());
    }

    #[tokio::test]
    async fn fetches_from_a_server_and_bounds_a_silent_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0u8; 1024];
            let n = socket.read(&mut request).await.expect("read");
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let reply = format!("HTTP/1.0 200 OK\r\n\r\n{LEAFZ_2_9}");
            socket.write_all(reply.as_bytes()).await.expect("write");
            request
        });
        let leafz = fetch_leafz(&format!("http://{address}"), Duration::from_secs(5))
            .await
            .expect("fetched");
        assert_eq!(leafz.leafs.len(), 1);
        let request = server.await.expect("server");
        assert!(request.starts_with("GET /leafz HTTP/1.0\r\n"), "{request}");

        // A server that accepts and never answers: the timeout ends the fetch.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = silent.local_addr().expect("address");
        let error = fetch_leafz(&format!("http://{address}"), Duration::from_millis(200))
            .await
            .expect_err("times out");
        assert!(error.to_string().contains("no complete reply"), "{error}");
        drop(silent);
    }
}
