//! A broker's resident memory and CPU time, read from `/proc/PID/status` and
//! `/proc/PID/stat` (Linux only).

/// VmRSS in KiB summed over `pids`; `None` when no pid is given or one cannot be read.
pub fn vm_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    let mut total = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        total += parse_vm_rss(&status)?;
    }
    Some(total)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time (user + system, every thread) in microseconds summed over `pids`, from
/// `/proc/PID/stat`; `None` when no pid is given or one cannot be read. Its resolution is
/// the kernel's clock tick (10 ms at 100 Hz), so windows of seconds are measured well.
pub fn cpu_us(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    // SAFETY: sysconf reads a constant of the running system and has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    let mut ticks = 0;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        ticks += parse_cpu_ticks(&stat)?;
    }
    Some(ticks * 1_000_000 / hz)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2)
/// is in parentheses and may hold spaces or parentheses itself, so fields are counted from
/// the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11); // field 3 is the first here
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A JSON number, or `null` for a missing value.
pub fn json_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tbeam.smp\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(super::parse_vm_rss(status), Some(12345));
        assert_eq!(super::parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn parses_cpu_ticks() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 7 0 0";
        assert_eq!(super::parse_cpu_ticks(stat), Some(281));
        assert_eq!(super::parse_cpu_ticks("42 (x) S 1"), None);
        assert_eq!(super::parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        assert!(super::cpu_us(&[std::process::id()]).is_some());
        assert_eq!(super::cpu_us(&[]), None);
    }

    #[test]
    fn reads_own_rss() {
        assert!(super::vm_rss_kib(&[std::process::id()]).unwrap() > 0);
        assert_eq!(super::vm_rss_kib(&[]), None);
    }
}
