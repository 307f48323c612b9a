//! peerlab's live pages, embedded in the binary from `web/` and served on plain GETs.
//!
//! The pages are plain HTML and JavaScript modules (no build step) that open the websocket
//! feed on the address that served them: `index.html` links the node overview
//! (`overview.html`) and the per-peer table (`peers.html`). The overview's charts use
//! uPlot, a third-party library vendored unmodified under `web/vendor/uplot/` (see
//! `web/vendor/README.md`); its license is served beside it. A path not listed in
//! [`FILES`] is a 404.

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// (path, content type, body) of every embedded file.
pub const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../../web/index.html")),
    ("/index.html", HTML, include_str!("../../../web/index.html")),
    (
        "/overview.html",
        HTML,
        include_str!("../../../web/overview.html"),
    ),
    ("/peers.html", HTML, include_str!("../../../web/peers.html")),
    (
        "/css/peerlab.css",
        CSS,
        include_str!("../../../web/css/peerlab.css"),
    ),
    ("/js/feed.js", JS, include_str!("../../../web/js/feed.js")),
    (
        "/js/overview.js",
        JS,
        include_str!("../../../web/js/overview.js"),
    ),
    ("/js/peers.js", JS, include_str!("../../../web/js/peers.js")),
    (
        "/vendor/uplot/uPlot.iife.min.js",
        JS,
        include_str!("../../../web/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "/vendor/uplot/uPlot.min.css",
        CSS,
        include_str!("../../../web/vendor/uplot/uPlot.min.css"),
    ),
    (
        "/vendor/uplot/LICENSE",
        TEXT,
        include_str!("../../../web/vendor/uplot/LICENSE"),
    ),
];

/// The embedded file at `path`, or 404 with the list of pages.
pub fn page(path: &str) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, body)) => ([(CONTENT_TYPE, *content_type)], *body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, TEXT)],
            format!("no page at {path}; the pages are listed at /\n"),
        )
            .into_response(),
    }
}

/// The paths of the embedded files.
pub fn paths() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(p, _, _)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(response: &Response) -> &str {
        response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn every_embedded_file_answers_200_with_its_type_and_others_404() {
        for (path, expected_type, body) in FILES {
            let response = page(path);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(content_type(&response), *expected_type, "{path}");
            assert!(!body.is_empty(), "{path} is empty");
            let by_extension = match path.rsplit('.').next() {
                Some("html") => HTML,
                Some("js") => JS,
                Some("css") => CSS,
                _ if *path == "/" => HTML,
                _ => TEXT,
            };
            assert_eq!(*expected_type, by_extension, "{path}");
        }
        for path in ["/nope.html", "/js/", "/vendor/README.md", "/index.htm", ""] {
            let response = page(path);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(content_type(&response), TEXT);
        }
        assert_eq!(paths().count(), FILES.len());
    }

    /// Every relative `src`/`href` in the embedded HTML and every module our scripts import
    /// names an embedded file, so a page never asks for something the binary does not have.
    #[test]
    fn the_pages_reference_only_embedded_files() {
        let mut references = 0;
        for (path, content_type, body) in FILES {
            let (markers, directory) = match *content_type {
                HTML => (&["src=\"", "href=\""][..], "/"),
                JS if path.starts_with("/js/") => (&["from \"./"][..], "/js/"),
                _ => continue,
            };
            for marker in markers {
                for rest in body.split(marker).skip(1) {
                    let target = rest.split('"').next().unwrap_or("");
                    if target.starts_with("data:") {
                        continue;
                    }
                    references += 1;
                    let absolute = format!("{directory}{target}");
                    assert!(
                        paths().any(|p| p == absolute),
                        "{path} references {target}, which is not embedded"
                    );
                }
            }
        }
        assert!(references >= 10, "only {references} references found");
    }
}
