//! Prometheus metrics: requests by route and status, and a latency histogram by route.
//!
//! A small registry owned by the app state (not a process-global recorder), so tests can run several
//! servers in one process. Labels are bounded: the matched route template, never the raw path or ids.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
    /// Meta webhook deliveries by outcome (`accepted`, `rejected`, `malformed`, `store_failed`).
    webhooks: BTreeMap<&'static str, u64>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner
            .requests
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let h = inner
            .latency
            .entry((method.to_string(), route.to_string()))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// Counts one Meta webhook delivery by outcome.
    pub fn webhook(&self, outcome: &'static str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.webhooks.entry(outcome).or_default() += 1;
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP mtdesk_meta_webhooks_total Meta webhook deliveries by outcome.\n");
        out.push_str("# TYPE mtdesk_meta_webhooks_total counter\n");
        for (outcome, n) in &inner.webhooks {
            let _ = writeln!(
                out,
                "mtdesk_meta_webhooks_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP mtdesk_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE mtdesk_http_requests_total counter\n");
        for ((method, route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "mtdesk_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP mtdesk_http_request_duration_seconds HTTP request latency by method and route.\n");
        out.push_str("# TYPE mtdesk_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &inner.latency {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "mtdesk_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "mtdesk_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "mtdesk_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "mtdesk_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware recording every request under its route template ("unmatched" for 404s of unknown paths).
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/healthz", 200, 0.003);
        m.observe("GET", "/healthz", 200, 0.2);
        m.observe("GET", "/healthz", 503, 0.003);
        let text = m.render();
        assert!(text.contains(
            "mtdesk_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "mtdesk_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"503\"} 1"
        ));
        assert!(text.contains("le=\"0.005\"} 2"));
        assert!(text.contains("le=\"0.25\"} 3"));
        assert!(text.contains("le=\"+Inf\"} 3"));
        assert!(text.contains(
            "mtdesk_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 3"
        ));
    }
}
