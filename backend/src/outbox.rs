//! The outbox: the messages runs left (`roost::send` in a script), written
//! with their run's end and read by their user at `GET /v1/messages`.

use std::sync::Arc;

use crate::store::{MessageFilter, MessageRow, Store, StoreResult};

/// Users' outboxes.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
}

impl Outbox {
    /// The outboxes in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// A user's messages, newest first.
    pub async fn list(
        &self,
        user_id: &str,
        filter: &MessageFilter,
    ) -> StoreResult<Vec<MessageRow>> {
        self.store.list_messages(user_id, filter).await
    }
}
