//! Task events, published in order through containerd-shim's
//! `RemotePublisher` (one queue, retried there). A failed publish is logged,
//! never fatal: gVisor's Go shim panicked here.

use std::sync::Arc;

use containerd_shim::{event::Event, protos::protobuf::MessageDyn, publisher::RemotePublisher};

/// Where events go.
#[derive(Clone)]
enum Sink {
    /// Dropped (the `delete` action).
    Nowhere,
    /// containerd.
    Remote(Arc<RemotePublisher>),
    /// A channel of (topic, event text), for tests of the service.
    Channel(tokio::sync::mpsc::UnboundedSender<(String, String)>),
}

/// Publishes events for one containerd namespace.
#[derive(Clone)]
pub struct Events {
    sink: Sink,
    namespace: String,
}

impl Events {
    /// Events go to `publisher` (None: dropped, for tests and `delete`).
    pub fn new(publisher: Option<RemotePublisher>, namespace: &str) -> Self {
        Events {
            sink: publisher.map_or(Sink::Nowhere, |p| Sink::Remote(Arc::new(p))),
            namespace: namespace.to_string(),
        }
    }

    /// Events go to the returned channel as (topic, debug text) pairs.
    pub fn recording(
        namespace: &str,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<(String, String)>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let events = Events {
            sink: Sink::Channel(tx),
            namespace: namespace.to_string(),
        };
        (events, rx)
    }

    /// Publishes `event` under its topic; returns once containerd has it.
    pub async fn send<E: Event + MessageDyn>(&self, event: E) {
        let topic = event.topic();
        log::debug!("publish topic={topic} event={event:?}");
        let p = match &self.sink {
            Sink::Nowhere => return,
            Sink::Channel(tx) => {
                let _ = tx.send((topic, format!("{event:?}")));
                return;
            }
            Sink::Remote(p) => p,
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
