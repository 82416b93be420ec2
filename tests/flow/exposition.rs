//! A strict reader of the Prometheus text format (0.0.4), for the tests of
//! `/metrics`: every line must be a `# HELP`, a `# TYPE` or a sample of the
//! family its `# TYPE` announced; families are contiguous and typed once;
//! counters end in `_total`; a histogram's buckets are cumulative, end at
//! `+Inf`, and the `+Inf` bucket is its `_count`. Anything else panics
//! with the offending line.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → its type.
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the one sample `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == wanted)
            .collect();
        assert!(found.len() <= 1, "{name} {wanted:?} appears twice");
        found.first().map(|s| s.value)
    }

    /// Every metric name a query may use: families and their samples'
    /// names (`_bucket`, `_sum`, `_count` of histograms).
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.types
            .keys()
            .cloned()
            .chain(self.samples.iter().map(|s| s.name.clone()))
            .collect()
    }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(text: &str) -> bool {
    is_name(text) && !text.contains(':')
}

fn parse_value(text: &str, line: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("not a value: `{text}` in `{line}`")),
    }
}

/// `{a="x",b="y"}` (the braces included) and what follows it.
fn parse_labels<'a>(text: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').unwrap();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in `{line}`"));
        assert!(is_label_name(name), "bad label name `{name}` in `{line}`");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in `{line}`"),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => panic!("unterminated label value in `{line}`"),
                Some((_, c)) => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label `{name}` twice in `{line}`"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The family a sample belongs to, given its type's suffixes.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return base;
            }
        }
    }
    panic!("sample `{name}` has no # TYPE before it")
}

/// Parses `text`, panicking at the first line that breaks the format.
pub fn parse(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut out = Exposition::default();
    let mut current: Option<String> = None;
    let mut finished: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, _) = help.split_once(' ').unwrap_or((help, ""));
            assert!(is_name(name), "bad name in `{line}`");
            continue;
        }
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let (name, kind) = typed
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad `{line}`"));
            assert!(is_name(name), "bad name in `{line}`");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in `{line}`"
            );
            assert!(
                out.types
                    .insert(name.to_string(), kind.to_string())
                    .is_none(),
                "{name} typed twice"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} ends in _total");
            }
            if let Some(previous) = current.replace(name.to_string()) {
                finished.push(previous);
            }
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment `{line}`");
        assert!(!line.is_empty(), "empty line");
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        assert!(is_name(name), "bad sample name in `{line}`");
        let (labels, rest) = match line[name_end..].starts_with('{') {
            true => parse_labels(&line[name_end..], line),
            false => (BTreeMap::new(), &line[name_end..]),
        };
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no value in `{line}`"));
        // An optional timestamp may follow the value.
        let value = value.split(' ').next().unwrap();
        let family = family_of(name, &out.types);
        assert_eq!(
            current.as_deref(),
            Some(family),
            "`{line}` is outside its family's block"
        );
        assert!(!finished.iter().any(|f| f == family), "{family} split up");
        out.samples.push(Sample {
            name: name.to_string(),
            labels,
            value: parse_value(value, line),
        });
    }
    check_histograms(&out);
    out
}

/// Buckets cumulative and ending at `+Inf`, which equals `_count`.
fn check_histograms(out: &Exposition) {
    for (family, kind) in &out.types {
        if kind != "histogram" {
            continue;
        }
        // Labels but `le` → (le, count) of each bucket.
        type Buckets = Vec<(f64, f64)>;
        let mut series: BTreeMap<Vec<(String, String)>, Buckets> = BTreeMap::new();
        for s in out
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut labels = s.labels.clone();
            let le = labels.remove("le").expect("a bucket has `le`");
            let le = parse_value(&le, &s.name);
            series
                .entry(labels.into_iter().collect())
                .or_default()
                .push((le, s.value));
        }
        for (labels, buckets) in series {
            assert!(buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
            let (last_le, last) = *buckets.last().unwrap();
            assert_eq!(last_le, f64::INFINITY, "{family} ends at +Inf");
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                out.value(&format!("{family}_count"), &labels),
                Some(last),
                "{family}: +Inf bucket is the count"
            );
        }
    }
}

#[test]
fn the_reader_refuses_what_the_format_does_not_allow() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n";
    assert_eq!(parse(ok).value("a_total", &[("x", "1\"")]), Some(3.0));
    for bad in [
        "a_total 1\n",                                // no TYPE
        "# TYPE a_total counter\na_total{x=\"1} 1\n", // unterminated
        "# TYPE a counter\na 1\n",                    // counter without _total
        "# TYPE a gauge\na\n",                        // no value
        "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n", // split family
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}
