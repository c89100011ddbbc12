//! What a read-only command says about what an interrupted run left behind.
//!
//! Writers recover in `transaction::writer::Writer::begin` (the one writer entry): it restores
//! an interrupted transaction, reverts a `--confirm` past its deadline and removes temp files
//! of killed runs. Read-only commands never take the lock: they call `report`, which only says
//! what a writer will restore, so monitoring never sees a false "locked".

use crate::error::Error;
use crate::system::root::Root;
use crate::transaction::state;

/// For read-only commands: what an interrupted run left, without changing anything.
#[must_use]
pub fn report(root: &Root) -> Vec<String> {
    let mut out = Vec::new();
    if root.path(state::JOURNAL).exists() {
        out.push(format!(
            "warning: an interrupted netprofile run left {}; the next `netprofile apply`, \
             `confirm` or `rollback` (as root) restores the state before it",
            Root::display(state::JOURNAL)
        ));
    }
    match state::read_pending(root) {
        Ok(Some(p)) => {
            if let Ok(Some(why)) = state::watcher_stopped(root, p.generation) {
                out.push(format!(
                    "warning: the watcher of generation {} stopped without reverting it: {why}",
                    p.generation
                ));
            }
            if state::epoch_millis() > p.deadline_ms + 2000 {
                out.push(format!(
                    "warning: generation {} was not confirmed by its deadline and its automatic \
                     revert has not run yet; the next `netprofile apply`, `confirm` or \
                     `rollback` (as root) reverts it",
                    p.generation
                ));
            }
        }
        Ok(None) => {}
        // An unprivileged reader (monitoring) cannot see root's 0700 state: nothing to say.
        Err(Error::Read { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(e) => out.push(format!("warning: {e}")),
    }
    out
}
