//! Times on the command line, written as `tc` writes them.

use std::time::Duration;

/// Reads a time as `tc` writes one: a number and `ns`, `us`, `ms` or `s`.
pub(crate) fn parse_duration(text: &str) -> qsock::Result<Duration> {
    let bad = || {
        qsock::Error::invalid(format!(
            "cannot read the time {text:?}: write a number and a unit, e.g. 1ms, 500us or 100000ns"
        ))
    };
    let s = text.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let nanos_per_unit = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return Err(bad()),
    };
    let nanos = value * nanos_per_unit;
    if !nanos.is_finite() || !(1.0..=u64::MAX as f64).contains(&nanos) {
        return Err(bad());
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}
