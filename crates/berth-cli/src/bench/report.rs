//! The results of a run, as a table or one line of JSON.

use hdrhistogram::Histogram;

use super::attack::AttackReport;

/// Results of a run.
pub(super) struct Report {
    pub(super) messages: u64,
    pub(super) secs: f64,
    pub(super) size: usize,
    pub(super) hist: Histogram<u64>,
    pub(super) mismatches: u64,
    pub(super) connect_errors: u64,
    pub(super) closes: u64,
    pub(super) conns_per_sec: Option<f64>,
    /// What the attackers did, if the run had any.
    pub(super) attack: Option<AttackReport>,
}

impl Report {
    /// Every figure the report prints: JSON key, table label, value.
    fn fields(&self) -> Vec<(&'static str, &'static str, String)> {
        let msgs_per_sec = self.messages as f64 / self.secs;
        let q = |p: f64| self.hist.value_at_quantile(p).to_string();
        let mut fields = vec![
            ("messages", "messages", self.messages.to_string()),
            ("msgs_per_sec", "messages/s", format!("{msgs_per_sec:.1}")),
            (
                "mb_per_sec",
                "MB/s",
                format!("{:.3}", msgs_per_sec * self.size as f64 / 1e6),
            ),
            ("p50_us", "latency p50 (µs)", q(0.5)),
            ("p99_us", "latency p99 (µs)", q(0.99)),
            ("p999_us", "latency p99.9 (µs)", q(0.999)),
            ("max_us", "latency max (µs)", self.hist.max().to_string()),
            ("mismatches", "mismatches", self.mismatches.to_string()),
            (
                "connect_errors",
                "connect errors",
                self.connect_errors.to_string(),
            ),
            ("closes", "unexpected closes", self.closes.to_string()),
        ];
        if let Some(c) = self.conns_per_sec {
            fields.push(("conns_per_sec", "connections/s", format!("{c:.1}")));
        }
        if let Some(a) = &self.attack {
            let count = |key, label, n: u64| (key, label, n.to_string());
            fields.extend([
                count("slowloris_open", "slowloris open", a.slowloris_open),
                count("slowloris_closed", "slowloris closed", a.slowloris_closed),
                count(
                    "slowloris_reconnects",
                    "slowloris reopened",
                    a.slowloris_reconnects,
                ),
                count(
                    "slowloris_connect_errors",
                    "slowloris conn. errors",
                    a.slowloris_connect_errors,
                ),
                count("slowloris_bytes", "slowloris bytes", a.slowloris_bytes),
                count("never_read_open", "never-read open", a.never_read_open),
                count(
                    "never_read_closed",
                    "never-read closed",
                    a.never_read_closed,
                ),
                count(
                    "never_read_reconnects",
                    "never-read reopened",
                    a.never_read_reconnects,
                ),
                count(
                    "never_read_connect_errors",
                    "never-read conn. errs",
                    a.never_read_connect_errors,
                ),
                count("never_read_bytes", "never-read bytes", a.never_read_bytes),
                (
                    "attack_ready_ms",
                    "attack ready (ms)",
                    format!("{:.1}", a.ready_ms),
                ),
            ]);
        }
        fields
    }

    /// One JSON object on one line (numbers only, so no escaping).
    pub(super) fn json(&self) -> String {
        let body: Vec<String> = self
            .fields()
            .iter()
            .map(|(key, _, value)| format!("\"{key}\": {value}"))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    pub(super) fn table(&self) -> String {
        self.fields()
            .iter()
            .map(|(_, label, value)| format!("{label:<20} {value}\n"))
            .collect()
    }

    /// Why the run failed, if it did: an echo that did not match, or
    /// nothing echoed at all (`addr` is the server it loaded).
    pub(super) fn failure(&self, addr: std::net::SocketAddr) -> Option<String> {
        if self.mismatches > 0 {
            return Some(format!("{} echoed messages did not match", self.mismatches));
        }
        if self.messages == 0 && self.conns_per_sec.is_none_or(|c| c == 0.0) {
            return Some(format!(
                "no message was echoed by {addr} ({} connect errors)",
                self.connect_errors
            ));
        }
        None
    }
}
