//! Methods whose provider API needs code rather than a mapping: a body
//! built from the input (an RFC 2822 message, SendGrid's personalizations),
//! or output read from headers. They share the rest of the connector:
//! schemas, credentials, transport.

mod gmail;
mod sendgrid;

use std::collections::HashMap;
use std::sync::Arc;

use super::mapping::OperationCode;

/// Code-backed methods by (integration, method).
pub(super) fn built_in() -> HashMap<(&'static str, &'static str), Arc<dyn OperationCode>> {
    let mut code: HashMap<(&'static str, &'static str), Arc<dyn OperationCode>> = HashMap::new();
    code.insert(("gmail", "send_message"), Arc::new(gmail::SendMessage));
    code.insert(("sendgrid", "send_email"), Arc::new(sendgrid::SendEmail));
    code
}
