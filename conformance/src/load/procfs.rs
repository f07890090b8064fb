//! Process figures from Linux `/proc`: CPU time, resident memory, the open-file limit.

use std::sync::OnceLock;

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, else 100).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// `utime + stime` in clock ticks from the text of a `/proc/PID/stat` file.
pub fn parse_stat_cpu(stat: &str) -> Result<u64, String> {
    parse_stat_times(stat).map(|(user, system)| user + system)
}

/// `(utime, stime)`: user and kernel time in clock ticks, from the text of a
/// `/proc/PID/stat` file.
pub fn parse_stat_times(stat: &str) -> Result<(u64, u64), String> {
    // The command name (field 2) is in parentheses and may hold spaces or ')': fields
    // are counted after the last ')'. utime and stime are fields 14 and 15 overall,
    // i.e. the 12th and 13th after the name.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| "stat: no command name".to_owned())?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .ok_or_else(|| format!("stat: missing field {}", i + 3))?
            .parse::<u64>()
            .map_err(|e| format!("stat: field {}: {e}", i + 3))
    };
    Ok((field(11)?, field(12)?))
}

/// `VmRSS` in kilobytes from the text of a `/proc/PID/status` file.
pub fn parse_status_rss_kb(status: &str) -> Result<u64, String> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| "status: no VmRSS".to_owned())?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()
        .ok_or_else(|| "status: empty VmRSS".to_owned())?
        .parse::<u64>()
        .map_err(|e| format!("status: VmRSS: {e}"))
}

/// The soft "Max open files" limit from the text of a `/proc/PID/limits` file
/// (`None` when unlimited or unreadable).
pub fn parse_limits_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
}

fn read(pid: Option<u32>, file: &str) -> Result<String, String> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/{file}"),
        None => format!("/proc/self/{file}"),
    };
    std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

/// CPU seconds (user + system, all threads) used so far by `pid` (`None`: this process).
pub fn cpu_seconds(pid: Option<u32>) -> Result<f64, String> {
    cpu_times(pid).map(|(user, system)| user + system)
}

/// User and kernel CPU seconds of `pid` (this process if `None`).
pub fn cpu_times(pid: Option<u32>) -> Result<(f64, f64), String> {
    let (user, system) = parse_stat_times(&read(pid, "stat")?)?;
    Ok((user as f64 / clock_ticks(), system as f64 / clock_ticks()))
}

/// Resident set size of `pid` in kilobytes.
pub fn rss_kb(pid: u32) -> Result<u64, String> {
    parse_status_rss_kb(&read(Some(pid), "status")?)
}

/// This process's soft limit on open files, if known.
pub fn nofile_limit() -> Option<u64> {
    parse_limits_nofile(&read(None, "limits").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_odd_command_names() {
        let stat = "4242 (node (a) b) S 1 4242 4242 0 -1 4194560 5000 0 0 0 \
                    1234 567 0 0 20 0 11 0 100 1000000 5000 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat), Ok(1234 + 567));
        assert_eq!(parse_stat_times(stat), Ok((1234, 567)));
        assert!(parse_stat_cpu("1 (x) S 1 2").is_err());
        assert!(parse_stat_cpu("garbage").is_err());
    }

    #[test]
    fn status_rss() {
        let status = "Name:\tnode\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t7\n";
        assert_eq!(parse_status_rss_kb(status), Ok(51234));
        assert!(parse_status_rss_kb("Name: x\n").is_err());
    }

    #[test]
    fn limits_nofile() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_limits_nofile(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_limits_nofile(unlimited), None);
    }

    #[test]
    fn reads_own_process() {
        assert!(cpu_seconds(None).is_ok());
        assert!(rss_kb(std::process::id()).is_ok_and(|kb| kb > 0));
    }
}
