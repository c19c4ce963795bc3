//! A broker's resident memory, read from `/proc/PID/status` (Linux only).

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
    fn reads_own_rss() {
        assert!(super::vm_rss_kib(&[std::process::id()]).unwrap() > 0);
        assert_eq!(super::vm_rss_kib(&[]), None);
    }
}
