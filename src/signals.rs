//! SIGINT/SIGTERM handling without a handler: the signals are blocked in every thread (the
//! mask is inherited by threads spawned afterwards) and the main thread waits for them.

use std::io;

pub struct StopSignals {
    set: libc::sigset_t,
}

/// Blocks SIGINT and SIGTERM for this thread and every thread it spawns later.
pub fn block_stop_signals() -> io::Result<StopSignals> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before any other use, and
    // pthread_sigmask only reads the set we pass.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(StopSignals { set })
    }
}

impl StopSignals {
    /// Waits for SIGINT or SIGTERM; returns its number.
    pub fn wait(&self) -> i32 {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` was initialised in block_stop_signals; `sig` is a valid out pointer.
            let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
            if rc == 0 {
                return sig;
            }
        }
    }
}
