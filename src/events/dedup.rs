//! A bounded set of the event ids already handled, so a redelivered push or an event returned by two
//! overlapping polls is processed once. Oldest ids are forgotten first: memory stays bounded however
//! many events arrive, at the cost of handling a very late duplicate twice (harmless: an event only
//! causes a read).

use std::collections::{HashSet, VecDeque};

pub struct RecentIds {
    cap: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentIds {
    pub fn new(cap: usize) -> RecentIds {
        RecentIds {
            cap: cap.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Records `id`; `false` when it was already there.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.set.insert(id.to_string());
        true
    }

    /// Forgets `id` (an event recorded but then refused, so its redelivery is not a duplicate). Its
    /// place in the eviction order stays: at worst another id is forgotten a little early.
    pub fn forget(&mut self, id: &str) {
        self.set.remove(id);
    }

    /// Whether `id` is known, without recording it.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_and_the_oldest_is_forgotten_at_the_cap() {
        let mut s = RecentIds::new(2);
        assert!(s.first_time("a"));
        assert!(!s.first_time("a"));
        assert!(s.first_time("b"));
        assert!(s.first_time("c"));
        assert_eq!(s.len(), 2);
        // "a" was forgotten to make room; "b" and "c" are still known.
        assert!(!s.first_time("c"));
        assert!(!s.contains("a"));
        assert!(s.first_time("a"));
        assert!(s.contains("a"));
    }
}
