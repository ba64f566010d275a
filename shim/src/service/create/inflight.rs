//! Creates under way, and whether containerd has since given up on them.
//!
//! containerd gives up on a Create it can no longer answer without ever
//! telling the shim so: restarted in the middle of one, it finds a shim
//! whose task it does not know, sends Delete (not found yet) and Shutdown,
//! and forgets the bundle. A Create that then succeeds would leave a
//! sandbox nobody deletes; an abandoned one is undone as it ends instead.

use std::sync::Mutex;

/// What becomes of a Create when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its client still wants the container.
    Wanted,
    /// A Delete of its id or a Shutdown came while it ran: undo it.
    Abandoned,
}

/// A Create's place in [`InFlight`].
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Debug, Default)]
struct Entries {
    next: u64,
    list: Vec<(u64, String, Fate)>,
}

/// The Creates under way.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<Entries>);

impl InFlight {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A Create of `id` begins.
    pub fn begin(&self, id: &str) -> Ticket {
        let mut e = self.entries();
        e.next += 1;
        let n = e.next;
        e.list.push((n, id.to_string(), Fate::Wanted));
        Ticket(n)
    }

    /// The Create of `ticket` ended: what is to become of it.
    pub fn end(&self, ticket: Ticket) -> Fate {
        let mut e = self.entries();
        match e.list.iter().position(|(n, ..)| *n == ticket.0) {
            Some(i) => e.list.remove(i).2,
            None => Fate::Wanted,
        }
    }

    /// Marks the Creates of `id` abandoned; whether there was one.
    pub fn abandon(&self, id: &str) -> bool {
        let mut any = false;
        for (_, i, fate) in self.entries().list.iter_mut().filter(|(_, i, _)| i == id) {
            log::warn!("create id={i} abandoned by a Delete while under way");
            *fate = Fate::Abandoned;
            any = true;
        }
        any
    }

    /// Marks every Create abandoned; whether there was one.
    pub fn abandon_all(&self) -> bool {
        let mut e = self.entries();
        for (_, id, fate) in e.list.iter_mut() {
            log::warn!("create id={id} abandoned by a Shutdown while under way");
            *fate = Fate::Abandoned;
        }
        !e.list.is_empty()
    }

    /// Whether no Create is under way.
    pub fn is_empty(&self) -> bool {
        self.entries().list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_is_abandoned_by_its_ids_delete_or_a_shutdown() {
        let f = InFlight::default();
        let a = f.begin("a");
        let b = f.begin("b");
        let a2 = f.begin("a");
        assert!(!f.abandon("c"));
        assert!(f.abandon("a"));
        assert_eq!(f.end(a), Fate::Abandoned);
        assert_eq!(f.end(a2), Fate::Abandoned);
        assert!(!f.is_empty());
        assert_eq!(f.end(b), Fate::Wanted);
        assert!(f.is_empty());
        assert!(!f.abandon_all(), "nothing under way");
        let c = f.begin("c");
        assert!(f.abandon_all());
        assert_eq!(f.end(c), Fate::Abandoned);
        assert_eq!(f.end(Ticket(99)), Fate::Wanted, "unknown ticket");
    }
}
