//! The request table: one record per unit of client traffic in flight (a message, or a
//! batch sent whole), from the moment it is accepted until its last answer. A unit is
//! queued (waiting for the handshake) or running (an attempt task). The id index maps
//! every request id to its unit, so a duplicate id is refused whether its first use is
//! queued or running, and a cancellation finds its request.
//!
//! The proxy loop alone owns the table; attempt tasks report back over its channel.

use std::collections::HashMap;

use tokio::task::AbortHandle;

use crate::jsonrpc::IdKey;

/// A unit's number. Attempts report under it, so a unit retried after a lost session
/// keeps its number and its record.
pub(crate) type UnitId = u64;

struct Unit {
    ids: Vec<IdKey>,
    modern: bool,
    /// `subscriptions/listen`: never ends on its own, so it neither holds stdin back nor
    /// delays the exit.
    long_lived: bool,
    /// The running attempt; `None` while queued.
    attempt: Option<AbortHandle>,
}

/// Per request id.
struct Entry {
    unit: UnitId,
    /// The client cancelled it: no error is sent for it when it ends unanswered.
    cancelled: bool,
}

#[derive(Default)]
pub(crate) struct Table {
    units: HashMap<UnitId, Unit>,
    ids: HashMap<IdKey, Entry>,
    next: UnitId,
    long_lived: usize,
}

/// What a cancellation did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// Not a request in flight: forward the notification as it is.
    Unknown,
    /// Marked; the notification goes on to the server (legacy era).
    Marked,
    /// Modern era: the attempt was aborted (closing its stream is the cancellation) and
    /// the record removed; the notification is not forwarded.
    Aborted,
}

impl Table {
    pub(crate) fn contains(&self, id: &IdKey) -> bool {
        self.ids.contains_key(id)
    }

    /// Record a new unit (queued until [`Table::running`]). The ids must be free.
    pub(crate) fn insert(&mut self, ids: &[IdKey], modern: bool, long_lived: bool) -> UnitId {
        self.next += 1;
        let unit = self.next;
        for id in ids {
            debug_assert!(
                !self.ids.contains_key(id),
                "duplicate ids are refused first"
            );
            self.ids.insert(
                id.clone(),
                Entry {
                    unit,
                    cancelled: false,
                },
            );
        }
        self.long_lived += usize::from(long_lived);
        self.units.insert(
            unit,
            Unit {
                ids: ids.to_vec(),
                modern,
                long_lived,
                attempt: None,
            },
        );
        unit
    }

    /// The unit's attempt task started.
    pub(crate) fn running(&mut self, unit: UnitId, attempt: AbortHandle) {
        if let Some(u) = self.units.get_mut(&unit) {
            u.attempt = Some(attempt);
        }
    }

    /// The unit ended. Returns those of `unanswered` that still want an error (not
    /// cancelled, and still the unit's own).
    pub(crate) fn finish(&mut self, unit: UnitId, unanswered: Vec<IdKey>) -> Vec<IdKey> {
        let Some(u) = self.units.remove(&unit) else {
            return Vec::new();
        };
        self.long_lived -= usize::from(u.long_lived);
        let mut report = Vec::with_capacity(unanswered.len());
        for id in &u.ids {
            if let Some(e) = self.ids.remove(id)
                && !e.cancelled
                && unanswered.contains(id)
            {
                report.push(id.clone());
            }
        }
        report
    }

    /// L-CANCEL / M-CANCEL.
    pub(crate) fn cancel(&mut self, id: &IdKey) -> Cancelled {
        let Some(entry) = self.ids.get_mut(id) else {
            return Cancelled::Unknown;
        };
        entry.cancelled = true;
        let unit = entry.unit;
        if self.units.get(&unit).is_some_and(|u| u.modern) {
            self.abort(unit);
            return Cancelled::Aborted;
        }
        Cancelled::Marked
    }

    /// Abort a unit and forget it; its requests get no answer from us.
    fn abort(&mut self, unit: UnitId) {
        if let Some(u) = self.units.remove(&unit) {
            self.long_lived -= usize::from(u.long_lived);
            if let Some(a) = u.attempt {
                a.abort();
            }
            for id in &u.ids {
                self.ids.remove(id);
            }
        }
    }

    /// Stdin ended: long-lived streams would never finish on their own. They end now,
    /// record and all, so the drain waits only for requests that will end (P-DRAIN).
    pub(crate) fn abort_long_lived(&mut self) {
        let listens: Vec<UnitId> = self
            .units
            .iter()
            .filter(|(_, u)| u.long_lived)
            .map(|(n, _)| *n)
            .collect();
        for unit in listens {
            self.abort(unit);
        }
    }

    /// Units that will end on their own, queued or running: what holds stdin back.
    pub(crate) fn busy(&self) -> usize {
        self.units.len() - self.long_lived
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub(crate) fn abort_all(&mut self) {
        for (_, u) in self.units.drain() {
            if let Some(a) = u.attempt {
                a.abort();
            }
        }
        self.ids.clear();
        self.long_lived = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn id(s: &str) -> IdKey {
        IdKey::from_raw(&RawValue::from_string(s.to_owned()).unwrap())
    }

    fn attempt() -> AbortHandle {
        tokio::spawn(std::future::pending::<()>()).abort_handle()
    }

    #[test]
    fn ids_are_in_flight_while_queued_and_running() {
        let mut t = Table::default();
        let u = t.insert(&[id("1"), id("2")], false, false);
        assert!(t.contains(&id("1")) && t.contains(&id("2")));
        assert_eq!(t.busy(), 1);
        assert_eq!(t.finish(u, vec![id("2")]), vec![id("2")]);
        assert!(!t.contains(&id("1")) && t.is_empty());
        assert_eq!(t.finish(u, vec![id("2")]), Vec::<IdKey>::new(), "ends once");
    }

    #[test]
    fn a_cancelled_legacy_request_gets_no_error() {
        let mut t = Table::default();
        let u = t.insert(&[id("1")], false, false);
        assert_eq!(t.cancel(&id("1")), Cancelled::Marked);
        assert_eq!(t.cancel(&id("9")), Cancelled::Unknown);
        assert!(t.finish(u, vec![id("1")]).is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_modern_request_is_aborted_and_forgotten() {
        let mut t = Table::default();
        let u = t.insert(&[id("1")], true, false);
        let a = attempt();
        t.running(u, a.clone());
        assert_eq!(t.cancel(&id("1")), Cancelled::Aborted);
        tokio::task::yield_now().await;
        assert!(a.is_finished());
        assert!(t.is_empty() && !t.contains(&id("1")));
    }

    #[tokio::test]
    async fn long_lived_units_do_not_count_and_end_at_eof() {
        let mut t = Table::default();
        let listen = t.insert(&[id("\"l\"")], true, true);
        t.running(listen, attempt());
        assert_eq!(t.busy(), 0);
        assert!(!t.is_empty());
        let req = t.insert(&[id("1")], true, false);
        assert_eq!(t.busy(), 1);
        t.abort_long_lived();
        assert_eq!(t.busy(), 1);
        t.finish(req, Vec::new());
        assert!(t.is_empty(), "nothing left for the drain to wait on");
    }
}
