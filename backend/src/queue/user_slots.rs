//! What one user may hold of a node at once: its workers, and its requests
//! waiting on runs.
//!
//! A worker runs one run at a time, so a user whose runs take long (a
//! script that sleeps, or waits on a slow API) could otherwise hold every
//! worker while other users' runs wait in the queue. A node lets one user's
//! runs take at most a share of its workers: claims pass over the runs of
//! users at their cap, and a run claimed in a race past it goes back to the
//! queue unbegun. Waiting requests hold a connection and a task each, and
//! are capped the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many slots of one kind each user holds, up to `cap`.
pub(crate) struct UserSlots {
    cap: usize,
    held: Mutex<HashMap<String, usize>>,
}

impl UserSlots {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            held: Mutex::default(),
        })
    }

    /// The most slots one user may hold.
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// The users holding `cap` slots now.
    pub(super) fn full(&self) -> Vec<String> {
        self.full_besides(None)
    }

    /// `full`, for a caller holding one of `mine`'s slots that it is about
    /// to give back: that slot counts as free.
    pub(super) fn full_besides(&self, mine: Option<&str>) -> Vec<String> {
        let held = self.held.lock().expect("user slots lock");
        held.iter()
            .filter(|(user, slots)| **slots - usize::from(Some(user.as_str()) == mine) >= self.cap)
            .map(|(user, _)| user.clone())
            .collect()
    }

    /// How many slots all users hold together.
    pub(super) fn held(&self) -> usize {
        self.held.lock().expect("user slots lock").values().sum()
    }

    /// A slot for `user_id`, given back when it drops; `None` while the
    /// user holds `cap`.
    pub(crate) fn take(self: &Arc<Self>, user_id: &str) -> Option<Slot> {
        let mut held = self.held.lock().expect("user slots lock");
        let slots = held.entry(user_id.to_string()).or_default();
        if *slots >= self.cap {
            return None;
        }
        *slots += 1;
        Some(Slot {
            slots: self.clone(),
            user_id: user_id.to_string(),
        })
    }
}

/// One slot a user holds.
pub(crate) struct Slot {
    slots: Arc<UserSlots>,
    user_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("user slots lock");
        if let Some(slots) = held.get_mut(&self.user_id) {
            *slots -= 1;
            if *slots == 0 {
                held.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_cap_gets_no_slot_until_one_is_given_back() {
        let slots = UserSlots::new(2);
        let first = slots.take("ada").unwrap();
        let _second = slots.take("ada").unwrap();
        assert!(slots.take("ada").is_none());
        assert_eq!(slots.full(), vec!["ada".to_string()]);
        // Another user is not held back by ada's slots.
        let _grace = slots.take("grace").unwrap();
        drop(first);
        assert!(slots.full().is_empty());
        assert!(slots.take("ada").is_some());
    }
}
