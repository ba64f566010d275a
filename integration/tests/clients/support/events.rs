//! [`EventLog`]: an `Events.Subscribe` stream collected in the background
//! and decoded into [`Event`]s.

use std::time::Duration;

use containerd_client::{
    events::{
        TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOom, TaskPaused,
        TaskResumed, TaskStart,
    },
    services::v1::{events_client::EventsClient, PublishRequest, SubscribeRequest},
};
use prost::Message;
use prost_types::Any;
use tokio::{sync::watch, task::JoinHandle};

use super::{Client, DEADLINE};

/// One task event, decoded from an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `/tasks/create`, `/tasks/exit`, ...
    pub topic: String,
    /// The container.
    pub container_id: String,
    /// The exec id (exec-added/started), the exited process's id (exit: the
    /// container id for the init, else the exec id), or "".
    pub id: String,
    /// The pid the event carries, or 0.
    pub pid: u32,
    /// Exit status (exit and delete), or 0.
    pub exit_status: u32,
}

/// Topic of the event that tells an [`EventLog`] its subscription is live.
const PROBE_TOPIC: &str = "/clients-test/probe";

impl Event {
    fn decode(topic: &str, any: &Any) -> Option<Event> {
        let v = any.value.as_slice();
        let mut e = Event {
            topic: topic.to_string(),
            container_id: String::new(),
            id: String::new(),
            pid: 0,
            exit_status: 0,
        };
        match topic {
            "/tasks/create" => {
                let m = TaskCreate::decode(v).ok()?;
                (e.container_id, e.pid) = (m.container_id, m.pid);
            }
            "/tasks/start" => {
                let m = TaskStart::decode(v).ok()?;
                (e.container_id, e.pid) = (m.container_id, m.pid);
            }
            "/tasks/exit" => {
                let m = TaskExit::decode(v).ok()?;
                (e.container_id, e.id, e.pid, e.exit_status) =
                    (m.container_id, m.id, m.pid, m.exit_status);
            }
            "/tasks/delete" => {
                let m = TaskDelete::decode(v).ok()?;
                (e.container_id, e.id, e.pid, e.exit_status) =
                    (m.container_id, m.id, m.pid, m.exit_status);
            }
            "/tasks/oom" => e.container_id = TaskOom::decode(v).ok()?.container_id,
            "/tasks/exec-added" => {
                let m = TaskExecAdded::decode(v).ok()?;
                (e.container_id, e.id) = (m.container_id, m.exec_id);
            }
            "/tasks/exec-started" => {
                let m = TaskExecStarted::decode(v).ok()?;
                (e.container_id, e.id, e.pid) = (m.container_id, m.exec_id, m.pid);
            }
            "/tasks/paused" => e.container_id = TaskPaused::decode(v).ok()?.container_id,
            "/tasks/resumed" => e.container_id = TaskResumed::decode(v).ok()?.container_id,
            PROBE_TOPIC => {}
            _ => return None,
        }
        Some(e)
    }
}

/// The task events of the client's namespace, collected from an
/// `Events.Subscribe` stream in the background (as Docker's
/// `processEventStream`).
pub struct EventLog {
    seen: watch::Receiver<Vec<Event>>,
    task: JoinHandle<()>,
}

impl EventLog {
    /// Subscribes and returns once the subscription is live: it publishes
    /// probe events until one comes back, so no later event is missed.
    pub async fn subscribe(client: &Client) -> EventLog {
        let (tx, seen) = watch::channel(Vec::new());
        let mut events = EventsClient::new(client.channel.clone());
        let req = client.req(SubscribeRequest {
            filters: vec![format!("namespace=={}", client.namespace())],
        });
        let task = tokio::spawn(async move {
            // containerd sends the response headers with the first event.
            let Ok(stream) = events.subscribe(req).await else {
                return;
            };
            let mut stream = stream.into_inner();
            while let Ok(Some(env)) = stream.message().await {
                let Some(any) = env.event.as_ref() else {
                    continue;
                };
                if let Some(e) = Event::decode(&env.topic, any) {
                    tx.send_modify(|v| v.push(e));
                }
            }
        });
        let log = EventLog { seen, task };
        let mut publisher = EventsClient::new(client.channel.clone());
        let live = tokio::time::timeout(DEADLINE, async {
            loop {
                let probe = PublishRequest {
                    topic: PROBE_TOPIC.into(),
                    event: Some(Any {
                        type_url: "containerd.events.TaskOOM".into(),
                        value: TaskOom {
                            container_id: "probe".into(),
                        }
                        .encode_to_vec(),
                    }),
                };
                publisher
                    .publish(client.req(probe))
                    .await
                    .unwrap_or_else(|e| panic!("publish probe: {e:?}"));
                let mut seen = log.seen.clone();
                let probed = tokio::time::timeout(
                    Duration::from_millis(200),
                    seen.wait_for(|v| v.iter().any(|e| e.topic == PROBE_TOPIC)),
                )
                .await;
                if matches!(probed, Ok(Ok(_))) {
                    return;
                }
            }
        })
        .await;
        assert!(live.is_ok(), "event subscription never became live");
        log
    }

    /// The events of container `id` so far, in order.
    pub fn of(&self, id: &str) -> Vec<Event> {
        self.seen
            .borrow()
            .iter()
            .filter(|e| e.container_id == id)
            .cloned()
            .collect()
    }

    /// The topics of container `id` so far, in order.
    pub fn topics(&self, id: &str) -> Vec<String> {
        self.of(id).into_iter().map(|e| e.topic).collect()
    }

    /// Waits until `id` has had `n` events with `topic`; returns `id`'s events.
    pub async fn wait_for(&self, id: &str, topic: &str, n: usize) -> Vec<Event> {
        let mut seen = self.seen.clone();
        let got = tokio::time::timeout(
            DEADLINE,
            seen.wait_for(|v| {
                v.iter()
                    .filter(|e| e.container_id == id && e.topic == topic)
                    .count()
                    >= n
            }),
        )
        .await;
        assert!(
            matches!(got, Ok(Ok(_))),
            "{topic} (x{n}) for {id} never seen; events: {:#?}",
            self.of(id)
        );
        self.of(id)
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
