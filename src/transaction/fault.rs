//! Test-only fault points. `NETPROFILE_FAULT=kill:STEP` kills the process with SIGKILL when it
//! reaches STEP, `NETPROFILE_FAULT=fail:STEP` makes that step fail as if the kernel had
//! refused it, and `NETPROFILE_FAULT=pause:STEP` waits a second there (to make races
//! certain). Steps are named by the transaction (`journal`, `change:3`, `undo:1`,
//! `generation`). With the variable unset, these are no-ops. Tests use them to prove that
//! every step can be interrupted without leaving a mix of old and new values.

const VAR: &str = "NETPROFILE_FAULT";

fn wanted(kind: &str, step: &str) -> bool {
    std::env::var(VAR).is_ok_and(|v| {
        v.split(',')
            .any(|f| f.strip_prefix(kind).and_then(|s| s.strip_prefix(':')) == Some(step))
    })
}

/// Dies here, without unwinding or cleanup, if asked to.
pub fn point(step: &str) {
    if wanted("pause", step) {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    if wanted("kill", step) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

/// Whether this step must fail.
#[must_use]
pub fn fail(step: &str) -> bool {
    wanted("fail", step)
}
