//! The HTTP endpoint: the text exposition on every path (peer-observer's scrapers use `/`,
//! `/metrics` or a reverse-proxy prefix), gzip when the client accepts it.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus::{Encoder as _, Registry, TextEncoder};
use tower_http::compression::CompressionLayer;

use super::MetricsError;
use crate::shutdown::Shutdown;

/// Prometheus text format 0.0.4 (not OpenMetrics, which would rename counters).
const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text exposition of every family in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        tracing::warn!("encoding the metrics failed: {e}");
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

/// Serves `registry` on `listener` until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    stop: Shutdown,
) -> Result<(), MetricsError> {
    let app = axum::Router::new()
        .fallback(move || {
            let registry = registry.clone();
            async move { ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], render(&registry)).into_response() }
        })
        .layer(CompressionLayer::new().gzip(true));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(|e| MetricsError::Serve(e.to_string()))
}
