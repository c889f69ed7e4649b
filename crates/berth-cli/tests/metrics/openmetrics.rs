//! A strict reader of the OpenMetrics 1.0 text format, for the tests: it
//! refuses what a lenient scraper would let through, so an exposition it
//! accepts is one Prometheus accepts.
//!
//! Checked: every line ends with LF and is a `# HELP`, `# TYPE`, `# UNIT`
//! or a sample, and the last is `# EOF`; names and label names are valid,
//! label values correctly quoted and escaped, with no label repeated;
//! every family declares its TYPE, each of its metadata lines at most once
//! and before its samples, and appears once (its samples together); a
//! unit is the family name's suffix; sample names are the family's name
//! with its type's suffix (`_total` for counters, `_info` for infos, none
//! for gauges); no two samples of a family share a name and label set;
//! values are floats, counters non-negative, infos exactly 1.

use std::collections::HashSet;

/// A parsed exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

/// One metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: Option<String>,
    pub unit: Option<String>,
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Exposition {
    /// The value of the sample `name` with exactly the labels `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(&str, &str)> = labels.to_vec();
        want.sort_unstable();
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .find(|s| {
                let mut have: Vec<(&str, &str)> = (s.labels.iter())
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                have.sort_unstable();
                s.name == name && have == want
            })
            .map(|s| s.value)
    }

    /// The family named `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}

/// Parse `text` strictly; the error names the line.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the exposition does not end with \"# EOF\\n\"")?;
    let mut families: Vec<Family> = Vec::new();
    let mut seen_names = HashSet::new();
    let mut seen_series = HashSet::new();
    for (i, line) in body.split_inclusive('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        let line = line
            .strip_suffix('\n')
            .ok_or_else(|| at("no LF at the end".into()))?;
        if let Some(meta) = line.strip_prefix("# ") {
            let (keyword, rest) = meta
                .split_once(' ')
                .ok_or_else(|| at("bad metadata".into()))?;
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            check_name(name).map_err(at)?;
            let current = families.last().filter(|f| f.name == name);
            let family = match current {
                Some(f) if !f.samples.is_empty() => {
                    return Err(at("metadata after the family's samples".into()));
                }
                Some(_) => families.last_mut().unwrap(),
                None => {
                    if !seen_names.insert(name.to_owned()) {
                        return Err(at(format!("family {name} appears twice")));
                    }
                    families.push(Family {
                        name: name.to_owned(),
                        kind: String::new(),
                        help: None,
                        unit: None,
                        samples: Vec::new(),
                    });
                    families.last_mut().unwrap()
                }
            };
            match keyword {
                "HELP" if family.help.is_none() => {
                    check_escapes(arg).map_err(at)?;
                    family.help = Some(arg.to_owned());
                }
                "TYPE" if family.kind.is_empty() => {
                    const TYPES: [&str; 8] = [
                        "counter",
                        "gauge",
                        "info",
                        "stateset",
                        "histogram",
                        "gaugehistogram",
                        "summary",
                        "unknown",
                    ];
                    if !TYPES.contains(&arg) {
                        return Err(at(format!("unknown type {arg:?}")));
                    }
                    family.kind = arg.to_owned();
                }
                "UNIT" if family.unit.is_none() => {
                    if arg.is_empty() || !name.ends_with(&format!("_{arg}")) {
                        return Err(at(format!("unit {arg:?} is not the name's suffix")));
                    }
                    family.unit = Some(arg.to_owned());
                }
                _ => return Err(at(format!("unexpected or repeated {keyword}"))),
            }
            continue;
        }
        let sample = sample(line).map_err(at)?;
        let family = families
            .last_mut()
            .ok_or_else(|| at("a sample before any TYPE".into()))?;
        if family.kind.is_empty() {
            return Err(at(format!("family {} has no TYPE", family.name)));
        }
        let suffix = sample
            .name
            .strip_prefix(family.name.as_str())
            .ok_or_else(|| at(format!("sample outside family {}", family.name)))?;
        let allowed: &[&str] = match family.kind.as_str() {
            "counter" => &["_total", "_created"],
            "gauge" | "unknown" => &[""],
            "info" => &["_info"],
            kind => return Err(at(format!("this reader does not take {kind} samples"))),
        };
        if !allowed.contains(&suffix) {
            return Err(at(format!("sample name wrong for a {}", family.kind)));
        }
        let ok = match (family.kind.as_str(), suffix) {
            ("counter", "_total") => sample.value >= 0.0,
            ("info", _) => sample.value == 1.0,
            _ => true,
        };
        if !ok {
            return Err(at(format!(
                "value {} invalid for a {}",
                sample.value, family.kind
            )));
        }
        let mut key = sample.labels.clone();
        key.sort();
        if !seen_series.insert((sample.name.clone(), key)) {
            return Err(at("a repeated series".into()));
        }
        family.samples.push(sample);
    }
    if let Some(f) = families.iter().find(|f| f.kind.is_empty()) {
        return Err(format!("family {} has no TYPE", f.name));
    }
    Ok(Exposition { families })
}

/// `name{labels} value [timestamp]`, single spaces.
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        if let Some(r) = rest.strip_prefix('}') {
            rest = r;
        } else {
            loop {
                let eq = rest.find('=').ok_or("label without '='")?;
                let label = &rest[..eq];
                check_label_name(label)?;
                let (value, r) = quoted(&rest[eq + 1..])?;
                if labels.iter().any(|(k, _)| k == label) {
                    return Err(format!("label {label} repeated"));
                }
                labels.push((label.to_owned(), value));
                if let Some(r) = r.strip_prefix(',') {
                    rest = r;
                } else {
                    rest = r.strip_prefix('}').ok_or("labels not closed by '}'")?;
                    break;
                }
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or("no single space before the value")?;
    let mut parts = rest.split(' ');
    let value = parts.next().unwrap_or_default();
    let value = number(value).ok_or_else(|| format!("value {value:?} is not a number"))?;
    if let Some(ts) = parts.next() {
        number(ts).ok_or_else(|| format!("timestamp {ts:?} is not a number"))?;
    }
    if parts.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A quoted label value at the start of `s`: its unescaped text and the rest.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let s = s.strip_prefix('"').ok_or("label value not quoted")?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("bad escape {other:?} in a label value")),
            },
            '\n' => return Err("raw newline in a label value".into()),
            c => out.push(c),
        }
    }
    Err("label value not closed".into())
}

/// Escapes in HELP text: `\\`, `\n` and `\"` only.
fn check_escapes(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n' | '"')) {
            return Err("bad escape in HELP".into());
        }
    }
    Ok(())
}

/// A float as OpenMetrics writes one: decimal or exponent notation, or
/// `+Inf`, `-Inf`, `NaN` (any case), with no spaces.
fn number(s: &str) -> Option<f64> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b));
    let special = ["+inf", "-inf", "inf", "+infinity", "-infinity", "nan"]
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w));
    if s.is_empty() || !(ok_chars || special) {
        return None;
    }
    s.parse().ok()
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn check_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
fn check_label_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!("invalid label name {name:?}"))
    }
}

/// The reader itself refuses what it should.
#[test]
fn the_strict_reader_accepts_good_and_refuses_bad_expositions() {
    let good = "# HELP a_bytes Help \\\"quoted\\\".\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\n\
                a_bytes_total{x=\"1\",y=\"a\\\\b\\\"c\\nd\"} 3\na_bytes_total{x=\"2\"} 0 1700000000\n\
                # TYPE g gauge\ng -1.5e3\n# TYPE i info\ni_info{v=\"1\"} 1\n# EOF\n";
    let e = parse(good).unwrap();
    assert_eq!(
        e.get("a_bytes_total", &[("y", "a\\b\"c\nd"), ("x", "1")]),
        Some(3.0)
    );
    assert_eq!(e.get("g", &[]), Some(-1500.0));
    assert_eq!(e.family("i").unwrap().kind, "info");
    assert_eq!(parse("# EOF\n").unwrap().families.len(), 0);
    for (why, bad) in [
        ("no EOF", "# TYPE g gauge\ng 1\n"),
        ("after EOF", "# TYPE g gauge\ng 1\n# EOF\n\n"),
        ("CR", "# TYPE g gauge\ng 1\r\n# EOF\n"),
        ("no TYPE", "g 1\n# EOF\n"),
        ("HELP only", "# HELP g h\ng 1\n# EOF\n"),
        ("two spaces", "# TYPE g gauge\ng  1\n# EOF\n"),
        ("trailing space", "# TYPE g gauge\ng 1 \n# EOF\n"),
        ("not a number", "# TYPE g gauge\ng one\n# EOF\n"),
        ("not decimal", "# TYPE g gauge\ng 0x10\n# EOF\n"),
        (
            "TYPE after samples",
            "# TYPE g gauge\ng 1\n# TYPE g gauge\n# EOF\n",
        ),
        (
            "TYPE twice",
            "# TYPE g gauge\n# TYPE g counter\ng 1\n# EOF\n",
        ),
        ("repeated series", "# TYPE g gauge\ng 1\ng 2\n# EOF\n"),
        (
            "reopened",
            "# TYPE g gauge\ng 1\n# TYPE h gauge\nh 1\n# TYPE g gauge\n# EOF\n",
        ),
        ("counter without _total", "# TYPE c counter\nc 1\n# EOF\n"),
        ("negative counter", "# TYPE c counter\nc_total -1\n# EOF\n"),
        ("gauge with a suffix", "# TYPE g gauge\ng_total 1\n# EOF\n"),
        ("another family's sample", "# TYPE g gauge\nh 1\n# EOF\n"),
        ("info not 1", "# TYPE i info\ni_info 2\n# EOF\n"),
        (
            "unit not the suffix",
            "# TYPE g gauge\n# UNIT g bytes\ng 1\n# EOF\n",
        ),
        ("unknown type", "# TYPE g flavour\ng 1\n# EOF\n"),
        ("bad name", "# TYPE 1g gauge\n1g 1\n# EOF\n"),
        ("bad label name", "# TYPE g gauge\ng{1x=\"a\"} 1\n# EOF\n"),
        ("unquoted", "# TYPE g gauge\ng{x=a} 1\n# EOF\n"),
        ("bad escape", "# TYPE g gauge\ng{x=\"a\\t\"} 1\n# EOF\n"),
        (
            "repeated label",
            "# TYPE g gauge\ng{x=\"a\",x=\"b\"} 1\n# EOF\n",
        ),
        ("trailing comma", "# TYPE g gauge\ng{x=\"a\",} 1\n# EOF\n"),
        ("not closed", "# TYPE g gauge\ng{x=\"a\" 1\n# EOF\n"),
        ("unknown keyword", "# FOO g x\n# EOF\n"),
    ] {
        assert!(parse(bad).is_err(), "accepted ({why}): {bad:?}");
    }
}
