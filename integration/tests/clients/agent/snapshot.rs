//! The service's versions: CommitSnapshot of a stopped gVisor container's
//! active snapshot, PrepareSnapshot on the committed one, DeleteContainer
//! (the record only) and CreateContainerFromSnapshot with the same id, labels,
//! runtime and spec; later a rollback to the first version. Each new task
//! sees exactly the files of the version it was made from (runsc
//! 0.0~20240729 keeps rootfs writes in the sandbox unless the shim says
//! otherwise, so run this tier with both runsc versions).
//!
//! Unlike the service, the snapshot steps run under a lease (as its
//! CreateContainer does): containerd's garbage collector removes a snapshot
//! nothing refers to, such as the new active one between DeleteContainer
//! and the new record, and does so here within the test's time.

use std::time::Duration;

use containerd_client::{
    services::v1::{
        containers_client::ContainersClient,
        leases_client::LeasesClient,
        snapshots::{
            snapshots_client::SnapshotsClient, CommitSnapshotRequest, PrepareSnapshotRequest,
            RemoveSnapshotRequest,
        },
        Container, CreateContainerRequest, CreateRequest as CreateLease,
        DeleteRequest as DeleteLease,
    },
    tonic::Request,
};

use super::{unique, Agent};
use crate::support::{create_container, rt, Containerd};

/// The workspace's init: TERM ends it under gVisor (see `lifecycle`), so
/// StopContainer needs no KILL.
const INIT: &[&str] = &["sleep", "1000"];

impl Agent {
    /// `msg` in the namespace and lease `lease`.
    fn leased<T>(&self, lease: &str, msg: T) -> Request<T> {
        let mut req = self.client.req(msg);
        req.metadata_mut()
            .insert("containerd-lease", lease.parse().unwrap());
        req
    }

    /// A lease (the Go client's `WithLease`): what is made under it is not
    /// garbage-collected before the container record refers to it.
    async fn lease(&self) -> String {
        let id = unique("agent-lease");
        let req = self.client.req(CreateLease {
            id: id.clone(),
            ..Default::default()
        });
        LeasesClient::new(self.client.channel.clone())
            .create(req)
            .await
            .unwrap_or_else(|e| panic!("create lease: {e:?}"));
        id
    }

    async fn end_lease(&self, id: &str) {
        let req = self.client.req(DeleteLease {
            id: id.into(),
            sync: false,
        });
        LeasesClient::new(self.client.channel.clone())
            .delete(req)
            .await
            .unwrap_or_else(|e| panic!("delete lease {id}: {e:?}"));
    }

    fn snapshots(&self) -> SnapshotsClient<containerd_client::tonic::transport::Channel> {
        SnapshotsClient::new(self.client.channel.clone())
    }

    /// CommitSnapshot: the active snapshot `key` becomes `name`.
    async fn commit(&self, lease: &str, snapshotter: &str, name: &str, key: &str) {
        let req = CommitSnapshotRequest {
            snapshotter: snapshotter.into(),
            name: name.into(),
            key: key.into(),
            ..Default::default()
        };
        self.snapshots()
            .commit(self.leased(lease, req))
            .await
            .unwrap_or_else(|e| panic!("commit {key} as {name}: {e:?}"));
    }

    /// PrepareSnapshot: a new active snapshot `key` on `parent`.
    async fn prepare(&self, lease: &str, snapshotter: &str, key: &str, parent: &str) {
        let req = PrepareSnapshotRequest {
            snapshotter: snapshotter.into(),
            key: key.into(),
            parent: parent.into(),
            ..Default::default()
        };
        self.snapshots()
            .prepare(self.leased(lease, req))
            .await
            .unwrap_or_else(|e| panic!("prepare {key} on {parent}: {e:?}"));
    }

    async fn remove_snapshot(&self, snapshotter: &str, key: &str) {
        let req = RemoveSnapshotRequest {
            snapshotter: snapshotter.into(),
            key: key.into(),
        };
        self.snapshots()
            .remove(self.client.req(req))
            .await
            .unwrap_or_else(|e| panic!("remove snapshot {key}: {e:?}"));
    }

    /// Makes `parent` the base of a new active snapshot and the container
    /// (same id, image, labels, runtime, spec) anew on it, and starts it:
    /// CreateVersion's and RollbackVersion's second half.
    async fn replace_snapshot(&self, lease: &str, info: &Container, active: &str, parent: &str) {
        self.prepare(lease, &info.snapshotter, active, parent).await;
        self.delete_container(&info.id).await;
        let container = Container {
            snapshot_key: active.into(),
            created_at: None,
            updated_at: None,
            ..info.clone()
        };
        ContainersClient::new(self.client.channel.clone())
            .create(self.leased(
                lease,
                CreateContainerRequest {
                    container: Some(container),
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("create {} on {active}: {e:?}", info.id));
        self.start_container(&info.id).await;
    }

    /// `cat` of `path` in `id`: its content, or None if it does not exist.
    async fn read(&self, id: &str, path: &str) -> Option<String> {
        let out = self.exec_task(id, &["cat", path]).await;
        (out.exit_code == 0).then_some(out.stdout)
    }
}

#[test]
fn committed_versions_of_a_stopped_container_hold_its_files() {
    let c = Containerd::start();
    let id = unique("agent-ws");
    let label = format!("app={id}");
    create_container(&c, &id, &["--label", &label], INIT);
    rt().block_on(async {
        let a = Agent::connect(&c).await;
        a.start_container(&id).await;
        // The agent works in its workspace: a new file, a changed and a
        // removed file of the image.
        let work = "mkdir -p /workspace && echo v1 > /workspace/note \
                    && echo changed > /etc/passwd && rm /etc/group";
        assert_eq!(a.exec_task(&id, &["sh", "-c", work]).await.exit_code, 0);

        // CreateVersion: stop, commit the active snapshot, a new container
        // on a snapshot of that version.
        let info = a.container(&id).await.unwrap();
        assert_eq!(info.snapshot_key, id);
        let stop = Duration::from_secs(20);
        a.stop_and_delete_task(&id, stop).await;
        let v1 = format!("{id}-v1");
        let lease = a.lease().await;
        a.commit(&lease, &info.snapshotter, &v1, &info.snapshot_key)
            .await;
        let active1 = format!("{id}-active-1");
        a.replace_snapshot(&lease, &info, &active1, &v1).await;
        a.end_lease(&lease).await;
        assert_eq!(a.list_by_label("app", &id).await, [id.as_str()]);
        assert_eq!(a.container(&id).await.unwrap().snapshot_key, active1);
        assert_eq!(
            a.read(&id, "/workspace/note").await.as_deref(),
            Some("v1\n")
        );
        assert_eq!(
            a.read(&id, "/etc/passwd").await.as_deref(),
            Some("changed\n")
        );
        assert_eq!(a.read(&id, "/etc/group").await, None);

        // A second version on top of the first.
        let work = "echo v2 > /workspace/note && echo new > /workspace/v2-only";
        assert_eq!(a.exec_task(&id, &["sh", "-c", work]).await.exit_code, 0);
        let info = a.container(&id).await.unwrap();
        a.stop_and_delete_task(&id, stop).await;
        let v2 = format!("{id}-v2");
        let lease = a.lease().await;
        a.commit(&lease, &info.snapshotter, &v2, &active1).await;
        let active2 = format!("{id}-active-2");
        a.replace_snapshot(&lease, &info, &active2, &v2).await;
        a.end_lease(&lease).await;
        assert_eq!(
            a.read(&id, "/workspace/note").await.as_deref(),
            Some("v2\n")
        );
        assert_eq!(
            a.read(&id, "/workspace/v2-only").await.as_deref(),
            Some("new\n")
        );

        // RollbackVersion to the first: the second's files are gone.
        let info = a.container(&id).await.unwrap();
        a.stop_and_delete_task(&id, stop).await;
        let rollback = format!("{id}-rollback-1");
        let lease = a.lease().await;
        a.replace_snapshot(&lease, &info, &rollback, &v1).await;
        a.end_lease(&lease).await;
        assert_eq!(
            a.read(&id, "/workspace/note").await.as_deref(),
            Some("v1\n")
        );
        assert_eq!(a.read(&id, "/workspace/v2-only").await, None);
        assert_eq!(a.read(&id, "/etc/group").await, None);

        a.stop_and_delete_task(&id, stop).await;
        // DeleteContainer with CleanupSnapshot: the snapshot, then the
        // record (once nothing refers to a snapshot, containerd's garbage
        // collector may remove it first). The versions nothing refers to
        // any more are the collector's.
        a.remove_snapshot(&info.snapshotter, &rollback).await;
        a.delete_container(&id).await;
    });
    c.stop_and_check();
}
