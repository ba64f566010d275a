//! Cleanups that also run when a binary panics under `panic = "abort"`.
//!
//! The workspace's release profile aborts on panic (the shim wants no
//! unwinding), so `make demo` and `make bench`, built with it, run no
//! destructor when they panic: their private containerd with its shims and
//! sandboxes, a CNI bridge or a network namespace would stay on the host.
//! Each such resource registers its cleanup here ([`on_abort`]) and
//! withdraws it when dropped; a binary calls [`clean_up_on_panic`] once,
//! and its panic hook runs what is still registered, newest first. Tests
//! unwind, so their destructors do this work.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard, Once, TryLockError,
    },
};

type Cleanup = Box<dyn FnOnce() + Send>;

static CLEANUPS: Mutex<BTreeMap<u64, Cleanup>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

fn cleanups() -> MutexGuard<'static, BTreeMap<u64, Cleanup>> {
    CLEANUPS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A cleanup registered with [`on_abort`]; dropping it withdraws it (its
/// owner cleaned up on its own).
#[derive(Debug)]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        cleanups().remove(&self.0);
    }
}

/// Registers `cleanup` to run if the process panics before the returned
/// handle is dropped.
pub fn on_abort(cleanup: impl FnOnce() + Send + 'static) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    cleanups().insert(id, Box::new(cleanup));
    Registered(id)
}

/// Installs (once) a panic hook that, after the usual report, runs every
/// registered cleanup, newest first.
pub fn clean_up_on_panic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            run_all();
        }));
    });
}

/// Runs and forgets every registered cleanup, newest first. A panic that
/// happened while the registry was held leaves it alone rather than wait.
fn run_all() {
    let taken = match CLEANUPS.try_lock() {
        Ok(mut all) => std::mem::take(&mut *all),
        Err(TryLockError::Poisoned(p)) => std::mem::take(&mut *p.into_inner()),
        Err(TryLockError::WouldBlock) => return,
    };
    if !taken.is_empty() {
        eprintln!("cleaning up {} resource(s) after the panic", taken.len());
    }
    for (_, cleanup) in taken.into_iter().rev() {
        cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn registered_cleanups_run_newest_first_and_dropped_ones_not_at_all() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let push = |n: u32| {
            let order = order.clone();
            move || order.lock().unwrap().push(n)
        };
        let _first = on_abort(push(1));
        let second = on_abort(push(2));
        let _third = on_abort(push(3));
        drop(second);
        run_all();
        let seen: Vec<u32> = order.lock().unwrap().clone();
        // Other tests of this binary may have registered theirs meanwhile.
        let ours: Vec<u32> = seen.into_iter().filter(|n| *n <= 3).collect();
        assert_eq!(ours, [3, 1]);
    }
}
