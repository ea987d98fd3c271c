//! Overture's HTTP surface: Conductor's REST API, health, readiness, metrics and the web UI.
//!
//! Handlers turn requests into engine calls and engine results into Conductor's responses: JSON
//! models, bare ids as `text/plain`, 204s where Conductor has them, and Conductor-style JSON
//! errors. No state lives here and no rule is decided here.
//!
//! Paths, codes and shapes follow Conductor (see `shared/conductor-spec.md`), and requests are
//! read the way the official SDKs write them (see [`input`]).

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use overture_actors::Engine;
use overture_raft::network::paths;

mod admin;
pub mod auth;
mod cluster;
pub mod error;
mod faults;
pub mod forward;
pub mod input;
mod internal;
pub mod limits;
mod metadata;
mod ops;
mod partitioned;
pub mod payloads;
mod proxy;
mod scheduler;
mod search;
mod signal;
mod tasks;
pub mod ui;
mod variables;
mod workflows;

/// What every handler can reach: cheap to clone, as every middleware layer and handler does
/// per request.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    /// The engine.
    pub engine: Engine,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// HTTP client for forwarding requests to the leader.
    pub forward_client: reqwest::Client,
    /// The highest log index a write forwarded through this node reached; local reads wait for it.
    pub read_watermark: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// With partitions, the same per Raft group.
    pub group_watermarks: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>>,
    /// API keys, when authentication is on.
    pub auth: Option<std::sync::Arc<auth::Auth>>,
    /// Requests in flight and payload sizes.
    pub limits: limits::Limits,
    /// How external payload URIs are signed.
    pub payload_urls: payloads::PayloadUrls,
}

impl AppState {
    /// State for a node.
    pub fn new(engine: Engine, metrics: PrometheusHandle, max_body_bytes: usize) -> AppState {
        let forward_client = overture_raft::http::client()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .connect_timeout(std::time::Duration::from_secs(1))
            .build()
            .unwrap_or_default();
        let group_watermarks = std::sync::Arc::new((0..=engine.partitions()).map(|_| Default::default()).collect());
        AppState(std::sync::Arc::new(Shared {
            engine,
            metrics,
            max_body_bytes,
            forward_client,
            read_watermark: Default::default(),
            group_watermarks,
            auth: None,
            limits: limits::Limits::defaults(),
            payload_urls: payloads::PayloadUrls::new(None, None),
        }))
    }

    /// Sets the node's limits.
    pub fn with_limits(mut self, limits: limits::Limits) -> AppState {
        std::sync::Arc::make_mut(&mut self.0).limits = limits;
        self
    }

    /// Signs external payload URIs as `urls` does.
    pub fn with_payload_urls(mut self, urls: payloads::PayloadUrls) -> AppState {
        std::sync::Arc::make_mut(&mut self.0).payload_urls = urls;
        self
    }

    /// Turns authentication on with these keys (off if `None`).
    pub fn with_auth(mut self, auth: Option<auth::Auth>) -> AppState {
        std::sync::Arc::make_mut(&mut self.0).auth = auth.map(std::sync::Arc::new);
        self
    }
}

static INSTANCE: OnceLock<String> = OnceLock::new();

/// Counter: requests a follower forwarded to the leader.
pub const HTTP_FORWARDED: &str = "overture_http_forwarded_total";
/// Counter: internal requests refused for a missing or wrong cluster secret.
pub const INTERNAL_REJECTED: &str = "overture_internal_rejected_total";

/// Makes the API's counters exist from the start.
pub fn register_metrics() {
    metrics::counter!(HTTP_FORWARDED).increment(0);
    metrics::counter!(INTERNAL_REJECTED).increment(0);
    metrics::counter!(auth::AUTH_REFUSED, "reason" => "INVALID_TOKEN").increment(0);
    metrics::counter!(limits::ADMISSION_REFUSED).increment(0);
    metrics::gauge!(limits::IN_FLIGHT).set(0.0);
    for operation in ["READ", "WRITE"] {
        metrics::counter!(payloads::PAYLOAD_TRANSFERS, "operation" => operation).increment(0);
        metrics::counter!(payloads::PAYLOAD_TRANSFER_BYTES, "operation" => operation).increment(0);
    }
}

/// Names this node in error bodies (`instance`).
pub fn set_instance_name(name: String) {
    let _ = INSTANCE.set(name);
}

pub(crate) fn instance_name() -> &'static str {
    INSTANCE.get().map_or("overture", String::as_str)
}

/// A bare string as `text/plain`, as Conductor answers ids.
pub(crate) fn text_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))], text).into_response()
}

/// A value as `application/json`.
pub(crate) fn json_response<T: serde::Serialize + ?Sized>(value: &T) -> Result<Response, error::ApiError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| error::ApiError::from(overture_actors::Error::Internal(format!("rendering a response: {e}"))))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response())
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(metadata_routes())
        .merge(workflows_routes())
        .merge(tasks_routes())
        .merge(operations_routes())
        .merge(scheduler_routes())
        .merge(variables_routes());
    let internal = Router::new()
        .route(paths::APPEND, post(internal::append))
        .route(paths::VOTE, post(internal::vote))
        .route(paths::PRE_VOTE, post(internal::pre_vote))
        .route(paths::SNAPSHOT, post(internal::snapshot))
        .route(paths::TRANSFER_LEADER, post(internal::transfer_leader))
        .route(paths::MEMBERSHIP, post(internal::membership))
        .route(paths::GROUPS, post(internal::groups))
        .route(paths::PARTITION_START, post(internal::partition_start))
        .route(paths::PARTITION_POLL, post(internal::partition_poll))
        .route(paths::PARTITION_READY, post(internal::partition_ready))
        .route(paths::PARTITION_POLL_DATA, post(internal::partition_poll_data))
        .route(paths::PARTITION_OP, post(internal::partition_op))
        .route(paths::LIMITS_PERMIT, post(internal::limits_permit))
        .route(paths::LIMITS_REPORT, post(internal::limits_report))
        .route(paths::READ_INDEX, post(internal::read_index))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), internal::authenticate));
    let faults = Router::new()
        .route("/internal/faults", get(faults::state))
        .route("/internal/faults/partition", put(faults::partition))
        .route("/internal/faults/clock", put(faults::clock))
        .route("/internal/faults/unparseable-entry", post(faults::unparseable_entry))
        .route("/internal/faults/stop-raft", post(faults::stop_raft))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), faults::guard));
    Router::new()
        .nest("/api", api)
        .merge(internal)
        .merge(faults)
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), forward::forward))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::admit))
        .layer(axum::middleware::from_fn(ops::json_errors))
        .layer(axum::middleware::from_fn(ops::catch_panics))
        .layer(axum::middleware::from_fn(ops::observe))
        .with_state(state)
}

/// Definitions and event handlers (conductor-oss's MetadataResource and EventResource).
fn metadata_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/metadata/taskdefs",
            post(metadata::create_task_defs).put(metadata::update_task_def).get(metadata::task_defs),
        )
        .route("/metadata/taskdefs/{name}", get(metadata::task_def).delete(metadata::delete_task_def))
        .route(
            "/metadata/workflow",
            post(metadata::create_workflow_def).put(metadata::update_workflow_defs).get(metadata::workflow_defs),
        )
        .route("/metadata/workflow/{name}", get(metadata::workflow_def))
        // Literal segments win over `{name}`: these are never read as a workflow's name.
        .route("/metadata/workflow/names", get(metadata::workflow_names))
        .route("/metadata/workflow/names-and-versions", get(metadata::workflow_names_and_versions))
        .route("/metadata/workflow/latest-versions", get(metadata::workflow_latest_versions))
        .route("/metadata/workflow/validate", post(metadata::validate_workflow_def))
        .route("/metadata/workflow/{name}/versions", get(metadata::workflow_versions))
        .route(
            "/event",
            post(metadata::create_event_handler).put(metadata::update_event_handler).get(metadata::event_handlers),
        )
        // GET takes an event, DELETE a handler name; the route shares one parameter name.
        .route("/event/{name}", get(metadata::event_handlers_for).delete(metadata::delete_event_handler))
        .route("/event/queues", get(metadata::event_handler_queues))
        .route("/metadata/workflow/{name}/{version}", axum::routing::delete(metadata::delete_workflow_def))
}

/// Executions: start, read, search, operate, in bulk (WorkflowResource, WorkflowBulkResource).
fn workflows_routes() -> Router<AppState> {
    Router::new()
        .route("/workflow", post(workflows::start))
        // A literal segment: never a start of a workflow named "test".
        .route("/workflow/test", post(workflows::test))
        .route("/workflow/externalstoragelocation", get(payloads::location))
        .route("/workflow/external-storage-location", get(payloads::location))
        .route("/external-payloads/{*path}", get(payloads::download).put(payloads::upload))
        .route("/workflow/{id}", post(workflows::start_by_name).get(workflows::get).delete(workflows::terminate))
        .route("/workflow/{id}/status", get(workflows::status))
        .route("/workflow/search", get(search::workflows))
        .route("/workflow/search-v2", get(search::workflows_v2))
        .route("/workflow/search-by-tasks", get(search::workflows_by_tasks))
        .route("/workflow/search-by-tasks-v2", get(search::workflows_by_tasks_v2))
        .route("/workflow/running/{name}", get(search::running))
        // `{id}` here is the definition name; routes at one position share a parameter name.
        .route("/workflow/{id}/correlated", post(search::correlated_many))
        .route("/workflow/{id}/correlated/{correlation_id}", get(search::correlated))
        .route("/workflow/{id}/history", get(workflows::history))
        .route("/workflow/execute/{name}/{version}", post(workflows::execute))
        .route("/workflow/{id}/tasks", get(workflows::tasks))
        .route("/workflow/{id}/pause", put(workflows::pause))
        .route("/workflow/{id}/resume", put(workflows::resume))
        .route("/workflow/decide/{id}", put(workflows::decide))
        .route("/workflow/{id}/resetcallbacks", post(workflows::reset_callbacks))
        .route("/workflow/{id}/skiptask/{reference}", put(workflows::skip_task))
        .route("/workflow/{id}/retry", post(workflows::retry))
        .route("/workflow/{id}/restart", post(workflows::restart))
        .route("/workflow/{id}/rerun", post(workflows::rerun))
        .route("/workflow/{id}/remove", axum::routing::delete(workflows::remove))
        .route("/workflow/{id}/terminate-remove", axum::routing::delete(workflows::terminate_remove))
        .route("/workflow/bulk/pause", put(workflows::bulk_pause))
        .route("/workflow/bulk/resume", put(workflows::bulk_resume))
        .route("/workflow/bulk/retry", post(workflows::bulk_retry))
        .route("/workflow/bulk/restart", post(workflows::bulk_restart))
        .route("/workflow/bulk/terminate", post(workflows::bulk_terminate))
        .route("/workflow/bulk/remove", axum::routing::delete(workflows::bulk_remove))
        .route("/workflow/bulk/terminate-remove", axum::routing::delete(workflows::bulk_terminate_remove))
        .route("/workflow/bulk/search", post(workflows::bulk_search))
}

/// Tasks: poll, update, signal, queues, logs (TaskResource).
fn tasks_routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", post(tasks::update))
        .route("/tasks/update-v2", post(tasks::update_v2))
        .route("/tasks/externalstoragelocation", get(payloads::location))
        .route("/tasks/external-storage-location", get(payloads::location))
        .route("/tasks/poll/{task_type}", get(tasks::poll_one))
        .route("/tasks/poll/batch/{task_type}", get(tasks::poll_batch))
        .route("/tasks/search", get(search::tasks))
        .route("/tasks/search-v2", get(search::tasks_v2))
        .route("/tasks/queue/sizes", get(tasks::queue_sizes))
        .route("/tasks/queue/size", get(tasks::queue_size))
        .route("/tasks/queue/all", get(tasks::queue_all))
        .route("/tasks/queue/all/verbose", get(tasks::queue_all_verbose))
        .route("/tasks/queue/polldata", get(tasks::queue_poll_data))
        .route("/tasks/queue/polldata/all", get(tasks::queue_poll_data_all))
        .route("/tasks/queue/requeue/{task_type}", post(tasks::queue_requeue))
        .route("/tasks/{task_id}", get(tasks::get))
        .route("/tasks/{task_id}/log", post(tasks::add_log).get(tasks::logs))
        .route("/tasks/{workflow_id}/{reference}/{status}", post(tasks::update_by_ref))
        // `/tasks/{workflowId}/{status}/signal/sync`; the path shares its shape with update by
        // reference, so the segments keep that route's names.
        .route("/tasks/{workflow_id}/{reference}/{status}/sync", post(tasks::signal_sync))
}

/// The node and the cluster: health, tokens, admin, queue admin, cluster membership.
fn operations_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(ops::health))
        .route("/token", post(auth::token))
        .route("/version", get(admin::version))
        .route("/admin/config", get(admin::config))
        .route("/admin/backup", post(admin::backup))
        .route("/admin/task/{task_type}", get(admin::pending_tasks))
        .route("/admin/sweep/requeue/{id}", post(admin::sweep))
        .route("/admin/consistency/verifyAndRepair/{id}", post(admin::verify_and_repair))
        .route("/admin/queues", get(admin::event_queues))
        .route("/queue/size", get(admin::default_queue_sizes))
        .route("/queue/", get(admin::default_queues))
        .route("/queue/update/{workflowId}/{taskRefName}/{status}", post(admin::update_by_status_queue))
        .route("/queue/update/{workflowId}/task/{taskId}/{status}", post(admin::update_by_status_queue))
        .route("/cluster/status", get(cluster::status))
        .route("/cluster/digest", get(cluster::digest))
        .route("/cluster/learners", post(cluster::add_learner))
        .route("/cluster/promote", post(cluster::promote))
        .route("/cluster/members/{id}", axum::routing::delete(cluster::remove))
}

/// Environment variables and secrets (EnvironmentResource, SecretResource).
fn variables_routes() -> Router<AppState> {
    Router::new()
        .route("/environment", get(variables::environment))
        .route(
            "/environment/{key}",
            get(variables::env_var).put(variables::put_env_var).delete(variables::delete_env_var),
        )
        .route("/secrets", get(variables::secret_names).post(variables::secret_names))
        .route("/secrets/v2", get(variables::secret_metadata))
        .route("/secrets/{key}", get(variables::secret).put(variables::put_secret).delete(variables::delete_secret))
        .route("/secrets/{key}/exists", get(variables::secret_exists))
}

/// Schedules (SchedulerResource, SchedulerBulkResource).
fn scheduler_routes() -> Router<AppState> {
    Router::new()
        .route("/scheduler/schedules", post(scheduler::save).get(scheduler::list))
        .route("/scheduler/schedules/{name}", get(scheduler::get).delete(scheduler::delete))
        .route("/scheduler/schedules/search", get(scheduler::search))
        .route("/scheduler/bulk/pause", put(scheduler::bulk_pause))
        .route("/scheduler/bulk/resume", put(scheduler::bulk_resume))
        .route("/scheduler/schedules/{name}/pause", put(scheduler::pause).get(scheduler::pause))
        .route("/scheduler/schedules/{name}/resume", put(scheduler::resume).get(scheduler::resume))
        .route("/scheduler/admin/pause", get(scheduler::pause_all))
        .route("/scheduler/admin/resume", get(scheduler::resume_all))
        .route("/scheduler/admin/requeue", get(scheduler::requeue_all))
        .route("/scheduler/nextFewSchedules", get(scheduler::next_few))
        .route("/scheduler/search/executions", get(scheduler::executions))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
