//! A replay as an SVG picture: one panel per trigger and gate, its recorded value against its
//! threshold or bounds, with the trigger's actions and the rollout's stage changes marked, and
//! a top panel of the users admitted. Drawn with `plotters`.

use plotters::{
    coord::{
        Shift,
        combinators::{BindKeyPoints, WithKeyPoints},
    },
    prelude::*,
};

use super::{
    output::{figure, offset},
    replay::{Decision, Replay, Trace},
};

const WIDTH: u32 = 1100;
const PANEL_HEIGHT: u32 = 230;
const VALUE: RGBColor = RGBColor(31, 119, 180);
const BOUND: RGBColor = RGBColor(214, 39, 40);
const ACTION: RGBColor = RGBColor(44, 160, 44);
const STAGE: RGBColor = RGBColor(148, 103, 189);

/// The picture, as SVG text.
pub fn svg(policy: &str, replay: &Replay) -> Result<String, String> {
    let mut text = String::new();
    let panels = 1 + replay.triggers.len() + replay.gates.len();
    let height = PANEL_HEIGHT * u32::try_from(panels).unwrap_or(1);
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let areas = root.split_evenly((panels, 1));
        // The rollout's moves; holds and Go requests are in the printed report.
        let stages: Vec<&Decision> = replay
            .decisions
            .iter()
            .filter(|d| d.subject == "rollout" && !d.kind.starts_with("Held"))
            .filter(|d| d.kind != "AwaitingApproval")
            .collect();
        users_panel(&areas[0], policy, replay, &stages)?;
        for (area, trace) in areas[1..]
            .iter()
            .zip(replay.triggers.iter().chain(&replay.gates))
        {
            let actions: Vec<&Decision> = replay
                .decisions
                .iter()
                .filter(|d| d.subject == trace.name)
                .collect();
            value_panel(area, replay, trace, &actions, &stages)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(text)
}

fn drawing<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    format!("drawing the plot: {e}")
}

/// The users admitted over time, as a step line, with the rollout's events marked.
fn users_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    policy: &str,
    replay: &Replay,
    stages: &[&Decision],
) -> Result<(), String> {
    // `All` is drawn above the largest count, and labelled.
    let counts: Vec<f64> = replay
        .users
        .iter()
        .filter_map(|(_, u)| u.parse::<f64>().ok())
        .collect();
    let top = counts.iter().copied().fold(1.0, f64::max) * 1.25;
    let value = |u: &str| u.parse::<f64>().unwrap_or(top / 1.25 * 1.1);
    let mut points = Vec::new();
    for (i, (at, users)) in replay.users.iter().enumerate() {
        if i > 0 {
            points.push((*at, points.last().map_or(0.0, |(_, v)| *v)));
        }
        points.push((*at, value(users)));
    }
    if let Some((_, v)) = points.last().copied() {
        points.push((replay.to, v));
    }
    let caption = format!("{policy}: users admitted");
    let mut chart = frame(area, replay, &caption, 0.0, top)?;
    chart
        .draw_series(LineSeries::new(points, STAGE.stroke_width(2)))
        .map_err(drawing)?
        .label("users")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], STAGE));
    marks(&mut chart, stages, (0.0, top), STAGE, true)?;
    legend(&mut chart)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        WithKeyPoints<plotters::coord::types::RangedCoordi64>,
        plotters::coord::types::RangedCoordf64,
    >,
>;

/// `+2h`, `+1h30m`, `+45s`: a tick's offset from the window's start, in as few words as it takes.
fn tick_label(seconds: i64) -> String {
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("+{s}s"),
        (0, m, 0) => format!("+{m}m"),
        (h, 0, 0) => format!("+{h}h"),
        (h, m, 0) => format!("+{h}h{m:02}m"),
        _ => offset(seconds),
    }
}

/// Ticks at round offsets from the window's start (every 15 min, 2 h, …), at most 12.
fn ticks(from: i64, to: i64) -> Vec<i64> {
    const SPACINGS: [i64; 20] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
        172800, 604800,
    ];
    let span = (to - from).max(1);
    let spacing = SPACINGS
        .into_iter()
        .find(|s| span / s <= 12)
        .unwrap_or(span / 12 + 1);
    (0..=span / spacing).map(|k| from + k * spacing).collect()
}

fn frame<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    replay: &Replay,
    caption: &str,
    low: f64,
    high: f64,
) -> Result<Chart<'a, 'b>, String> {
    let from = replay.from;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (replay.from..replay.to.max(replay.from + 1))
                .with_key_points(ticks(replay.from, replay.to)),
            low..high,
        )
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(5)
        .x_label_formatter(&|x| tick_label(*x - from))
        .y_label_formatter(&|y| figure(*y))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

/// One trigger or gate: its value (gaps where unknown), its bounds, its actions.
fn value_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    replay: &Replay,
    trace: &Trace,
    actions: &[&Decision],
    stages: &[&Decision],
) -> Result<(), String> {
    let known = trace.points.iter().filter_map(|(_, v)| *v);
    let bounds = trace.lower.into_iter().chain(trace.upper);
    let high = known.chain(bounds).fold(0.0, f64::max);
    let high = if high > 0.0 { high * 1.15 } else { 1.0 };
    let caption = match trace.kind.as_str() {
        "gate" => format!("gate {} ({})", trace.name, trace.origin),
        kind => format!("trigger {} ({kind}, {})", trace.name, trace.origin),
    };
    let mut chart = frame(area, replay, &caption, 0.0, high)?;
    // Unknown readings break the line: nothing is drawn where nothing was known.
    let mut segments: Vec<Vec<(i64, f64)>> = vec![Vec::new()];
    for (at, value) in &trace.points {
        match (value, segments.last_mut()) {
            (Some(v), Some(segment)) => segment.push((*at, *v)),
            (None, Some(segment)) if !segment.is_empty() => segments.push(Vec::new()),
            _ => {}
        }
    }
    for (i, segment) in segments.into_iter().filter(|s| !s.is_empty()).enumerate() {
        let series = chart
            .draw_series(LineSeries::new(segment, VALUE.stroke_width(2)))
            .map_err(drawing)?;
        if i == 0 {
            series
                .label(trace.name.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], VALUE));
        }
    }
    for (name, bound) in [("min", trace.lower), ("max", trace.upper)] {
        let Some(bound) = bound else { continue };
        let name = match trace.kind.as_str() {
            "gate" => format!("{name} {}", figure(bound)),
            _ => format!("threshold {}", figure(bound)),
        };
        chart
            .draw_series(LineSeries::new(
                [(replay.from, bound), (replay.to, bound)],
                BOUND.stroke_width(1),
            ))
            .map_err(drawing)?
            .label(name)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BOUND));
    }
    marks(&mut chart, stages, (0.0, high), STAGE.mix(0.3), false)?;
    marks(&mut chart, actions, (0.0, high), ACTION, true)?;
    legend(&mut chart)
}

/// A vertical line at each decision; with `labelled`, a short label beside it on the first of
/// four heights where it does not run into the previous label. A decision with no room keeps
/// its line only (the printed report lists every one).
fn marks<'a, 'b, C: Into<ShapeStyle> + Copy>(
    chart: &mut Chart<'a, 'b>,
    decisions: &[&Decision],
    (low, high): (f64, f64),
    colour: C,
    labelled: bool,
) -> Result<(), String> {
    // A label takes about this share of the window's width.
    let (from, to) = {
        let x = chart.x_range();
        (x.start, x.end)
    };
    let room = (to - from) / 9;
    let mut levels: [Option<i64>; 4] = [None; 4];
    for d in decisions {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(d.at, low), (d.at, high)],
                colour,
            )))
            .map_err(drawing)?;
        let free = levels
            .iter()
            .position(|last| last.is_none_or(|last| d.at - last >= room));
        let Some(level) = free.filter(|_| labelled) else {
            continue;
        };
        levels[level] = Some(d.at);
        let height = low + (high - low) * (0.93 - 0.09 * level as f64);
        chart
            .draw_series(std::iter::once(Text::new(
                short_label(d),
                (d.at, height),
                ("sans-serif", 11),
            )))
            .map_err(drawing)?;
    }
    Ok(())
}

/// ` 2 → 5`, ` gradual`, ` GateFailed`: what a mark stands for, in a word or two.
fn short_label(d: &Decision) -> String {
    match (d.subject.as_str(), d.kind.as_str()) {
        ("rollout", "StageAdvanced") => format!(" {}", d.detail),
        ("rollout", kind) => format!(" {kind}"),
        (_, _) => format!(" {}", d.detail.trim_end_matches(" replicas")),
    }
}

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(drawing)
}
