//! A published message: what it was published with, its properties (wire octets) and its
//! body. Shared by every queue it is routed to through one `Arc`: never copied.

use crate::protocol::{EncodedProperties, LongStr, ShortStr};
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: EncodedProperties,
    pub body: Bytes,
    /// BCC routing keys: stripped from the headers consumers see, kept for dead-lettering
    /// (which routes by the original keys again). Empty, unallocated, for most messages.
    pub bcc: Vec<LongStr>,
}

pub type MessageRef = Arc<Message>;

impl Message {
    /// Octets counted against queue length limits (the body, as RabbitMQ counts).
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// delivery-mode 2: kept on disk when routed to a durable queue.
    pub fn persistent(&self) -> bool {
        self.properties.delivery_mode() == Some(2)
    }
}
