//! How the observer's processes ask the kernel to treat them: as batch work that never
//! preempts the node it watches.

/// Puts this thread, and every thread it starts afterwards (tokio's blocking pool inherits
/// the policy), under `SCHED_BATCH`: the same fair share of CPU, but a wake-up (a ring
/// buffer's, a socket's) waits for the running task's slice to end instead of preempting it.
/// Under a flood the node's message handler is that task, and each preemption cost it its
/// caches as well as the time. Best effort: a kernel that refuses leaves the default.
pub fn yield_to_the_node() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler only reads `param`; pid 0 is the calling thread.
    let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
    if refused {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "SCHED_BATCH refused; running under the default policy"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_and_the_threads_it_starts_run_as_batch_work() {
        // On a thread of its own: the test harness's threads keep their policy.
        let policies = std::thread::spawn(|| {
            yield_to_the_node();
            // SAFETY: sched_getscheduler only reads the calling thread's policy.
            let own = unsafe { libc::sched_getscheduler(0) };
            let child = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) })
                .join()
                .expect("child thread");
            (own, child)
        })
        .join()
        .expect("thread");
        assert_eq!(policies, (libc::SCHED_BATCH, libc::SCHED_BATCH));
    }
}
