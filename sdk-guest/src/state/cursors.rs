//! The usual "since the last run" shapes over [`super`]: a high-water mark
//! and a set of ids already handled.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StateError, compare_and_set_with, get};

/// The highest value handled so far (a Gmail `internalDate`, a Shopify
/// `updated_at`, a Slack `ts`): items above it are new.
///
/// ```ignore
/// let mut mark = roost_sdk::state::HighWater::<i64>::load("gmail.internalDate")?;
/// for mail in mails.iter().filter(|m| mark.is_new(&m.date)) { /* … */ }
/// mark.advance(newest)?;
/// ```
///
/// The mark moves with [`compare_and_set`](super::compare_and_set): if two
/// runs move it at once, the later one's success is refused and it is
/// retried from the mark the other left.
#[derive(Debug, Clone)]
pub struct HighWater<T> {
    key: String,
    /// The mark as loaded (what the commit checks for).
    loaded: Option<T>,
    /// The mark now.
    mark: Option<T>,
}

impl<T: Serialize + DeserializeOwned + PartialOrd + Clone> HighWater<T> {
    /// The mark named `name` (none before the first [`advance`](Self::advance)).
    pub fn load(name: &str) -> Result<Self, StateError> {
        let key = format!("high-water/{name}");
        let loaded: Option<T> = get(&key)?;
        Ok(Self {
            key,
            mark: loaded.clone(),
            loaded,
        })
    }

    /// The mark, if one was set.
    pub fn get(&self) -> Option<&T> {
        self.mark.as_ref()
    }

    /// Whether `value` is above the mark (everything is, before the first
    /// mark).
    pub fn is_new(&self, value: &T) -> bool {
        self.mark.as_ref().is_none_or(|mark| value > mark)
    }

    /// Raises the mark to `value` if it is higher; kept with the run's
    /// success.
    pub fn advance(&mut self, value: T) -> Result<(), StateError> {
        if !self.is_new(&value) {
            return Ok(());
        }
        let swapped = compare_and_set_with(&self.key, self.mark.as_ref(), Some(&value), None)?;
        if !swapped {
            return Err(StateError::Decode(format!(
                "the mark `{}` changed during this run (set directly under its key?)",
                self.key
            )));
        }
        self.mark = Some(value);
        Ok(())
    }

    /// The mark as this run found it.
    pub fn loaded(&self) -> Option<&T> {
        self.loaded.as_ref()
    }
}

/// Ids already handled (order ids, message ids), each remembered for a
/// time. [`insert`](Self::insert) says whether an id is new and marks it
/// seen, with the run's success: a run that fails leaves it unseen, so
/// its retry handles it again; two runs that both see an id as new cannot
/// both succeed (the later is refused at its commit and retried).
///
/// ```ignore
/// let orders = roost_sdk::state::SeenSet::new("orders", Duration::from_secs(30 * 86_400));
/// if !orders.insert(&order_id)? {
///     return Ok(()); // alerted already
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SeenSet {
    prefix: String,
    ttl: Duration,
}

impl SeenSet {
    /// The set named `name`; each id is forgotten `ttl` after it was
    /// inserted (whole seconds).
    pub fn new(name: &str, ttl: Duration) -> Self {
        Self {
            prefix: format!("seen/{name}/"),
            ttl,
        }
    }

    /// The key `id` is kept under.
    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// Whether `id` was seen (and not forgotten yet).
    pub fn contains(&self, id: &str) -> Result<bool, StateError> {
        Ok(get::<bool>(&self.key(id))?.is_some())
    }

    /// Marks `id` seen; true if it was not seen before.
    pub fn insert(&self, id: &str) -> Result<bool, StateError> {
        compare_and_set_with(&self.key(id), None, Some(&true), Some(self.ttl))
    }
}
