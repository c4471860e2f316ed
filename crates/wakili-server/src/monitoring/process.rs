//! This process's CPU time, memory and open files, read from `/proc/self` (Linux).

/// Clock ticks per second of `/proc/*/stat` times. `USER_HZ` is 100 on every Linux architecture
/// Wakili runs on (reading it needs `sysconf`, which is unsafe FFI; this crate forbids unsafe).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
}

impl ProcessStats {
    /// The figures in the Prometheus text format, under the standard `process_*` names. Written
    /// here rather than through the recorder because its counters are integers and CPU time is
    /// not.
    pub fn exposition(&self) -> String {
        let mut text = String::new();
        for (name, kind, help, value) in [
            (
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time of this process",
                self.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of this process",
                self.resident_bytes as f64,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of this process, seconds since the Unix epoch",
                self.start_time_seconds,
            ),
            (
                "process_open_fds",
                "gauge",
                "Open file descriptors of this process",
                self.open_fds as f64,
            ),
        ] {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
            ));
        }
        text
    }
}

/// CPU seconds and start (in ticks since boot) from the text of `/proc/self/stat`.
fn parse_stat(stat: &str) -> Option<(f64, f64)> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some((
        (field(14)? + field(15)?) / TICKS_PER_SECOND,
        field(22)? / TICKS_PER_SECOND,
    ))
}

/// `VmRSS` of `/proc/self/status`, bytes.
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `btime` (boot time, Unix seconds) of `/proc/stat`.
fn parse_boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Reads the figures; `None` off Linux or when `/proc` is not mounted.
pub fn read() -> Option<ProcessStats> {
    let (cpu_seconds, started_after_boot) =
        parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let resident_bytes = parse_rss(&std::fs::read_to_string("/proc/self/status").ok()?)?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_boot_time(&s))
        .unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    Some(ProcessStats {
        cpu_seconds,
        resident_bytes,
        start_time_seconds: boot + started_after_boot,
        open_fds,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat = "4242 (wak ili) (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    12 0 123456 1000000 2000 18446744073709551615";
        let (cpu, start) = parse_stat(stat).unwrap();
        assert!((cpu - 3.0).abs() < 1e-9, "{cpu}");
        assert!((start - 1234.56).abs() < 1e-9, "{start}");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn rss_and_boot_time_are_found() {
        assert_eq!(
            parse_rss("Name:\twakili\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1.7e9));
    }

    #[test]
    fn this_process_is_readable() {
        let stats = read().unwrap();
        assert!(stats.resident_bytes > 1024 * 1024);
        assert!(stats.open_fds > 0);
        assert!(stats.start_time_seconds > 1.5e9);
    }
}
