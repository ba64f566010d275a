//! Task events, published in order to containerd's ttrpc `Events.Forward`
//! from one queue. A publish that fails because containerd is away (it
//! restarts: the connection is closed, or nobody listens yet) is retried in
//! place on a new connection, so the events behind it wait: their order
//! holds and none is dropped while containerd restarts. containerd-shim's
//! `RemotePublisher` requeued a failed event behind later ones after a
//! sleep, so after a containerd restart the first event (a live-restored
//! container's TaskExit) came after its TaskDelete, or went with the shim
//! when it exited first. An event containerd answers with an error is
//! logged and dropped; a failed publish never crashes the shim (gVisor's Go
//! shim panicked here).

use std::{sync::Arc, time::Duration};

use containerd_shim::{
    event::Event,
    protos::{
        protobuf::Message,
        shim::{event::Envelope, events::ForwardRequest},
        shim_async::EventsClient,
        ttrpc::{self, asynchronous::Client},
    },
    publisher::RemotePublisher,
};
use tokio::sync::{mpsc, watch};

/// How long one event is retried while containerd cannot be reached before
/// it is dropped (containerd restarting under many shims takes a while).
const GIVE_UP: Duration = Duration::from_secs(120);
/// Deadline of one `Forward` call: long, because a call that times out
/// may still be taken once containerd runs again, and the retry would then
/// publish the event twice (seen in the soak with containerd stopped for
/// 5 s). A connection that breaks fails the call at once.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// The type URL containerd expects for a task event (`containerd.events.
/// TaskExit`), from the message's name: containerd-shim's `convert_to_any`
/// asks the message's descriptor for it (see [`crate::convert::to_any`]).
fn type_url<E: Message>() -> String {
    format!("containerd.events.{}", E::NAME)
}

/// Where events go.
#[derive(Clone)]
enum Sink {
    /// Dropped (the `delete` action).
    Nowhere,
    /// containerd, through the ordered queue.
    Remote(Queue),
    /// A channel of (topic, event text), for tests of the service.
    Channel(tokio::sync::mpsc::UnboundedSender<(String, String)>),
}

/// The ordered queue: envelopes in, one sender task out.
#[derive(Clone)]
struct Queue {
    tx: mpsc::UnboundedSender<Envelope>,
    /// Events queued and not yet delivered (or given up).
    pending: Arc<watch::Sender<usize>>,
}

/// Publishes events for one containerd namespace.
#[derive(Clone)]
pub struct Events {
    sink: Sink,
    namespace: String,
}

impl Events {
    /// Events go to the containerd `publisher` was connected to (None:
    /// dropped, for tests and `delete`). Must be called within a tokio runtime.
    pub fn new(publisher: Option<RemotePublisher>, namespace: &str) -> Self {
        match publisher {
            Some(p) => Events::remote(&p.address, namespace),
            None => Events {
                sink: Sink::Nowhere,
                namespace: namespace.to_string(),
            },
        }
    }

    /// Events go to containerd's ttrpc socket at `address` (a path or a
    /// `unix://` address), in order. Must be called within a tokio runtime.
    pub fn remote(address: &str, namespace: &str) -> Self {
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(watch::Sender::new(0));
        tokio::spawn(deliver_all(address, rx, pending.clone()));
        Events {
            sink: Sink::Remote(Queue { tx, pending }),
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

    /// Queues `event` under its topic, behind every event sent before it.
    pub async fn send<E: Event + Message>(&self, event: E) {
        let topic = event.topic();
        log::debug!("publish topic={topic} event={event:?}");
        let q = match &self.sink {
            Sink::Nowhere => return,
            Sink::Channel(tx) => {
                let _ = tx.send((topic, format!("{event:?}")));
                return;
            }
            Sink::Remote(q) => q,
        };
        let mut env = Envelope::new();
        env.set_topic(topic.clone());
        env.set_namespace(self.namespace.clone());
        env.timestamp = Some(crate::convert::now()).into();
        env.event = Some(crate::convert::to_any(&type_url::<E>(), &event)).into();
        q.pending.send_modify(|n| *n += 1);
        if q.tx.send(env).is_err() {
            q.pending.send_modify(|n| *n = n.saturating_sub(1));
            log::error!("publish {topic} failed: the event queue is gone");
        }
    }

    /// Waits (until `timeout`) for every queued event to reach containerd;
    /// called before the shim exits. Returns whether the queue emptied.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let Sink::Remote(q) = &self.sink else {
            return true;
        };
        let mut rx = q.pending.subscribe();
        let emptied = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
        if !matches!(emptied, Ok(Ok(_))) {
            log::warn!(
                "{} events not delivered to containerd before exit",
                *q.pending.borrow()
            );
            return false;
        }
        true
    }
}

/// The queue's sender task: one event at a time, in order.
async fn deliver_all(
    address: String,
    mut rx: mpsc::UnboundedReceiver<Envelope>,
    pending: Arc<watch::Sender<usize>>,
) {
    let mut client = None;
    while let Some(env) = rx.recv().await {
        deliver(&address, &mut client, &env).await;
        pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Forwards one envelope, reconnecting and retrying (for up to
/// [`GIVE_UP`]) while containerd cannot be reached.
async fn deliver(address: &str, client: &mut Option<EventsClient>, env: &Envelope) {
    let topic = env.topic();
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    let mut req = ForwardRequest::new();
    req.set_envelope(env.clone());
    loop {
        if client.is_none() {
            match Client::connect(address).await {
                Ok(c) => *client = Some(EventsClient::new(c)),
                Err(e) => log::debug!("connect {address} to publish {topic}: {e}"),
            }
        }
        if let Some(c) = client.as_ref() {
            let ctx = ttrpc::context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
            match c.forward(ctx, &req).await {
                Ok(_) => return,
                // containerd answered: retrying would get the same answer.
                Err(ttrpc::Error::RpcStatus(s)) => {
                    log::error!("publish {topic} failed: containerd refused it: {s:?}");
                    return;
                }
                Err(e) => {
                    log::warn!("publish {topic}: {e}; retrying on a new connection");
                    *client = None;
                }
            }
        }
        if started.elapsed() >= GIVE_UP {
            log::error!("publish {topic} failed: containerd unreachable for {GIVE_UP:?}; dropped");
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Convenience re-exports for callers building events.
pub use containerd_shim::protos::events::task::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO,
    TaskOOM, TaskPaused, TaskResumed, TaskStart,
};

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use containerd_shim::protos::{
        api::Empty,
        shim_async::{create_events, Events as EventsService},
        ttrpc::asynchronous::{transport::Listener, Server, TtrpcContext},
    };

    use super::*;

    /// containerd's side: records the topics forwarded to it.
    struct Containerd(Arc<Mutex<Vec<String>>>);

    #[async_trait]
    impl EventsService for Containerd {
        async fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
            let env = req.envelope();
            let exit = TaskExit::parse_from_bytes(&env.event.value).unwrap_or_default();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", env.topic(), exit.exit_status));
            Ok(Empty::default())
        }
    }

    use containerd_shim::protos::protobuf::{Message, MessageFull};

    #[test]
    fn type_urls_are_the_descriptors_full_names() {
        fn check<E: MessageFull>() {
            assert_eq!(type_url::<E>(), E::descriptor().full_name());
        }
        check::<TaskCreate>();
        check::<TaskStart>();
        check::<TaskDelete>();
        check::<TaskIO>();
        check::<TaskExit>();
        check::<TaskOOM>();
        check::<TaskExecAdded>();
        check::<TaskExecStarted>();
        check::<TaskPaused>();
        check::<TaskResumed>();
        check::<TaskCheckpointed>();
    }

    /// A containerd that takes its first Forward, then stops for a while
    /// before it answers, as a SIGSTOPped one does.
    struct Stalled {
        seen: Arc<Mutex<Vec<String>>>,
        first: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl EventsService for Stalled {
        async fn forward(&self, ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
            let taken = Containerd(self.seen.clone()).forward(ctx, req).await;
            if self.first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(6)).await;
            }
            taken
        }
    }

    fn serve(path: &std::path::Path, seen: Arc<Mutex<Vec<String>>>) -> Server {
        serve_with(path, Arc::new(Containerd(seen)))
    }

    fn serve_with(path: &std::path::Path, service: Arc<dyn EventsService + Send + Sync>) -> Server {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        let listener = Listener::try_from(listener).unwrap();
        Server::new()
            .add_listener(listener)
            .register_service(create_events(service))
    }

    #[tokio::test]
    async fn an_event_containerd_is_slow_to_take_is_forwarded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containerd.sock.ttrpc");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stalled = Stalled {
            seen: seen.clone(),
            first: true.into(),
        };
        let mut server = serve_with(&path, Arc::new(stalled));
        server.start().await.unwrap();
        let events = Events::remote(path.to_str().unwrap(), "ns");
        events.send(exit(0)).await;
        assert!(events.flush(Duration::from_secs(20)).await);
        assert_eq!(*seen.lock().unwrap(), ["/tasks/exit 0"]);
        server.shutdown().await.unwrap();
    }

    fn exit(status: u32) -> TaskExit {
        TaskExit {
            exit_status: status,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn events_sent_while_containerd_restarts_arrive_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containerd.sock.ttrpc");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut server = serve(&path, seen.clone());
        server.start().await.unwrap();
        let events = Events::remote(path.to_str().unwrap(), "ns");
        events.send(exit(1)).await;
        assert!(events.flush(Duration::from_secs(5)).await);

        // containerd stops: the connection closes and the socket goes.
        server.shutdown().await.unwrap();
        drop(server);
        let _ = std::fs::remove_file(&path);
        events.send(exit(2)).await;
        events.send(TaskDelete::default()).await;
        events.send(exit(3)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);

        // containerd is back on the same address.
        let mut server = serve(&path, seen.clone());
        server.start().await.unwrap();
        assert!(events.flush(Duration::from_secs(10)).await);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "/tasks/exit 1",
                "/tasks/exit 2",
                "/tasks/delete 0",
                "/tasks/exit 3"
            ]
        );
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn flush_gives_up_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::remote(dir.path().join("nobody").to_str().unwrap(), "ns");
        events.send(exit(1)).await;
        assert!(!events.flush(Duration::from_millis(200)).await);
    }
}
