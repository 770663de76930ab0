//! Measurement helpers shared by the benchmarks (`tests/bench_*.rs`): a process' memory and CPU
//! from `/proc`, and sums over a Prometheus text exposition.

/// A numeric field of `/proc/<pid>/status`: `VmRSS`, `VmHWM` (in kB), `Threads`.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// User + system CPU time of `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process alive");
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// Sum of every series of `name` in a Prometheus exposition.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    metric_sum_where(text, name, |_| true)
}

/// Sum of the series of `name` whose label set (the text between the braces, empty when
/// there is none) satisfies `keep`.
pub fn metric_sum_where(text: &str, name: &str, keep: impl Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                let (labels, value) = r.rsplit_once('}')?;
                (labels, value)
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                return None;
            };
            // The value, then an optional timestamp.
            let value = value.split_whitespace().next()?.parse::<f64>().ok()?;
            keep(labels).then_some(value)
        })
        .fold(0.0, |sum, v| sum + v)
}
