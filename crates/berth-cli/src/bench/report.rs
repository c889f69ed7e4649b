//! The results of a run, as a table or one line of JSON.

use std::collections::BTreeMap;

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
    /// The same by the kind of their error (`AddrInUse`, `TimedOut`...).
    pub(super) connect_errors_by_kind: BTreeMap<String, u64>,
    /// Connects dialled again from the next local address and port, as
    /// the one chosen was taken.
    pub(super) connect_retries: u64,
    pub(super) connect_retries_by_kind: BTreeMap<String, u64>,
    pub(super) closes: u64,
    pub(super) conns_per_sec: Option<f64>,
    /// What the attackers did, if the run had any.
    pub(super) attack: Option<AttackReport>,
}

impl Report {
    /// Every figure the report prints: JSON key, table label, value.
    fn fields(&self) -> Vec<(&'static str, &'static str, Value<'_>)> {
        let msgs_per_sec = self.messages as f64 / self.secs;
        let q = |p: f64| Value::Number(self.hist.value_at_quantile(p).to_string());
        let count = |key, label, n: u64| (key, label, Value::Number(n.to_string()));
        let mut fields = vec![
            count("messages", "messages", self.messages),
            (
                "msgs_per_sec",
                "messages/s",
                Value::Number(format!("{msgs_per_sec:.1}")),
            ),
            (
                "mb_per_sec",
                "MB/s",
                Value::Number(format!("{:.3}", msgs_per_sec * self.size as f64 / 1e6)),
            ),
            ("p50_us", "latency p50 (µs)", q(0.5)),
            ("p99_us", "latency p99 (µs)", q(0.99)),
            ("p999_us", "latency p99.9 (µs)", q(0.999)),
            count("max_us", "latency max (µs)", self.hist.max()),
            count("mismatches", "mismatches", self.mismatches),
            count("connect_errors", "connect errors", self.connect_errors),
            (
                "connect_errors_by_kind",
                "  by kind",
                Value::ByKind(&self.connect_errors_by_kind),
            ),
            count("connect_retries", "connect retries", self.connect_retries),
            (
                "connect_retries_by_kind",
                "  by kind",
                Value::ByKind(&self.connect_retries_by_kind),
            ),
            count("closes", "unexpected closes", self.closes),
        ];
        if let Some(c) = self.conns_per_sec {
            fields.push((
                "conns_per_sec",
                "connections/s",
                Value::Number(format!("{c:.1}")),
            ));
        }
        if let Some(a) = &self.attack {
            fields.extend([
                count("slowloris_open", "slowloris open", a.slowloris.open),
                count("slowloris_closed", "slowloris closed", a.slowloris.closed),
                count(
                    "slowloris_reconnects",
                    "slowloris reopened",
                    a.slowloris.reconnects,
                ),
                count(
                    "slowloris_connect_errors",
                    "slowloris conn. errors",
                    a.slowloris.connect_errors,
                ),
                count("slowloris_bytes", "slowloris bytes", a.slowloris.bytes),
                count("never_read_open", "never-read open", a.never_read.open),
                count(
                    "never_read_closed",
                    "never-read closed",
                    a.never_read.closed,
                ),
                count(
                    "never_read_reconnects",
                    "never-read reopened",
                    a.never_read.reconnects,
                ),
                count(
                    "never_read_connect_errors",
                    "never-read conn. errs",
                    a.never_read.connect_errors,
                ),
                count("never_read_bytes", "never-read bytes", a.never_read.bytes),
                (
                    "attack_ready_ms",
                    "attack ready (ms)",
                    Value::Number(format!("{:.1}", a.ready_ms)),
                ),
            ]);
        }
        fields
    }

    /// One JSON object on one line.
    pub(super) fn json(&self) -> String {
        let body: Vec<String> = self
            .fields()
            .iter()
            .map(|(key, _, value)| format!("\"{key}\": {}", value.json()))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    pub(super) fn table(&self) -> String {
        self.fields()
            .iter()
            .map(|(_, label, value)| format!("{label:<20} {}\n", value.text()))
            .collect()
    }

    /// Why the run failed, if it did: an echo that did not match, or
    /// nothing echoed at all (`addr` is the server it loaded).
    pub(super) fn failure(&self, addr: std::net::SocketAddr) -> Option<String> {
        if self.mismatches > 0 {
            return Some(format!("{} echoed messages did not match", self.mismatches));
        }
        if self.messages == 0 && self.conns_per_sec.is_none_or(|c| c == 0.0) {
            let kinds = Value::ByKind(&self.connect_errors_by_kind);
            let kinds = if self.connect_errors_by_kind.is_empty() {
                String::new()
            } else {
                format!(": {}", kinds.text())
            };
            return Some(format!(
                "no message was echoed by {addr} ({} connect errors{kinds})",
                self.connect_errors
            ));
        }
        None
    }
}

/// A figure of the report.
enum Value<'a> {
    /// A number, formatted.
    Number(String),
    /// Counts by the kind of an error.
    ByKind(&'a BTreeMap<String, u64>),
}

impl Value<'_> {
    /// As JSON: the number, or an object of counts by kind (kind names are
    /// identifiers, so nothing needs escaping).
    fn json(&self) -> String {
        match self {
            Value::Number(n) => n.clone(),
            Value::ByKind(kinds) => {
                let body: Vec<String> =
                    kinds.iter().map(|(k, n)| format!("\"{k}\": {n}")).collect();
                format!("{{{}}}", body.join(", "))
            }
        }
    }

    /// As text: the number, or `Kind N, Kind N` (`none` if there are none).
    fn text(&self) -> String {
        match self {
            Value::Number(n) => n.clone(),
            Value::ByKind(kinds) if kinds.is_empty() => "none".to_owned(),
            Value::ByKind(kinds) => {
                let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                parts.join(", ")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Report;
    use hdrhistogram::Histogram;

    fn report(kinds: &[(&str, u64)]) -> Report {
        Report {
            messages: 0,
            secs: 1.0,
            size: 64,
            hist: Histogram::new(3).unwrap(),
            mismatches: 0,
            connect_errors: kinds.iter().map(|(_, n)| n).sum(),
            connect_errors_by_kind: kinds.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            connect_retries: 0,
            connect_retries_by_kind: Default::default(),
            closes: 0,
            conns_per_sec: None,
            attack: None,
        }
    }

    #[test]
    fn connect_errors_are_reported_by_kind_in_json_text_and_failure() {
        let r = report(&[("ConnectionRefused", 2), ("AddrInUse", 1)]);
        let json = r.json();
        assert!(
            json.contains(
                r#""connect_errors": 3, "connect_errors_by_kind": {"AddrInUse": 1, "ConnectionRefused": 2}, "#
            ),
            "{json}"
        );
        assert!(
            r.table()
                .contains("  by kind            AddrInUse 1, ConnectionRefused 2\n"),
            "{}",
            r.table()
        );
        let why = r.failure("127.0.0.1:1".parse().unwrap()).unwrap();
        assert!(
            why.ends_with("(3 connect errors: AddrInUse 1, ConnectionRefused 2)"),
            "{why}"
        );

        let r = report(&[]);
        assert!(r.json().contains(r#""connect_errors_by_kind": {}, "#));
        assert!(r.table().contains("  by kind            none\n"));
        let why = r.failure("127.0.0.1:1".parse().unwrap()).unwrap();
        assert!(why.ends_with("(0 connect errors)"), "{why}");
    }
}
