//! Latency statistics and rates for the result lines, and the /proc readings the `idle`
//! scenario takes of the server.

/// Exact percentiles (nearest rank) of a sample of microsecond values.
pub struct Lat {
    sorted: Vec<u32>,
}

impl Lat {
    pub fn new(parts: impl IntoIterator<Item = Vec<u32>>) -> Lat {
        let mut sorted: Vec<u32> = parts.into_iter().flatten().collect();
        sorted.sort_unstable();
        Lat { sorted }
    }

    /// The q-quantile in milliseconds (0 for an empty sample).
    pub fn ms(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.sorted[rank - 1]) / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.sorted.last().map_or(0.0, |v| f64::from(*v) / 1000.0)
    }

    /// ` {prefix}p50_ms=.. {prefix}p90_ms=.. {prefix}p99_ms=.. {prefix}p999_ms=.. {prefix}max_ms=..`
    pub fn keys(&self, prefix: &str) -> String {
        format!(
            " {prefix}p50_ms={:.3} {prefix}p90_ms={:.3} {prefix}p99_ms={:.3} {prefix}p999_ms={:.3} \
             {prefix}max_ms={:.3}",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.max_ms()
        )
    }
}

pub fn per_s(n: u64, us: u64) -> f64 {
    if us == 0 {
        0.0
    } else {
        n as f64 * 1e6 / us as f64
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may contain spaces; fields after it start after the last ')'.
    let rest = s.rfind(')').map(|i| &s[i + 1..]).ok_or("bad /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime = field 14, stime = field 15.
    let get = |i: usize| -> Result<u64, String> {
        f.get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("bad field {i} in /proc/{pid}/stat"))
    };
    Ok(get(14)? + get(15)?)
}

pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let l = Lat::new([vec![4000, 1000], vec![3000, 2000]]);
        assert_eq!(l.ms(0.5), 2.0);
        assert_eq!(l.ms(0.99), 4.0);
        assert_eq!(l.max_ms(), 4.0);
        assert_eq!(Lat::new([]).ms(0.5), 0.0);
    }
}
