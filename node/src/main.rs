//! The `overture` binary: a Conductor-compatible workflow orchestration node.
//!
//! - `overture dev` runs a ready single node with defaults.
//! - `overture server --config FILE` runs a node from a configuration file.
//! - `overture bench` drives a running node with HTTP-polling workers and reports throughput and
//!   latency.
//! - `overture cluster status|add-learner|promote|remove` administers a running group.

mod cluster_cli;
mod config;
mod event_config;
mod log_fields;
mod payload_config;
mod trace_config;

/// mimalloc instead of the system allocator: in a profile of the linear benchmark, glibc's malloc
/// and free took about 14% of the node's CPU (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, FileConfig, LogFormat, Overrides};
use overture_actors::{Engine, EngineOptions};
use overture_api::AppState;
use overture_raft::types::Node;
use overture_raft::{Groups, ReplicaOptions};

#[derive(Parser)]
#[command(name = "overture", version, about = "A Conductor-compatible workflow orchestration server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single development node: a Raft group of one, initialized on first start.
    Dev {
        /// Client API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Data directory.
        #[arg(long, default_value = "./overture-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        common: CommonFlags,
    },
    /// Run a cluster member from a configuration file and/or `OVERTURE_*` environment variables
    /// (see the README for every key).
    Server {
        /// The configuration file; without one, everything comes from the environment and flags.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides `node_id`.
        #[arg(long)]
        node_id: Option<u64>,
        /// Overrides `listen`.
        #[arg(long)]
        listen: Option<String>,
        /// Overrides `advertise`.
        #[arg(long)]
        advertise: Option<String>,
        /// Overrides `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        common: CommonFlags,
    },
    /// Benchmark a running node with HTTP-polling workers.
    Bench(overture_bench::BenchArgs),
    /// Look at or change a running group.
    Cluster(cluster_cli::ClusterArgs),
    /// Make a new data directory from a backup (`overture cluster backup`), for a node that
    /// starts as a cluster of one with the given id and address; more nodes join it as usual.
    /// Run it with no node running on `--data-dir`.
    Restore {
        /// The backup's directory (holding BACKUP.json).
        #[arg(long)]
        backup: PathBuf,
        /// The new node's data directory: absent or empty.
        #[arg(long)]
        data_dir: PathBuf,
        /// The new node's id.
        #[arg(long, default_value_t = 1)]
        node_id: u64,
        /// The new node's advertised address (host:port), as its configuration will name it.
        #[arg(long)]
        address: String,
    },
    /// Answer jq queries on standard input (the node starts these processes itself).
    #[command(hide = true)]
    Sandbox,
}

/// The hidden subcommand a node starts its jq sandbox processes with.
const SANDBOX_SUBCOMMAND: &str = "sandbox";

#[derive(clap::Args)]
struct CommonFlags {
    /// `text` or `json` logs.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Largest request body accepted, in bytes.
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Client requests in flight on this node before it answers 429.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// An API key as `keyId:secret`; repeat for more. Any key turns authentication on.
    #[arg(long = "api-key", value_name = "KEY_ID:SECRET")]
    api_keys: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Sandbox = cli.command {
        // No runtime, no logging: a sandbox process only runs queries.
        return overture_script::sandbox::serve().context("serving jq queries");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    match cli.command {
        Command::Dev { listen, data_dir, common } => {
            let flags = Overrides {
                listen: Some(listen),
                data_dir: Some(data_dir),
                log_format: common.log_format,
                max_body_bytes: common.max_body_bytes,
                max_in_flight: common.max_in_flight,
                api_keys: common.api_keys,
                ..Default::default()
            };
            let config = Config::resolve(FileConfig::default(), Overrides::from_env()?.then(flags))?;
            runtime.block_on(run_node(config))
        }
        Command::Server { config, node_id, listen, advertise, data_dir, common } => {
            let file = match &config {
                Some(path) => Config::read_file(path)?,
                None => FileConfig::default(),
            };
            let flags = Overrides {
                node_id,
                listen,
                advertise,
                data_dir,
                log_format: common.log_format,
                max_body_bytes: common.max_body_bytes,
                max_in_flight: common.max_in_flight,
                api_keys: common.api_keys,
                ..Default::default()
            };
            let config = Config::resolve(file, Overrides::from_env()?.then(flags))?;
            runtime.block_on(run_node(config))
        }
        Command::Bench(args) => runtime.block_on(overture_bench::run(args)),
        Command::Cluster(args) => runtime.block_on(cluster_cli::run(args)),
        Command::Restore { backup, data_dir, node_id, address } => {
            let manifest = overture_raft::backup::restore(&backup, &data_dir, node_id, &address)
                .with_context(|| format!("restoring {} into {}", backup.display(), data_dir.display()))?;
            println!(
                "restored {} (taken on node {}, {} partition(s), at {} ms since the epoch) into {} as node {node_id} at {address}",
                backup.display(),
                manifest.node_id,
                manifest.partitions,
                manifest.created_ms,
                data_dir.display()
            );
            Ok(())
        }
        Command::Sandbox => Ok(()),
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    // Colours only for a terminal: a log file or journal gets plain text, and styling each span
    // field cost a measurable share of the node's instructions (docs/BENCHMARKS.md). Plain text
    // fields are written by `log_fields`, in the same format for less.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.fmt_fields(log_fields::PlainFields).init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
}

/// Histogram buckets: durations in seconds from half a millisecond to an hour, and sizes (of
/// groups and batches) in powers of two.
const SECONDS_BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
    1800.0, 3600.0,
];
const SIZE_BUCKETS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// The Prometheus recorder. Every histogram is exported as a Prometheus histogram (buckets,
/// `_sum`, `_count`), which a cluster's nodes can be aggregated over, rather than a summary of
/// quantiles, which cannot and which costs more to keep.
fn metrics_recorder() -> anyhow::Result<metrics_exporter_prometheus::PrometheusBuilder> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    Ok(PrometheusBuilder::new()
        .set_buckets(&SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_size".into()), &SIZE_BUCKETS)?)
}

/// The TLS settings of HTTP tasks, read and checked now, so a bad file stops the start.
fn http_tls(config: &Config) -> anyhow::Result<overture_actors::HttpTls> {
    let read = |path: &Option<std::path::PathBuf>| {
        path.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).transpose()
    };
    let tls = overture_actors::HttpTls {
        ca_bundle: read(&config.http_ca_bundle)?,
        client_identity: read(&config.http_client_cert)?,
    };
    tls.client().map_err(|e| anyhow::anyhow!("HTTP task TLS settings (http_ca_bundle, http_client_cert): {e}"))?;
    Ok(tls)
}

/// jq queries run in this same executable, started with [`SANDBOX_SUBCOMMAND`], one process per
/// core at most, under the scripts' limits.
fn jq_sandbox() -> anyhow::Result<overture_script::Sandbox> {
    let program = std::env::current_exe().context("finding this executable, to run jq sandboxes")?;
    let command = overture_script::SandboxCommand { program, args: vec![SANDBOX_SUBCOMMAND.into()] };
    let processes = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(overture_script::Sandbox::new(command, processes, overture_script::Limits::default()))
}

async fn run_node(config: Config) -> anyhow::Result<()> {
    init_tracing(config.log_format);
    let metrics = metrics_recorder()?.install_recorder().context("installing the metrics recorder")?;
    overture_api::set_instance_name(format!("overture-node-{}", config.node_id));
    overture_raft::register_metrics();
    overture_actors::names::register();
    overture_api::register_metrics();
    overture_actors::brokers::register_metrics();
    if let Some(traces) = config.traces.clone() {
        let endpoint = traces.endpoint.clone();
        overture_actors::traces::install(traces, http_tls(&config)?.client().map_err(|e| anyhow::anyhow!(e))?)
            .map_err(|e| anyhow::anyhow!("[traces]: {e}"))?;
        tracing::info!(%endpoint, "sending OpenTelemetry spans over OTLP/HTTP");
    }

    let mut options = ReplicaOptions::new(config.node_id, config.data_dir.clone());
    options.snapshot_every = config.snapshot_every;
    options.keep_after_snapshot = config.keep_after_snapshot;
    options.cluster_secret = config.cluster_secret.clone();
    options.min_free_disk_bytes = config.min_free_disk_bytes;
    options.fault_injection = config.fault_injection;
    options.protocol =
        overture_raft::protocol::Protocol::new(config.protocol_version).map_err(|e| anyhow::anyhow!(e))?;
    if config.fault_injection {
        tracing::warn!("fault injection is on: /internal/faults can cut this node off or move its clock");
    }
    let groups = Groups::open(options, config.partitions)
        .await
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    let engine = Engine::start_groups(
        groups.clone(),
        EngineOptions {
            idle_actor_timeout: Duration::from_secs(config.idle_actor_seconds),
            max_live_actors: config.max_live_actors,
            retention: overture_actors::retention::Retention {
                default: Duration::from_secs(config.retention_seconds),
                sweep_every: Duration::from_secs(config.retention_sweep_seconds),
            },
            schedule_grace: Duration::from_secs(config.schedule_grace_seconds),
            jq: jq_sandbox()?,
            max_task_output_bytes: config.max_task_output_bytes,
            http_tls: http_tls(&config)?,
            payloads: config.payloads.clone(),
            brokers: overture_actors::brokers::Brokers::new(config.brokers.clone()),
        },
    );

    // Serve first: the other members reach this node's Raft through the same listener.
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let auth = overture_api::auth::Auth::new(
        config.api_keys.clone(),
        config.auth_exempt.clone(),
        Duration::from_secs(config.token_ttl_seconds),
    );
    let limits = overture_api::limits::Limits::new(
        config.max_in_flight,
        config.max_workflow_input_bytes,
        config.max_task_output_bytes,
    );
    let payload_urls =
        overture_api::payloads::PayloadUrls::new(config.cluster_secret.as_deref(), config.external_payload_url.clone());
    let state = AppState::new(engine.clone(), metrics, config.max_body_bytes)
        .with_auth(auth)
        .with_limits(limits)
        .with_payload_urls(payload_urls);
    let server = tokio::spawn(overture_api::serve(listener, state, shutdown_signal()));

    if !config.join {
        let mut members: BTreeMap<u64, Node> =
            config.members.iter().map(|(id, a)| (*id, Node { addr: a.clone() })).collect();
        // A one-member group listening on port 0 advertises the port it got.
        if members.len() == 1 && config.listen.port() == 0 {
            members.insert(config.node_id, Node { addr: addr.to_string() });
        }
        if groups.initialize(members).await? {
            tracing::info!(node_id = config.node_id, partitions = config.partitions, "initialized a new cluster");
        }
    }
    if config.members.len() <= 1 && !config.join && !engine.wait_ready(Duration::from_secs(30)).await {
        tracing::warn!("not serving writes yet: no leader after 30 s");
    }
    // Tests and scripts read this line to learn the port.
    println!("overture listening on http://{addr}");
    tracing::info!(
        %addr,
        node_id = config.node_id,
        advertise = %config.advertise,
        members = config.members.len(),
        partitions = config.partitions,
        cluster_secret_set = config.cluster_secret.is_some(),
        api_keys = config.api_keys.len(),
        data_dir = %config.data_dir.display(),
        "serving"
    );
    // Said at every start: whether ended executions are ever deleted is not a thing to discover.
    match config.retention_seconds {
        0 => tracing::info!(
            "retention: ended executions are kept (retention_seconds = 0); a definition's retentionSeconds purges its own"
        ),
        s => tracing::warn!(retention_seconds = s, "retention: ended executions are purged {s} s after they end"),
    }
    server.await.context("the HTTP server task")?.context("serving HTTP")?;
    tracing::info!("shutting down");
    engine.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
