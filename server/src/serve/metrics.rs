//! Counters and a histogram, rendered in the Prometheus text format at `/metrics`.
//!
//! Labels are fixed strings chosen by the server (route templates, status codes, error codes),
//! never request data, so no secret can reach a metric.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the transfer duration histogram, seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's metrics.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Route template, then status.
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    transfers: Mutex<BTreeMap<&'static str, Histogram>>,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) sweeper_runs: AtomicU64,
    pub(crate) sweeper_shares: AtomicU64,
    pub(crate) sweeper_files: AtomicU64,
    pub(crate) sweeper_failures: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_failures: AtomicU64,
    pub(crate) flush_waits: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// One request finished with `status` on the route template `route`.
    pub(crate) fn request(&self, route: &str, status: u16) {
        let mut map = lock(&self.requests);
        // Looked up by reference: only a route's first request allocates its name.
        if let Some(by_status) = map.get_mut(route) {
            *by_status.entry(status).or_default() += 1;
        } else {
            map.entry(route.to_owned()).or_default().insert(status, 1);
        }
    }

    /// A request was refused; `code` is the API error code.
    pub(crate) fn refusal(&self, code: &'static str) {
        *lock(&self.refusals).entry(code).or_default() += 1;
    }

    /// An upload or download (`direction`) took `d` from its first to its last byte.
    pub(crate) fn transfer(&self, direction: &'static str, d: Duration) {
        let secs = d.as_secs_f64();
        let mut map = lock(&self.transfers);
        let h = map.entry(direction).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP kinko_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE kinko_http_requests_total counter\n");
        let requests = lock(&self.requests);
        let rows = requests
            .iter()
            .flat_map(|(route, m)| m.iter().map(move |(status, n)| (route, status, n)));
        for (route, status, n) in rows {
            let _ = writeln!(
                out,
                "kinko_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        for (name, help, v) in [
            (
                "kinko_http_bytes_received_total",
                "File bytes received in uploads.",
                &self.bytes_received,
            ),
            (
                "kinko_http_bytes_sent_total",
                "File bytes sent in downloads.",
                &self.bytes_sent,
            ),
            (
                "kinko_sweeper_runs_total",
                "Completed expiry sweeps.",
                &self.sweeper_runs,
            ),
            (
                "kinko_sweeper_failures_total",
                "Expiry sweeps that failed.",
                &self.sweeper_failures,
            ),
            (
                "kinko_vault_flushes_total",
                "Group-commit flushes (fsyncs) making counted downloads durable.",
                &self.flushes,
            ),
            (
                "kinko_vault_flush_failures_total",
                "Group-commit flushes that failed (their requests got a 500).",
                &self.flush_failures,
            ),
            (
                "kinko_vault_flush_waits_total",
                "Requests that waited for a group-commit flush.",
                &self.flush_waits,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out.push_str("# HELP kinko_sweeper_removed_total Objects removed by the sweeper.\n");
        out.push_str("# TYPE kinko_sweeper_removed_total counter\n");
        let _ = writeln!(
            out,
            "kinko_sweeper_removed_total{{kind=\"share\"}} {}",
            self.sweeper_shares.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "kinko_sweeper_removed_total{{kind=\"file\"}} {}",
            self.sweeper_files.load(Ordering::Relaxed)
        );
        out.push_str("# HELP kinko_refusals_total Refused requests by error code.\n");
        out.push_str("# TYPE kinko_refusals_total counter\n");
        for (code, n) in lock(&self.refusals).iter() {
            let _ = writeln!(out, "kinko_refusals_total{{reason=\"{code}\"}} {n}");
        }
        out.push_str(
            "# HELP kinko_transfer_duration_seconds Upload and download durations.\n\
             # TYPE kinko_transfer_duration_seconds histogram\n",
        );
        for (dir, h) in lock(&self.transfers).iter() {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "kinko_transfer_duration_seconds_bucket{{direction=\"{dir}\",le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "kinko_transfer_duration_seconds_bucket{{direction=\"{dir}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "kinko_transfer_duration_seconds_sum{{direction=\"{dir}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "kinko_transfer_duration_seconds_count{{direction=\"{dir}\"}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/api/v1/files", 201);
        m.request("/api/v1/files", 201);
        m.refusal("link_invalid");
        m.transfer("upload", Duration::from_millis(20));
        m.bytes_received.fetch_add(5, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains("kinko_http_requests_total{route=\"/api/v1/files\",status=\"201\"} 2")
        );
        assert!(text.contains("kinko_refusals_total{reason=\"link_invalid\"} 1"));
        assert!(text.contains("kinko_http_bytes_received_total 5"));
        assert!(text.contains(
            "kinko_transfer_duration_seconds_bucket{direction=\"upload\",le=\"0.01\"} 0"
        ));
        assert!(text.contains(
            "kinko_transfer_duration_seconds_bucket{direction=\"upload\",le=\"0.05\"} 1"
        ));
        assert!(text.contains("kinko_transfer_duration_seconds_count{direction=\"upload\"} 1"));
    }
}
