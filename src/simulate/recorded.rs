//! The recorded data a replay reads, by trigger or gate name: a Prometheus range query for every
//! PromQL trigger and gate (what its instant query would have answered at each step), and a CSV
//! for what Liftoff reads elsewhere (Kafka lag, PostgreSQL connections, Redis memory, the
//! metrics API) or to replace a query's answers.
//!
//! # The CSV
//! A header `time,<name>,<name>…` naming triggers or gates of the policy, then one row per
//! time: RFC 3339 (`2026-11-27T14:00:00Z`) or seconds since the epoch. A cell holds the value in
//! the trigger's unit (percent for `cpu` and `redisMemory`, a count for `kafkaLag` and
//! `databaseConnections`), `unknown` for a source that could not be read then, or nothing. At a
//! step, a column reads its latest value at most five minutes old (Prometheus' lookback); with
//! none, the query "returned no series".

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use crate::sources::prometheus::{Client, QueryError, range::MAX_POINTS, range::RangeAnswer};

/// How far back a CSV value is still current (Prometheus' default lookback delta).
const LOOKBACK_SECS: i64 = 300;

/// What a trigger's or gate's source answered at one step.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Value(f64),
    /// The query returned no series (a gate's `onNoData` decides what it means).
    NoSeries,
    /// The source could not be read, and why.
    Failed(String),
}

/// Where one name's answers come from.
#[derive(Clone, Debug)]
enum Track {
    Prometheus(RangeAnswer),
    /// Values by time in seconds; `None` is a recorded outage.
    Csv(BTreeMap<i64, Option<f64>>),
    /// Nothing recorded for it, and why: every step is unknown.
    Missing(String),
}

/// The recorded answers of every trigger and gate of a policy.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    tracks: BTreeMap<String, Track>,
    /// Where each name's answers come from, for the report.
    origins: BTreeMap<String, String>,
}

/// One trigger or gate to record: its name and its PromQL query, if it has one.
pub struct Wanted<'a> {
    pub name: &'a str,
    pub query: Option<String>,
}

/// The window replayed: every `step` seconds from `from` to `to`, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub step: i64,
}

impl Window {
    /// Every step's time, in seconds.
    pub fn times(&self) -> impl Iterator<Item = i64> + use<> {
        let Window { from, to, step } = *self;
        (0..)
            .map(move |k: i64| from.saturating_add(k.saturating_mul(step)))
            .take_while(move |t| *t <= to)
    }
}

impl Recording {
    /// Records every wanted name: from the CSV's column with its name, else from Prometheus.
    /// Fails when Prometheus cannot be read at all (a replay of an outage it did not have would
    /// mislead), or when a CSV column names nothing of the policy.
    pub async fn load(
        wanted: &[Wanted<'_>],
        csv: Option<&str>,
        prometheus: Option<&Client>,
        window: Window,
    ) -> Result<Recording, String> {
        let mut columns = match csv {
            Some(text) => parse_csv(text)?,
            None => BTreeMap::new(),
        };
        let mut recording = Recording::default();
        for w in wanted {
            let (track, origin) = match (columns.remove(w.name), &w.query, prometheus) {
                (Some(values), _, _) => (Track::Csv(values), format!("CSV column {:?}", w.name)),
                (None, Some(query), Some(client)) => (
                    fetch(client, query, window).await?,
                    format!("Prometheus {}", client.address()),
                ),
                (None, Some(_), None) => missing("its query needs --prometheus, or a CSV column"),
                (None, None, _) => missing(&format!(
                    "it is not read from Prometheus: give its values in a --data CSV column {:?}",
                    w.name
                )),
            };
            recording.tracks.insert(w.name.to_string(), track);
            recording.origins.insert(w.name.to_string(), origin);
        }
        if let Some(stray) = columns.keys().next() {
            return Err(format!(
                "the CSV column {stray:?} names no trigger or gate of the policy"
            ));
        }
        Ok(recording)
    }

    /// Where `name`'s answers come from: `Prometheus http://…`, `CSV column "lag"`, `nothing`.
    pub fn origin(&self, name: &str) -> &str {
        self.origins.get(name).map_or("nothing", String::as_str)
    }

    /// What `name`'s source answered at `at` (seconds).
    pub fn at(&self, name: &str, at: i64) -> Answer {
        match self.tracks.get(name) {
            None => Answer::Failed("nothing recorded".into()),
            Some(Track::Missing(why)) => Answer::Failed(why.clone()),
            Some(Track::Prometheus(answer)) => match answer.at(at.saturating_mul(1000)) {
                Ok(v) => Answer::Value(v),
                Err(QueryError::NoSeries) => Answer::NoSeries,
                Err(e) => Answer::Failed(e.to_string()),
            },
            Some(Track::Csv(values)) => match values.range(..=at).next_back() {
                Some((t, _)) if at - t > LOOKBACK_SECS => Answer::NoSeries,
                Some((_, Some(v))) => Answer::Value(*v),
                Some((_, None)) => Answer::Failed("recorded as unknown in the CSV".into()),
                None => Answer::NoSeries,
            },
        }
    }
}

fn missing(why: &str) -> (Track, String) {
    (Track::Missing(why.to_string()), "nothing".into())
}

/// The range query of `query` over the window, in chunks Prometheus accepts. A query Prometheus
/// rejects is recorded as failing at every step (the operator's instant query failed the same
/// way); a server that cannot be reached fails the replay.
async fn fetch(client: &Client, query: &str, window: Window) -> Result<Track, String> {
    let mut answer = RangeAnswer::default();
    let mut start = window.from;
    while start <= window.to {
        let end = window
            .to
            .min(start.saturating_add(window.step.saturating_mul(MAX_POINTS - 1)));
        let step = u64::try_from(window.step).unwrap_or(1);
        match client.query_range(query, start, end, step).await {
            Ok(chunk) => answer.extend(chunk),
            // The query itself is refused (Prometheus answers 400 or 422 for a query it cannot
            // parse or run): the operator's instant query failed the same way at every step.
            Err(
                e @ (QueryError::Rejected { .. }
                | QueryError::Http {
                    status: 400 | 422, ..
                }),
            ) => {
                return Ok(Track::Missing(e.to_string()));
            }
            Err(e) => return Err(format!("reading {query:?}: {e}")),
        }
        start = end.saturating_add(window.step);
    }
    Ok(Track::Prometheus(answer))
}

/// The CSV's columns by header name: each row's value by time.
fn parse_csv(text: &str) -> Result<BTreeMap<String, BTreeMap<i64, Option<f64>>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("the CSV's header: {e}"))?
        .clone();
    if headers.get(0) != Some("time") || headers.len() < 2 {
        return Err("the CSV's header must be `time,<trigger or gate name>,…`".into());
    }
    // Every column is checked against the policy, even one without a value.
    let mut columns: BTreeMap<String, BTreeMap<i64, Option<f64>>> = BTreeMap::new();
    for name in headers.iter().skip(1) {
        if columns.insert(name.to_string(), BTreeMap::new()).is_some() {
            return Err(format!("the CSV has two columns named {name:?}"));
        }
    }
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| format!("CSV line {line}: {e}"))?;
        let at = parse_time(row.get(0).unwrap_or_default())
            .map_err(|e| format!("CSV line {line}: {e}"))?;
        for (name, cell) in headers.iter().zip(row.iter()).skip(1) {
            let value = match cell {
                "" => continue,
                "unknown" => None,
                number => Some(
                    number
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| {
                            format!(
                                "CSV line {line}, column {name:?}: {number:?} is not a number \
                                 (write `unknown` for a source that could not be read)"
                            )
                        })?,
                ),
            };
            columns
                .entry(name.to_string())
                .or_default()
                .insert(at, value);
        }
    }
    Ok(columns)
}

/// A time as RFC 3339 or as seconds since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Timestamp::from_second(seconds)
            .map(|t| t.as_second())
            .map_err(|e| format!("{text:?} is not a time: {e}"));
    }
    text.parse::<Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| {
            format!(
                "{text:?} is not a time: write RFC 3339 (2026-11-27T14:00:00Z) or epoch seconds"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(csv: &str, names: &[&str]) -> Result<Recording, String> {
        let wanted: Vec<Wanted> = names
            .iter()
            .map(|name| Wanted { name, query: None })
            .collect();
        let window = Window {
            from: 0,
            to: 600,
            step: 15,
        };
        futures::executor::block_on(Recording::load(&wanted, Some(csv), None, window))
    }

    #[test]
    fn a_csv_column_reads_its_latest_value_within_the_lookback() {
        let r = recording(
            "time,lag,db\n100,10,\n1970-01-01T00:02:00Z,unknown,5\n130,40000,\n",
            &["lag", "db"],
        )
        .unwrap();
        assert_eq!(r.at("lag", 99), Answer::NoSeries);
        assert_eq!(r.at("lag", 100), Answer::Value(10.0));
        assert!(matches!(r.at("lag", 125), Answer::Failed(_)));
        assert_eq!(r.at("lag", 130 + 300), Answer::Value(40000.0));
        assert_eq!(r.at("lag", 130 + 301), Answer::NoSeries);
        assert_eq!(r.at("db", 100), Answer::NoSeries);
        assert_eq!(r.at("db", 121), Answer::Value(5.0));
    }

    #[test]
    fn a_csv_that_does_not_fit_the_policy_is_refused_with_the_fix() {
        let stray = recording("time,lagg\n100,1\n", &["lag"]).unwrap_err();
        assert!(
            stray.contains("\"lagg\" names no trigger or gate"),
            "{stray}"
        );
        let bad = recording("time,lag\n100,lots\n", &["lag"]).unwrap_err();
        assert!(bad.contains("line 2") && bad.contains("`unknown`"), "{bad}");
        let when = recording("time,lag\nyesterday,1\n", &["lag"]).unwrap_err();
        assert!(when.contains("RFC 3339"), "{when}");
        let empty = recording("time,lag,lagg\n100,1,\n", &["lag"]).unwrap_err();
        assert!(empty.contains("\"lagg\" names no trigger"), "{empty}");
        let twice = recording("time,lag,lag\n100,1,2\n", &["lag"]).unwrap_err();
        assert!(twice.contains("two columns"), "{twice}");
        let header = recording("when,lag\n1,1\n", &["lag"]).unwrap_err();
        assert!(header.contains("time,<trigger or gate name>"), "{header}");
    }

    #[test]
    fn a_name_with_nothing_recorded_is_unknown_at_every_step() {
        let r = recording("time,db\n1,1\n", &["db", "lag"]).unwrap();
        assert!(matches!(r.at("lag", 1), Answer::Failed(why) if why.contains("--data")));
    }
}
