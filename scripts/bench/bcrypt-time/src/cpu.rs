//! CPU time, for timing on a machine that other processes share.

/// This thread's CPU time in ms (`CLOCK_THREAD_CPUTIME_ID`): time spent waiting while other
/// processes run is not counted, so it is what the work costs on a shared machine.
pub fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}
