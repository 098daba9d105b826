//! Connection slots: who holds one, who is idle, and whom to close when a new client needs a
//! slot and all are taken.
//!
//! A connection is *busy* while a request is in flight on it and *idle* otherwise; it counts
//! as idle from the moment it is admitted (a TLS handshake or an HTTP/2 preface is not a
//! request). When every slot is taken, a new connection takes the slot of the connection that
//! has been idle longest, which is then closed gracefully (HTTP/2 GOAWAY): the API server's
//! pooled connections and an attacker's idle ones look the same, so neither can hold the
//! slots that a fresh admission needs. Only when every connection is busy is a new one
//! refused. The choice itself is [`pick_victim`], a pure function.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// One connection's state, shared between its task, its requests and the [`Slots`].
#[derive(Debug)]
pub(crate) struct Connection {
    in_flight: AtomicU32,
    /// Milliseconds since the slots' epoch at which the last request ended (or the
    /// connection was admitted).
    idle_since_ms: AtomicU64,
    /// Set once the connection has been told to close (evicted or shutdown).
    closing: AtomicBool,
    /// Set when the close is the server's shutdown (requests in flight get its grace).
    draining: AtomicBool,
    /// Wakes the connection's task to close it.
    pub(crate) close: Notify,
    epoch: Instant,
}

impl Connection {
    /// Marks a request in flight until the returned guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// When the connection, idle now, reaches `idle_timeout`; `None` while a request is in flight.
    pub(crate) fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.epoch + since + idle_timeout)
    }

    /// Whether the server is shutting down (rather than this connection being evicted).
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether the connection has been told to close (evicted or shutdown).
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn since_epoch_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// A request in flight on a [`Connection`].
pub(crate) struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since_ms.store(self.0.since_epoch_ms(Instant::now()), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What [`Slots::admit`] decided for a new connection.
pub(crate) enum Admission {
    /// A slot was free, or was taken from an idle connection that is now closing.
    Admitted { id: u64, connection: Arc<Connection>, evicted: bool },
    /// Every slot is held by a connection with a request in flight.
    Refused,
}

/// The open connections, at most `max` of them counted.
pub(crate) struct Slots {
    max: usize,
    epoch: Instant,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Arc<Connection>>,
}

/// The connection to close for a new one: the one idle longest, if any is idle.
/// Candidates are `(id, requests in flight, idle since)`; ties go to the lower id (older).
pub(crate) fn pick_victim(candidates: impl IntoIterator<Item = (u64, u32, u64)>) -> Option<u64> {
    candidates
        .into_iter()
        .filter(|&(_, in_flight, _)| in_flight == 0)
        .min_by_key(|&(id, _, since)| (since, id))
        .map(|(id, _, _)| id)
}

impl Slots {
    pub(crate) fn new(max: usize) -> Slots {
        Slots { max, epoch: Instant::now(), open: Mutex::new(Open::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The map stays consistent across a panic (each change is one insert or remove).
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives a new connection a slot, taking one from the longest-idle connection when all
    /// are held (that connection is told to close).
    pub(crate) fn admit(&self) -> Admission {
        let mut open = self.lock();
        let mut evicted = false;
        if open.connections.len() >= self.max {
            let candidates = open
                .connections
                .iter()
                .map(|(&id, c)| (id, c.in_flight.load(Ordering::Acquire), c.idle_since_ms.load(Ordering::Acquire)));
            let Some(victim) = pick_victim(candidates) else { return Admission::Refused };
            if let Some(connection) = open.connections.remove(&victim) {
                connection.closing.store(true, Ordering::Release);
                connection.close.notify_one();
            }
            evicted = true;
        }
        let id = open.next_id;
        open.next_id += 1;
        let connection = Arc::new(Connection {
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            close: Notify::new(),
            epoch: self.epoch,
        });
        connection.idle_since_ms.store(connection.since_epoch_ms(Instant::now()), Ordering::Release);
        open.connections.insert(id, connection.clone());
        Admission::Admitted { id, connection, evicted }
    }

    /// The connection's task ended (a no-op for an evicted one, whose slot is already taken).
    pub(crate) fn release(&self, id: u64) {
        self.lock().connections.remove(&id);
    }

    /// Connections holding a slot.
    pub(crate) fn len(&self) -> usize {
        self.lock().connections.len()
    }

    /// Tells every open connection to close (shutdown).
    pub(crate) fn close_all(&self) {
        for connection in self.lock().connections.values() {
            connection.draining.store(true, Ordering::Release);
            connection.closing.store(true, Ordering::Release);
            connection.close.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_is_picked_and_busy_ones_never_are() {
        assert_eq!(pick_victim([(1, 0, 50), (2, 0, 10), (3, 1, 0)]), Some(2));
        assert_eq!(pick_victim([(1, 2, 0), (2, 1, 0)]), None);
        assert_eq!(pick_victim([(7, 0, 10), (3, 0, 10)]), Some(3));
        assert_eq!(pick_victim(Vec::new()), None);
    }

    #[test]
    fn a_full_house_of_idle_connections_gives_up_a_slot_and_a_busy_one_refuses() {
        let slots = Slots::new(2);
        let Admission::Admitted { id: first, connection: a, evicted: false } = slots.admit() else { panic!() };
        let Admission::Admitted { connection: b, evicted: false, .. } = slots.admit() else { panic!() };
        let _busy_b = b.busy();
        // Full: `a` is idle, so it gives up its slot and is told to close.
        let Admission::Admitted { connection: c, evicted: true, .. } = slots.admit() else { panic!() };
        assert!(a.closing.load(Ordering::Acquire));
        assert_eq!(slots.len(), 2);
        slots.release(first);
        assert_eq!(slots.len(), 2, "releasing an evicted connection frees no second slot");
        // Full again, and both holders are busy: refused.
        let _busy_c = c.busy();
        assert!(matches!(slots.admit(), Admission::Refused));
        assert!(!b.closing.load(Ordering::Acquire) && !c.closing.load(Ordering::Acquire));
    }

    #[test]
    fn a_connection_has_an_idle_deadline_only_without_requests_in_flight() {
        let slots = Slots::new(4);
        let Admission::Admitted { connection, .. } = slots.admit() else { panic!() };
        let idle = Duration::from_secs(60);
        let first = connection.idle_deadline(idle).unwrap();
        assert!(first > Instant::now() + Duration::from_secs(59));
        let busy = connection.busy();
        assert_eq!(connection.idle_deadline(idle), None);
        std::thread::sleep(Duration::from_millis(5));
        drop(busy);
        assert!(connection.idle_deadline(idle).unwrap() > first, "the idle clock restarts after a request");
    }
}
