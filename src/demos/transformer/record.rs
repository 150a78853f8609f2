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
/// `/proc/cpuinfo`, else "unknown"), its family, model and stepping numbers
/// where `/proc/cpuinfo` gives them (virtual machines often show two
/// different processors under one name such as "AMD EPYC"), and the cores
/// this process may use: "AMD EPYC (family 26, model 2, stepping 1), 2 cores".
pub fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    describe_cpu(&info, cores)
}

/// [`cpu_description`] from the text of `/proc/cpuinfo` (its first
/// processor's lines) and a core count.
fn describe_cpu(cpuinfo: &str, cores: usize) -> String {
    let first = cpuinfo.split("\n\n").next().unwrap_or_default();
    let field = |name: &str| {
        first.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let model = field("model name").unwrap_or_else(|| "unknown".to_string());
    let numbers: Vec<String> = [("cpu family", "family"), ("model", "model"), ("stepping", "stepping")]
        .into_iter()
        .filter_map(|(key, name)| Some(format!("{name} {}", field(key)?)))
        .collect();
    let cores = if cores == 1 { "1 core".to_string() } else { format!("{cores} cores") };
    if numbers.is_empty() { format!("{model}, {cores}") } else { format!("{model} ({}), {cores}", numbers.join(", ")) }
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

#[cfg(test)]
mod tests {
    use super::describe_cpu;

    #[test]
    fn a_cpu_is_told_apart_by_its_family_model_and_stepping() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n\
                    model name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\ncpu family\t: 25\n";
        assert_eq!(describe_cpu(info, 2), "AMD EPYC (family 26, model 2, stepping 1), 2 cores");
        let older = info.replace("cpu family\t: 26", "cpu family\t: 25");
        assert_ne!(describe_cpu(&older, 2), describe_cpu(info, 2));
    }

    #[test]
    fn a_cpu_without_numbers_is_named_alone() {
        assert_eq!(describe_cpu("model name : Some CPU\n", 4), "Some CPU, 4 cores");
        assert_eq!(describe_cpu("", 1), "unknown, 1 core");
    }
}
