//! A replay as text: what was read, then every decision in order with its time, offset from the
//! start of the window, and the operator's reason.

use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;

use super::replay::{Replay, Trace};

/// `+1h05m00s`: the time since the window's start.
pub fn offset(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("+{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
}

fn time(at: i64) -> String {
    Timestamp::from_second(at).map_or_else(|_| at.to_string(), |t| t.to_string())
}

/// The report `liftoff simulate` prints.
pub fn text(policy: &str, replay: &Replay) -> String {
    let mut out = String::new();
    let steps = (replay.to - replay.from) / replay.step.max(1) + 1;
    let _ = writeln!(
        out,
        "Replay of {policy} from {} to {} every {}s ({steps} steps)",
        time(replay.from),
        time(replay.to),
        replay.step
    );
    let _ = writeln!(out, "\nRead:");
    for trace in replay.triggers.iter().chain(&replay.gates) {
        let _ = writeln!(out, "  {}", read_line(trace));
    }
    let _ = writeln!(out, "\nDecisions:");
    if replay.decisions.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let width = replay
        .decisions
        .iter()
        .map(|d| d.subject.len())
        .max()
        .unwrap_or(0);
    for d in &replay.decisions {
        let _ = writeln!(
            out,
            "  {} {}  {:width$}  {} {}: {}",
            offset(d.at - replay.from),
            time(d.at),
            d.subject,
            d.kind,
            d.detail,
            d.why,
        );
    }
    if let (Some(phase), Some(message)) = (&replay.phase, &replay.message) {
        let _ = writeln!(out, "\nRollout at the end: {phase}. {message}");
    }
    out
}

/// `api-cpu (cpu, threshold 70): Prometheus http://…; 1441 readings, 2 unknown, peak 152`
fn read_line(trace: &Trace) -> String {
    let bounds = match (trace.lower, trace.upper, trace.kind.as_str()) {
        (None, Some(max), "gate") => format!("max {}", figure(max)),
        (Some(min), None, _) => format!("min {}", figure(min)),
        (Some(min), Some(max), _) => format!("min {}, max {}", figure(min), figure(max)),
        (None, Some(threshold), _) => format!("threshold {}", figure(threshold)),
        (None, None, _) => "no bound".into(),
    };
    let known: Vec<f64> = trace.points.iter().filter_map(|(_, v)| *v).collect();
    let unknown = trace.points.len() - known.len();
    let peak = known
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let peak = peak.map_or_else(|| "no value".into(), |p| format!("peak {}", figure(p)));
    format!(
        "{} ({}, {bounds}): {}; {} readings, {unknown} unknown, {peak}",
        trace.name,
        trace.kind,
        trace.origin,
        trace.points.len()
    )
}

/// A value short enough to read and exact enough for a bound like `0.001`: four decimals
/// below 1, two above.
pub fn figure(v: f64) -> String {
    let text = if v.abs() < 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.2}")
    };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" | "" => "0".into(),
        t => t.into(),
    }
}
