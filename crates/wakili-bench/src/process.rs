//! Child processes that cannot outlive the benchmark, and what `/proc` says about them.

use std::{
    fs,
    net::{TcpListener, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus},
};

use anyhow::{Context, bail};

/// A child process killed and reaped when dropped, on success and error alike.
pub struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    /// Spawns `command`; `name` appears in error messages.
    pub fn spawn(name: &str, command: &mut Command) -> anyhow::Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the stdout and stderr pipes, when they were piped.
    pub fn take_output(&mut self) -> (Option<ChildStdout>, Option<ChildStderr>) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Takes the stdin pipe, when it was piped.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The exit status when the process has ended, without waiting.
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("cannot check whether {} is running", self.name))
    }

    /// Fails when the process has ended.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exited()? {
            None => Ok(()),
            Some(status) => bail!("{} exited unexpectedly ({status})", self.name),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGKILL; an error here means it ended meanwhile.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// CPU time a process has used, user plus system, all threads, in clock ticks.
///
/// Fields 14 and 15 of `/proc/PID/stat`, counted after the parenthesised command name (which may
/// hold spaces). Also readable for a zombie, i.e. after exit and before it is reaped.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: no command name"))?;
    // after_name starts at field 3 (state): utime is field 14, stime field 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{path}: field {n} is not a number"))
    };
    Ok(field(14)? + field(15)?)
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmHWM`: the peak since the process started.
    pub peak_kib: u64,
    /// `VmRSS`: now.
    pub current_kib: u64,
}

/// Reads `VmHWM` and `VmRSS` from `/proc/PID/status`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = |key: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path}: no {key} line"))
    };
    Ok(Memory {
        peak_kib: kib("VmHWM:")?,
        current_kib: kib("VmRSS:")?,
    })
}

/// Machine-wide CPU time from the first line of `/proc/stat`, in clock ticks, all cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTicks {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// Softirq (network processing, among others), part of `busy`.
    pub softirq: u64,
    /// Stolen by the hypervisor, part of `busy`.
    pub steal: u64,
}

/// Reads [`MachineTicks`] from `/proc/stat`.
pub fn machine_ticks() -> anyhow::Result<MachineTicks> {
    let stat = fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    parse_machine_ticks(&stat)
}

fn parse_machine_ticks(stat: &str) -> anyhow::Result<MachineTicks> {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat: no cpu line")?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().context("/proc/stat: not a number"))
        .collect::<anyhow::Result<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = fields[..] else {
        bail!("/proc/stat: the cpu line has fewer than 8 fields");
    };
    Ok(MachineTicks {
        busy: user + nice + system + irq + softirq + steal,
        softirq,
        steal,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`), and whether getconf confirmed it; 100 otherwise.
pub fn clock_ticks_per_second() -> (u64, bool) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .map_or((100, false), |ticks| (ticks, true))
}

/// A port free for both UDP and TCP on 127.0.0.1 right now (another program may take it before
/// it is used; the benchmark accepts that small race).
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let udp =
            UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP socket on 127.0.0.1")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("found no port free for both UDP and TCP on 127.0.0.1")
}

/// The first `name` in `$PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(text) = fs::read_to_string(path) else {
        return format!(" (no log at {})", path.display());
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return " (its log is empty)".into();
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("\n    | {l}"))
        .collect()
}

/// The load generator's runtime with `threads` workers (by default one per core), and how many.
pub fn client_runtime(threads: Option<usize>) -> anyhow::Result<(tokio::runtime::Runtime, usize)> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok((runtime, threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_memory() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_ok());
        let mem = memory(pid).unwrap();
        assert!(mem.peak_kib >= mem.current_kib && mem.current_kib > 0);
    }

    #[test]
    fn machine_ticks_add_up_busy_time() {
        let stat = "cpu  100 2 30 1000 5 1 7 3 0 0\ncpu0 50 1 15 500 2 0 3 1 0 0\n";
        assert_eq!(
            parse_machine_ticks(stat).unwrap(),
            MachineTicks {
                busy: 100 + 2 + 30 + 1 + 7 + 3,
                softirq: 7,
                steal: 3,
            }
        );
        assert!(parse_machine_ticks("cpu 1 2 3\n").is_err());
        assert!(machine_ticks().is_ok());
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
