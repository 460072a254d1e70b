//! The limits of this machine that bound how many connections a run can hold: descriptors
//! (RLIMIT_NOFILE) and ephemeral ports.

/// RLIMIT_NOFILE, if getrlimit works.
fn nofile_limit() -> Option<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid rlimit struct.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0).then_some(r)
}

/// Raises RLIMIT_NOFILE to the hard limit; returns the new soft limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
pub fn raise_nofile() -> u64 {
    let Some(mut r) = nofile_limit() else {
        return 1024;
    };
    let old = r.rlim_cur;
    if r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        // SAFETY: setrlimit with a valid rlimit struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
            eprintln!(
                "ttload: RLIMIT_NOFILE raised from {old} to the hard limit {}",
                r.rlim_cur
            );
        } else {
            r.rlim_cur = old;
        }
    } else {
        eprintln!("ttload: RLIMIT_NOFILE is {} (already the hard limit)", old);
    }
    r.rlim_cur as u64
}

/// The soft RLIMIT_NOFILE.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
pub fn nofile() -> u64 {
    nofile_limit().map_or(1024, |r| r.rlim_cur as u64)
}

/// How many ephemeral ports one source address has towards one server port.
pub fn ephemeral_ports() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let v: Vec<usize> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match v.as_slice() {
                [lo, hi] if hi >= lo => Some(hi - lo + 1),
                _ => None,
            }
        })
        .unwrap_or(28_232)
}
