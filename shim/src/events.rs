//! Task events, published in order through containerd-shim's
//! `RemotePublisher` (one queue, retried there). A failed publish is logged,
//! never fatal: gVisor's Go shim panicked here.

use std::sync::Arc;

use containerd_shim::{event::Event, protos::protobuf::MessageDyn, publisher::RemotePublisher};

/// Publishes events for one containerd namespace.
#[derive(Clone)]
pub struct Events {
    publisher: Option<Arc<RemotePublisher>>,
    namespace: String,
}

impl Events {
    /// Events go to `publisher` (None: dropped, for tests and `delete`).
    pub fn new(publisher: Option<RemotePublisher>, namespace: &str) -> Self {
        Events {
            publisher: publisher.map(Arc::new),
            namespace: namespace.to_string(),
        }
    }

    /// Enqueues `event` under its topic.
    pub async fn send<E: Event + MessageDyn>(&self, event: E) {
        let topic = event.topic();
        log::debug!("publish topic={topic} event={event:?}");
        let Some(p) = &self.publisher else {
            return;
        };
        let ctx = containerd_shim::protos::ttrpc::context::with_timeout(5_000_000_000);
        if let Err(e) = p
            .publish(ctx, &topic, &self.namespace, Box::new(event))
            .await
        {
            log::error!("publish {topic} failed: {e}");
        }
    }
}

/// Convenience re-exports for callers building events.
pub use containerd_shim::protos::events::task::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO,
    TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
