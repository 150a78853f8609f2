//! The JSON record of a measured run, which the book reads.

use std::path::Path;

use super::NumbersReport;
use crate::Result;

/// Today's date (UTC) as `YYYY-MM-DD`, for the record of a measured run.
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The processor, for the record of a measurement: its model name (Linux's
/// `/proc/cpuinfo`, else "unknown") and the cores this process may use.
pub fn cpu_description() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} cores")
}

/// Writes a number run's report as JSON to `path`, with the command that
/// produced it, today's date, the CPU (as `addmul bench` records it), the core count, the one-minute load
/// average (Linux), so that a reader can tell how busy the machine was, and
/// `config` ([`super::numbers_config`]: everything that decides the result;
/// the data's hash is in the report).
///
/// # Errors
/// [`crate::Error::Io`] if the file cannot be written.
pub fn write_numbers_record(
    report: &NumbersReport,
    config: &serde_json::Value,
    command: &str,
    path: &Path,
) -> Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse::<f64>().ok()));
    let record = serde_json::json!({
        "command": command,
        "date": utc_date(),
        "cpu": cpu_description(),
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "load_average": load,
        "config": config,
        "report": report,
    });
    let text = serde_json::to_string_pretty(&record).expect("the report serialises") + "\n";
    Ok(addmul_gpt::checkpoint::write_atomically(path, text.as_bytes())?)
}
