//! A one-member replica end to end: proposals are committed through Raft, applied into rows, and
//! survive restarts and snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use overture_core::command::{Command, Ctx, IdSource, StartWorkflow, TaskResultStatus, TaskUpdate};
use overture_core::dsl::{TaskDef, WorkflowDef};
use overture_core::{Plan, TaskStatus, WorkflowId, WorkflowState, WorkflowStatus, decide};
use overture_raft::codec::JsonBytes;
use overture_raft::replica::{Database, Storage, leadership_of};
use overture_raft::types::Node;
use overture_raft::{ApplyListener, Changes, Replica, ReplicaOptions, Request, Response, WorkflowBatch};
use parking_lot::Mutex;
use serde_json::json;

struct Ids(u32);
impl IdSource for Ids {
    fn next_id(&mut self) -> String {
        self.0 += 1;
        format!("task-{}", self.0)
    }
}

async fn open(dir: &std::path::Path, snapshot_every: u64) -> Replica {
    let mut options = ReplicaOptions::new(1, dir.to_path_buf());
    options.snapshot_every = snapshot_every;
    options.keep_after_snapshot = 0;
    let replica = Replica::open(options).await.expect("replica opens");
    lead_alone(&replica).await;
    replica
}

/// Makes `replica` a group of one, node 1, and waits until it is the ready leader.
async fn lead_alone(replica: &Replica) {
    replica.initialize(BTreeMap::from([(1, Node { addr: "127.0.0.1:0".into() })])).await.expect("initializes");
    replica
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| leadership_of(m, Duration::from_secs(1)).ready, "leader and ready")
        .await
        .expect("becomes a ready leader");
}

fn plan() -> Arc<Plan> {
    let def: WorkflowDef = serde_json::from_value(json!({
        "name": "wf", "tasks": [
            {"name": "a", "taskReferenceName": "a", "taskDefinition": {"name": "a", "responseTimeoutSeconds": 60}},
            {"name": "b", "taskReferenceName": "b"}
        ]
    }))
    .expect("definition");
    Arc::new(Plan::new(def))
}

async fn start(replica: &Replica, id: &str, ids: &mut Ids) -> WorkflowState {
    start_child(replica, id, ids, None).await
}

async fn start_child(
    replica: &Replica,
    id: &str,
    ids: &mut Ids,
    parent: Option<(WorkflowId, String)>,
) -> WorkflowState {
    start_at(replica, id, ids, parent, 1_000).await
}

async fn start_at(
    replica: &Replica,
    id: &str,
    ids: &mut Ids,
    parent: Option<(WorkflowId, String)>,
    now: i64,
) -> WorkflowState {
    let (state, events) = decide::start(start_command(id, parent), &mut Ctx::new(now, ids));
    let r = replica
        .propose(Request::Workflow(WorkflowBatch { workflow_id: id.into(), expected_revision: 0, events }))
        .await;
    assert_eq!(r.expect("committed"), Response::Applied { revision: state.header.revision });
    state
}

fn start_command(id: &str, parent: Option<(WorkflowId, String)>) -> StartWorkflow {
    StartWorkflow { parent, ..StartWorkflow::new(id, plan()) }
}

async fn step(replica: &Replica, state: &mut WorkflowState, cmd: Command, ids: &mut Ids, now: i64) -> Response {
    let expected_revision = state.header.revision;
    let events = decide::decide(state, cmd, &mut Ctx::new(now, ids)).expect("accepted");
    let batch = WorkflowBatch { workflow_id: state.header.workflow_id.clone(), expected_revision, events };
    replica.propose(Request::Workflow(batch)).await.expect("committed")
}

fn complete(task_id: &str) -> Command {
    Command::Update(Box::new(TaskUpdate {
        task_id: task_id.into(),
        status: TaskResultStatus::Completed,
        output: Some(Default::default()),
        merge_output: false,
        reason: None,
        worker_id: None,
        callback_after_seconds: 0,
        extend_lease: false,
        logs: vec!["done".into()],
        output_stored_at: None,
    }))
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Changes>>);
impl ApplyListener for Recorder {
    fn applied(&self, changes: &Changes) {
        self.0.lock().push(changes.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_rows_follow_state_and_survive_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 100_000).await;
    let recorder = Arc::new(Recorder::default());
    let rows = replica.attach_listener(recorder.clone()).expect("attach");
    assert!(rows.queue.is_empty() && rows.timers.is_empty() && rows.running.is_empty());

    let mut ids = Ids(0);
    let mut state = start(&replica, "w1", &mut ids).await;
    let queue = replica.read().queue_entries().expect("scan");
    assert_eq!(queue.len(), 1);
    assert_eq!((queue[0].queue.as_str(), queue[0].task_id.as_str()), ("a", "task-1"));
    assert!(matches!(
        recorder.0.lock().last().map(|c| c.rows.as_slice()),
        Some([overture_raft::RowChange::QueueAdded(_)])
    ));

    // Poll: the queue entry goes, a response-timeout timer comes.
    step(
        &replica,
        &mut state,
        Command::Poll { task_id: "task-1".into(), worker_id: Some("w".into()) },
        &mut ids,
        2_000,
    )
    .await;
    assert!(replica.read().queue_entries().expect("scan").is_empty());
    let timers = replica.read().timers().expect("scan");
    assert_eq!(timers.iter().map(|t| t.fire_at).collect::<Vec<_>>(), [2_000 + 60_000]);
    let running = replica.read().running_entries().expect("scan");
    assert_eq!(running.iter().map(|r| r.task_id.as_str()).collect::<Vec<_>>(), ["task-1"], "a polled task runs");

    // A stale proposal (old revision) is skipped and reported as a conflict.
    let stale = WorkflowBatch { workflow_id: "w1".into(), expected_revision: 1, events: vec![] };
    let r = replica.propose(Request::Workflow(stale)).await.expect("committed");
    assert_eq!(r, Response::RevisionConflict { current: state.header.revision });

    // Completing `a` schedules `b`: timer gone, `b` queued, log line stored.
    step(&replica, &mut state, complete("task-1"), &mut ids, 3_000).await;
    assert!(replica.read().timers().expect("scan").is_empty());
    assert!(replica.read().running_entries().expect("scan").is_empty());
    assert_eq!(replica.read().queue_entries().expect("scan")[0].task_id, "task-2");
    assert_eq!(replica.read().task_logs("task-1").expect("logs")[0].log, "done");
    assert_eq!(replica.read().task_owner("task-2").expect("ref").map(|r| r.seq), Some(2));

    let stored = replica.read().workflow("w1").expect("read").expect("exists");
    assert_eq!(stored.header, state.header);
    assert_eq!(stored.tasks, state.tasks);

    // Restart on the same directory: nothing lost.
    replica.close(Duration::from_secs(10)).await.expect("closes");
    let replica = open(dir.path(), 100_000).await;
    let stored = replica.read().workflow("w1").expect("read").expect("exists after restart");
    assert_eq!(stored.tasks, state.tasks);
    assert_eq!(stored.plan.def, state.plan.def);
    step(&replica, &mut state, Command::Poll { task_id: "task-2".into(), worker_id: None }, &mut ids, 4_000).await;
    step(&replica, &mut state, complete("task-2"), &mut ids, 5_000).await;
    let stored = replica.read().workflow("w1").expect("read").expect("exists");
    assert_eq!(stored.header.status, WorkflowStatus::Completed);
    assert!(stored.tasks.iter().all(|t| t.status == TaskStatus::Completed));
    replica.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workflow_batches_share_entries_each_under_its_own_guard() {
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 100_000).await;
    let mut ids = Ids(0);
    let first = start(&replica, "first", &mut ids).await;
    let applied = || replica.raft().metrics().borrow_watched().last_applied.map_or(0, |id| id.index);
    let before = applied();

    // Forty starts and one stale batch, proposed at once.
    const STARTS: usize = 40;
    let mut expected = Vec::new();
    let mut proposals = Vec::new();
    for i in 0..STARTS {
        let id = format!("w{i}");
        let (state, events) = decide::start(start_command(&id, None), &mut Ctx::new(1_000, &mut ids));
        expected.push(Response::Applied { revision: state.header.revision });
        proposals.push(WorkflowBatch { workflow_id: id.into(), expected_revision: 0, events });
    }
    expected.push(Response::RevisionConflict { current: first.header.revision });
    proposals.push(WorkflowBatch { workflow_id: "first".into(), expected_revision: 0, events: vec![] });
    let responses = futures::future::join_all(proposals.into_iter().map(|b| replica.propose(Request::Workflow(b))))
        .await
        .into_iter()
        .map(|r| r.expect("committed"))
        .collect::<Vec<_>>();
    assert_eq!(responses, expected, "each batch gets its own response");

    let entries = applied() - before;
    assert!(
        entries <= (STARTS as u64 + 1) / 4,
        "{} batches proposed together took {entries} entries; they should share a few",
        STARTS + 1
    );
    assert_eq!(replica.read().queue_entries().expect("scan").len(), STARTS + 1, "every start queued its first task");
    for i in 0..STARTS {
        let stored = replica.read().workflow(&format!("w{i}")).expect("read").expect("stored");
        assert_eq!(stored.header.status, WorkflowStatus::Running);
    }

    // An entry of several batches, proposed directly: a batch behind the guard changes nothing
    // while the others in the same entry apply.
    let mut state = replica.read().workflow("w0").expect("read").expect("stored");
    let task = state.tasks[0].task_id.clone();
    let revision = state.header.revision;
    let events =
        decide::decide(&mut state, Command::Poll { task_id: task, worker_id: None }, &mut Ctx::new(2_000, &mut ids))
            .expect("accepted");
    let r = replica
        .propose(Request::Workflows(vec![
            WorkflowBatch { workflow_id: "w1".into(), expected_revision: revision + 5, events: events.clone() },
            WorkflowBatch { workflow_id: "w0".into(), expected_revision: revision, events },
        ]))
        .await
        .expect("committed");
    assert_eq!(
        r,
        Response::Many(vec![
            Response::RevisionConflict { current: revision },
            Response::Applied { revision: state.header.revision },
        ])
    );
    let stored = replica.read().workflow("w0").expect("read").expect("stored");
    assert_eq!(stored.tasks[0].status, TaskStatus::InProgress);
    let untouched = replica.read().workflow("w1").expect("read").expect("stored");
    assert_eq!(untouched.header.revision, revision);
    assert_eq!(untouched.tasks[0].status, TaskStatus::Scheduled);
    replica.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_conflict_and_not_found_are_values() {
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 100_000).await;
    let def: WorkflowDef =
        serde_json::from_value(json!({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "a"}]})).expect("def");
    let put = |overwrite| Request::PutWorkflowDefs { defs: vec![JsonBytes::of(&def)], overwrite, time: 7 };
    assert_eq!(replica.propose(put(false)).await.expect("ok"), Response::Ok);
    assert_eq!(
        replica.propose(put(false)).await.expect("ok"),
        Response::Conflict("Workflow with w.1 already exists!".into())
    );
    assert_eq!(replica.propose(put(true)).await.expect("ok"), Response::Ok);
    let stored = replica.read().workflow_def("w", None).expect("read").expect("latest");
    assert_eq!((stored.audit.create_time, stored.audit.update_time), (Some(7), Some(7)));

    let missing = TaskDef::with_defaults("nope");
    let r = replica.propose(Request::UpdateTaskDef { def: JsonBytes::of(&missing), time: 1 }).await.expect("ok");
    assert_eq!(r, Response::NotFound("No such taskType found by name: nope".into()));
    let r = replica.propose(Request::DeleteWorkflowDef { name: "w".into(), version: 9 }).await.expect("ok");
    assert!(matches!(r, Response::NotFound(_)));
    replica.shutdown().await;
}

/// An entry whose payload does not parse is answered with a rejection and writes nothing; the
/// replica goes on applying what follows. (It used to become a storage error, which stops
/// openraft for good on every replica at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_payloads_are_rejected_and_apply_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 100_000).await;
    let good = JsonBytes::of(&TaskDef::with_defaults("good"));
    let cut_off = JsonBytes(br#"{"name": "cut"#.to_vec());
    let (_, digest_before) = replica.digest().expect("digest");
    for request in [
        Request::PutTaskDefs { defs: vec![good.clone(), cut_off.clone()] },
        Request::UpdateTaskDef { def: cut_off.clone(), time: 1 },
        Request::PutWorkflowDefs { defs: vec![cut_off.clone()], overwrite: true, time: 1 },
        Request::PutEventHandler { handler: cut_off.clone(), create: true },
        Request::PutSchedule { schedule: JsonBytes(b"[1, 2".to_vec()) },
    ] {
        let what = request.to_string();
        let r = replica.propose(request).await.expect("committed");
        assert!(matches!(&r, Response::Rejected(m) if m.contains("could not be applied")), "{what}: {r:?}");
    }
    assert_eq!(replica.read().task_def("good").expect("read"), None, "a rejected request writes nothing");
    let (_, digest_after) = replica.digest().expect("digest");
    assert_eq!(digest_before, digest_after, "nothing but the applied index changed");
    assert!(replica.is_running(), "Raft still runs");
    assert_eq!(replica.propose(Request::PutTaskDefs { defs: vec![good] }).await.expect("ok"), Response::Ok);
    assert!(replica.read().task_def("good").expect("read").is_some(), "what follows applies");
    replica.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_install_elsewhere() {
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 20).await;
    let mut ids = Ids(0);
    for i in 0..30 {
        start(&replica, &format!("w{i}"), &mut ids).await;
    }
    let metrics = replica
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.snapshot.is_some() && m.purged.is_some(), "snapshot built and log purged")
        .await
        .expect("snapshot policy triggers");
    let snapshot_index = metrics.snapshot.as_ref().map(|s| s.index).unwrap_or_default();
    assert!(snapshot_index >= 19, "snapshot at {snapshot_index}");
    assert!(metrics.purged.as_ref().is_some_and(|p| p.index <= snapshot_index));

    // Restart: the purged prefix is not replayed; everything is still readable.
    replica.close(Duration::from_secs(10)).await.expect("closes");
    let replica = open(dir.path(), 20).await;
    for i in 0..30 {
        assert!(replica.read().workflow(&format!("w{i}")).expect("read").is_some(), "w{i} after restart");
    }

    // Install the snapshot into a fresh store: same rows.
    let snap = replica.raft().get_snapshot().await.expect("raft").expect("a current snapshot");
    let other_dir = tempfile::tempdir().expect("dir");
    let mut other = Storage::open(&ReplicaOptions::new(2, other_dir.path().to_path_buf())).expect("opens");
    let everything = overture_core::search::Query::all_of(Vec::new());
    let by_start =
        overture_core::search::Sort::parse("startTime:ASC", overture_core::search::WORKFLOW_FIELDS).expect("sort");
    let total = |read: &overture_raft::read::ReadView| {
        read.search_workflows(&everything, &by_start, overture_raft::search::Window::ALL).expect("search").total
    };
    assert_eq!(total(&other.read), 0, "an empty store counts nothing");
    use openraft::storage::RaftStateMachine;
    other.state_machine.install_snapshot(&snap.meta, snap.snapshot).await.expect("installs");
    let (applied, _) = other.state_machine.applied_state().await.expect("state");
    assert_eq!(applied, snap.meta.last_log_id);
    let in_snapshot = (0..30).filter(|i| other.read.workflow(&format!("w{i}")).expect("read").is_some()).count();
    assert!(in_snapshot >= 18, "workflows in the snapshot: {in_snapshot}");
    assert_eq!(total(&other.read), in_snapshot as u64, "the installed rows are counted anew");
    assert_eq!(other.read.queue_entries().expect("scan").len(), in_snapshot);
    replica.shutdown().await;
}

/// Every window of a search answered from the index (a page cut from each prefix's first keys,
/// the total from the kept counts) equals the page a full read and sort gives: both orders, ties
/// in start time at the cut, and the counts after status changes, a purge and a restart.
#[tokio::test]
async fn index_pages_and_counts_equal_a_full_scan() {
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 100_000).await;
    let mut ids = Ids(0);
    let mut states = Vec::new();
    for i in 0..12 {
        states.push(start_at(&replica, &format!("w{:02}", 11 - i), &mut ids, None, 1_000 * (1 + i % 3)).await);
    }
    compare_index_pages(&replica, &[("RUNNING", 12)]);
    for state in states.iter_mut().take(2) {
        let r = step(&replica, state, Command::Terminate { reason: None }, &mut ids, 5_000).await;
        assert!(matches!(r, Response::Applied { .. }), "{r:?}");
    }
    let purge = Request::PurgeWorkflows { workflows: vec![(states[0].header.workflow_id.clone(), 10_000)] };
    assert_eq!(replica.propose(purge).await.expect("committed"), Response::Purged { count: 1 });
    compare_index_pages(&replica, &[("RUNNING", 10), ("TERMINATED", 1)]);
    replica.close(Duration::from_secs(10)).await.expect("closes");
    let replica = open(dir.path(), 100_000).await;
    compare_index_pages(&replica, &[("RUNNING", 10), ("TERMINATED", 1)]);
    replica.shutdown().await;
}

fn compare_index_pages(replica: &Replica, statuses: &[(&str, u64)]) {
    use overture_core::search::{Query, Sort, WORKFLOW_FIELDS};
    use overture_raft::search::{Page, Window};
    let read = replica.read();
    let all: u64 = statuses.iter().map(|(_, n)| n).sum();
    let mut queries = vec![
        ("status IN (RUNNING, COMPLETED, RUNNING, TERMINATED)".to_owned(), all),
        ("workflowType = 'wf'".to_owned(), all),
        (String::new(), all),
    ];
    queries.extend(statuses.iter().map(|(s, n)| (format!("status = {s} AND workflowType = 'wf'"), *n)));
    let names =
        |p: &Page<overture_core::WorkflowHeader>| p.results.iter().map(|h| h.workflow_id.clone()).collect::<Vec<_>>();
    for order in ["startTime:DESC", "startTime:ASC"] {
        let sort = Sort::parse(order, WORKFLOW_FIELDS).expect("sort");
        for (query, total) in &queries {
            let indexed = Query::parse(query, "", WORKFLOW_FIELDS).expect("query");
            // Free text matching every workflow takes the path that reads and sorts them all.
            let full = Query::parse(query, "wf", WORKFLOW_FIELDS).expect("query");
            for start in 0..14 {
                for size in 0..14 {
                    let window = Window { start, size };
                    let a = read.search_workflows(&indexed, &sort, window).expect("search");
                    let b = read.search_workflows(&full, &sort, window).expect("search");
                    assert_eq!((a.total, names(&a)), (b.total, names(&b)), "{order} {query:?} {start}+{size}");
                    assert_eq!(a.total, *total, "{query:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_missing_search_index_is_rebuilt_when_the_replica_opens() {
    use overture_core::search::{Query, Sort, TASK_FIELDS, WORKFLOW_FIELDS};
    use overture_raft::search::Window;
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 100_000).await;
    let mut ids = Ids(0);
    let mut first = start(&replica, "w1", &mut ids).await;
    start(&replica, "w2", &mut ids).await;
    step(&replica, &mut first, Command::Poll { task_id: "task-1".into(), worker_id: None }, &mut ids, 2_000).await;
    step(&replica, &mut first, complete("task-1"), &mut ids, 3_000).await;
    let search = |replica: &Replica| {
        let by_type = Query::parse("workflowType = 'wf'", "", WORKFLOW_FIELDS).expect("query");
        let by_task = Query::parse("taskType = 'a' AND status = 'COMPLETED'", "", TASK_FIELDS).expect("query");
        let sort = Sort::parse("startTime:ASC", WORKFLOW_FIELDS).expect("sort");
        let workflows = replica.read().search_workflows(&by_type, &sort, Window::ALL).expect("search");
        let tasks = replica.read().search_tasks(&by_task, &Sort::default(), Window::ALL).expect("search");
        (
            workflows.results.iter().map(|h| h.workflow_id.to_string()).collect::<Vec<_>>(),
            tasks.results.iter().map(|t| t.task.task_id.clone()).collect::<Vec<_>>(),
        )
    };
    let expected = (vec!["w1".to_owned(), "w2".to_owned()], vec!["task-1".to_owned()]);
    assert_eq!(search(&replica), expected);
    let (_, digest) = replica.digest().expect("digest");
    replica.close(Duration::from_secs(10)).await.expect("closes");

    // A data directory written before the index existed: no index rows.
    {
        let storage = Storage::open(&ReplicaOptions::new(1, dir.path().to_path_buf())).expect("opens");
        for family in [overture_raft::keys::CF_WF_INDEX, overture_raft::keys::CF_TASK_INDEX] {
            let cf = storage.db.cf_handle(family).expect("family");
            storage.db.delete_range_cf(cf, [0u8].as_slice(), [0xFFu8; 64].as_slice()).expect("wipe");
            assert!(storage.db.iterator_cf(cf, rocksdb::IteratorMode::Start).next().is_none(), "{family} wiped");
        }
    }
    let replica = open(dir.path(), 100_000).await;
    assert_eq!(search(&replica), expected);
    assert_eq!(replica.digest().expect("digest").1, digest, "the rebuilt index is the one apply wrote");
    replica.shutdown().await;
}

#[tokio::test]
async fn a_purge_deletes_only_ended_workflows_done_with_their_follow_ups() {
    let dir = tempfile::tempdir().expect("dir");
    let replica = open(dir.path(), 100_000).await;
    let mut ids = Ids(0);
    let mut lone = start(&replica, "lone", &mut ids).await;
    let mut child = start_child(&replica, "child", &mut ids, Some(("parent".into(), "sub".into()))).await;
    let running = start(&replica, "running", &mut ids).await;
    for state in [&mut lone, &mut child] {
        let id = state.header.workflow_id.clone();
        let reason = Some("stop".to_owned());
        let r = step(&replica, state, Command::Terminate { reason }, &mut ids, 5_000).await;
        assert!(matches!(r, Response::Applied { .. }), "{id}: {r:?}");
    }
    let purge = |workflows: Vec<(&str, i64)>| Request::PurgeWorkflows {
        workflows: workflows.into_iter().map(|(id, t)| (id.into(), t)).collect(),
    };
    // Ended after the cutoff: kept.
    let r = replica.propose(purge(vec![("lone", 4_000)])).await.expect("committed");
    assert_eq!(r, Response::Purged { count: 0 });
    // A child that has not told its parent yet, a running workflow and an unknown id: kept.
    let r =
        replica.propose(purge(vec![("child", 9_000), ("running", 9_000), ("nobody", 9_000), ("lone", 9_000)])).await;
    assert_eq!(r.expect("committed"), Response::Purged { count: 1 });
    assert!(replica.read().workflow("lone").expect("read").is_none(), "purged");
    assert!(replica.read().task_owner("task-1").expect("read").is_none(), "with its tasks");
    assert!(replica.read().workflow("child").expect("read").is_some(), "its parent is still to be told");
    assert_eq!(replica.read().workflow("running").expect("read").map(|s| s.header.status), Some(running.header.status));
    replica.shutdown().await;
}

/// The families keyed by workflow id are opened with a memtable insert hint per workflow, and
/// no other family is (a hint per random key would only cost memory).
#[test]
fn only_workflow_keyed_families_hint_memtable_inserts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(&ReplicaOptions::new(1, dir.path().to_path_buf())).expect("opens");
    drop(storage);
    let options = std::fs::read_dir(dir.path().join("db"))
        .expect("db directory")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("OPTIONS-"))
        .max_by_key(|e| e.file_name())
        .expect("an OPTIONS file");
    let text = std::fs::read_to_string(options.path()).expect("reads");
    let mut hinted = Vec::new();
    let mut family = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("[CFOptions \"").and_then(|l| l.strip_suffix("\"]")) {
            family = name.to_owned();
        } else if line == "memtable_insert_with_hint_prefix_extractor=rocksdb.CappedPrefix.36" {
            hinted.push(family.clone());
        }
    }
    hinted.sort();
    let mut expected: Vec<String> = overture_raft::keys::WORKFLOW_KEYED.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(hinted, expected);
}

/// Opens groups 0, 1 and 2 of `db` as one-member groups led by this node, snapshotting every 10
/// entries.
async fn open_groups(dir: &std::path::Path) -> (Database, Vec<Replica>) {
    let mut options = ReplicaOptions::new(1, dir.to_path_buf());
    options.snapshot_every = 10;
    options.keep_after_snapshot = 0;
    let database = Database::open(&options, 3).expect("opens");
    let mut replicas = Vec::new();
    for group in 0..3 {
        let replica = Replica::open_group(&database, group, options.clone()).await.expect("opens");
        lead_alone(&replica).await;
        replicas.push(replica);
    }
    (database, replicas)
}

/// Raft groups that share one database: each has its own log, state machine and snapshots in
/// its own column families, so a workflow written through one group is not seen by another,
/// each group's snapshots go to its own directory, and both come back after a restart. The
/// groups share one fsync thread. A directory made for three groups is refused to a node started
/// with one, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_in_one_database_keep_their_logs_and_state_apart() {
    let dir = tempfile::tempdir().expect("dir");
    let (database, replicas) = open_groups(dir.path()).await;
    // Threads of this process (nextest runs each test in its own).
    let fsync_threads = || {
        let tasks = std::fs::read_dir("/proc/self/task").expect("threads");
        let names = tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok());
        names.filter(|n| n.trim() == "raft-log-fsync").count()
    };
    assert_eq!(fsync_threads(), 1, "the groups share one fsync thread");
    let mut ids = Ids(0);
    for (group, replica) in replicas.iter().enumerate() {
        for i in 0..(5 + 10 * group) {
            start(replica, &format!("g{group}-w{i}"), &mut ids).await;
        }
    }
    let group_two = replicas[2]
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.snapshot.is_some(), "group 2 snapshots")
        .await
        .expect("snapshot policy triggers");
    assert!(group_two.snapshot.is_some_and(|s| s.index >= 10));
    assert!(dir.path().join("snapshots@2").is_dir(), "group 2's snapshots are its own");
    let seen = |replica: &Replica| replica.read().queue_entries().expect("scan").len();
    assert_eq!(replicas.iter().map(seen).collect::<Vec<_>>(), [5, 15, 25], "each group's queue holds its own tasks");
    assert!(replicas[1].read().workflow("g0-w0").expect("read").is_none());
    let digests: Vec<String> = replicas.iter().map(|r| r.digest().expect("digest").1).collect();
    assert!(digests[0] != digests[1] && digests[1] != digests[2], "{digests:?}");

    for replica in replicas {
        replica.close(Duration::from_secs(10)).await.expect("closes");
    }
    drop(database);
    let (database, replicas) = open_groups(dir.path()).await;
    assert_eq!(replicas.iter().map(seen).collect::<Vec<_>>(), [5, 15, 25], "after a restart");
    assert_eq!(replicas.iter().map(|r| r.digest().expect("digest").1).collect::<Vec<_>>(), digests);
    for replica in replicas {
        replica.close(Duration::from_secs(10)).await.expect("closes");
    }
    drop(database);
    let Err(alone) = Replica::open(ReplicaOptions::new(1, dir.path().to_path_buf())).await else {
        panic!("a database with three groups opened as one");
    };
    assert!(
        alone
            .to_string()
            .contains("holds 3 Raft groups (partitions = 2), and this node was started with 1 (partitions = 1)"),
        "{alone}"
    );
}
