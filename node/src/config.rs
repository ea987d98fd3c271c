//! Node configuration: a TOML file, overridden by `OVERTURE_*` environment variables, overridden
//! by command-line flags; parsed once into a validated [`Config`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The configuration file as written. Every key is optional here; [`Config::resolve`] checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// This node's id in the cluster (a positive integer).
    pub node_id: Option<u64>,
    /// Address the client API listens on.
    pub listen: Option<String>,
    /// Address other nodes use to reach this one.
    pub advertise: Option<String>,
    /// Where data lives.
    pub data_dir: Option<PathBuf>,
    /// Shared secret for traffic between nodes.
    pub cluster_secret: Option<String>,
    /// Initial members, id → address; used once, to initialize a new cluster.
    #[serde(default)]
    pub members: BTreeMap<String, String>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: Option<usize>,
    /// Largest workflow input, bytes of JSON.
    pub max_workflow_input_bytes: Option<usize>,
    /// Largest task output, bytes of JSON.
    pub max_task_output_bytes: Option<usize>,
    /// Largest task input an expression may produce, bytes of JSON.
    pub max_task_input_bytes: Option<usize>,
    /// Largest workflow output an expression may produce, bytes of JSON.
    pub max_workflow_output_bytes: Option<usize>,
    /// External payload storage: thresholds and where payloads go.
    #[serde(default)]
    pub payloads: crate::payload_config::PayloadsFile,
    /// The message brokers event queues may be on.
    #[serde(default)]
    pub event_queues: crate::event_config::EventQueuesFile,
    /// Where ended workflows with `workflowStatusListenerEnabled` are published besides the
    /// `conductor` callback queues.
    #[serde(default)]
    pub workflow_status_listener: crate::event_config::StatusListenerFile,
    /// Client requests in flight on this node before it answers 429.
    pub max_in_flight: Option<usize>,
    /// Keep ended executions this long, seconds (0: forever); a definition's
    /// `retentionSeconds` overrides it.
    pub retention_seconds: Option<u64>,
    /// Time between retention sweeps, seconds.
    pub retention_sweep_seconds: Option<u64>,
    /// How late a schedule's fire may still run when the schedule does not catch up, seconds.
    pub schedule_grace_seconds: Option<u64>,
    /// Build a snapshot after this many log entries.
    pub snapshot_every: Option<u64>,
    /// Log entries kept behind a snapshot for followers that lag a little.
    pub keep_after_snapshot: Option<u64>,
    /// Never initialize a group: wait to be added to an existing one (`add-learner`).
    pub join: Option<bool>,
    /// Partitions of the cluster, each a Raft group beside the metadata group; fixed when the
    /// data directory is created. 1 (the default) keeps one group for everything.
    pub partitions: Option<u16>,
    /// Passivate workflow actors idle this long, seconds.
    pub idle_actor_seconds: Option<u64>,
    /// Live workflow actors at most; beyond, the least recently active are passivated.
    pub max_live_actors: Option<usize>,
    /// API keys, key id → secret. Any key turns authentication on.
    #[serde(default)]
    pub api_keys: BTreeMap<String, String>,
    /// Paths served without a token when authentication is on: exact, or a prefix ending in `*`.
    pub auth_exempt: Option<Vec<String>>,
    /// How long a token from `POST /api/token` is valid, seconds.
    pub token_ttl_seconds: Option<u64>,
    /// Below this many bytes free in the data directory the node refuses writes (507) until
    /// space is freed.
    pub min_free_disk_bytes: Option<u64>,
    /// Let tests inject faults (`/internal/faults`): network partitions, clock jumps. Never in
    /// production.
    pub fault_injection: Option<bool>,
    /// HTTP tasks: a PEM file of certificate authorities trusted besides the system's.
    pub http_ca_bundle: Option<PathBuf>,
    /// HTTP tasks: a PEM file with the client certificate chain and its private key, presented
    /// to servers that ask for one.
    pub http_client_cert: Option<PathBuf>,
    /// The node-to-node protocol version this node speaks (the newest it knows by default). For a
    /// rolling upgrade: speak the version of the oldest node until all are replaced.
    pub protocol_version: Option<u16>,
    /// Where OpenTelemetry spans go.
    #[serde(default)]
    pub traces: crate::trace_config::TracesFile,
}

/// Overrides from flags or the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub node_id: Option<u64>,
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub cluster_secret: Option<String>,
    pub log_format: Option<LogFormat>,
    pub max_body_bytes: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub max_workflow_input_bytes: Option<usize>,
    pub max_task_output_bytes: Option<usize>,
    pub max_task_input_bytes: Option<usize>,
    pub max_workflow_output_bytes: Option<usize>,
    /// `embedded` or `s3`.
    pub payload_storage: Option<String>,
    pub s3: crate::payload_config::S3File,
    pub brokers: crate::event_config::BrokerAddresses,
    pub retention_seconds: Option<u64>,
    pub retention_sweep_seconds: Option<u64>,
    pub schedule_grace_seconds: Option<u64>,
    /// `id=address,id=address`.
    pub members: Option<String>,
    /// `id:secret`, each replacing the file's key of that id.
    pub api_keys: Vec<String>,
    pub min_free_disk_bytes: Option<u64>,
    pub http_ca_bundle: Option<PathBuf>,
    pub http_client_cert: Option<PathBuf>,
    pub partitions: Option<u16>,
    pub protocol_version: Option<u16>,
    pub traces: crate::trace_config::TracesFile,
}

/// The validated configuration a node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: u64,
    pub listen: SocketAddr,
    pub advertise: String,
    pub data_dir: PathBuf,
    pub cluster_secret: Option<String>,
    pub members: BTreeMap<u64, String>,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub max_workflow_input_bytes: usize,
    pub max_task_output_bytes: usize,
    pub payloads: overture_actors::PayloadOptions,
    pub external_payload_url: Option<String>,
    pub brokers: overture_actors::brokers::BrokerOptions,
    pub max_in_flight: usize,
    pub retention_seconds: u64,
    pub retention_sweep_seconds: u64,
    pub schedule_grace_seconds: u64,
    pub snapshot_every: u64,
    pub keep_after_snapshot: u64,
    pub idle_actor_seconds: u64,
    pub max_live_actors: usize,
    pub join: bool,
    pub partitions: u16,
    pub api_keys: BTreeMap<String, String>,
    pub auth_exempt: Vec<String>,
    pub token_ttl_seconds: u64,
    pub min_free_disk_bytes: u64,
    pub fault_injection: bool,
    pub http_ca_bundle: Option<PathBuf>,
    pub http_client_cert: Option<PathBuf>,
    /// The node-to-node protocol version this node speaks.
    pub protocol_version: u16,
    /// Where spans go; `None`: no traces.
    pub traces: Option<overture_actors::traces::TraceOptions>,
}

/// The most partitions a cluster may have: each is a Raft group every node runs, with its own
/// heartbeats.
const MAX_PARTITIONS: u16 = 64;

/// The request body limit when none is set: this, or 1 MiB more than the largest payload maximum
/// if that is larger, so a payload up to its maximum always fits in a request.
const DEFAULT_MAX_BODY: usize = 8 << 20;

impl Overrides {
    /// `OVERTURE_*` environment variables.
    pub fn from_env() -> anyhow::Result<Overrides> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        fn number<T: std::str::FromStr>(name: &str, message: &'static str) -> anyhow::Result<Option<T>> {
            let value = std::env::var(name).ok().filter(|v| !v.is_empty());
            value.map(|v| v.parse::<T>().map_err(|_| anyhow::anyhow!(message))).transpose()
        }
        Ok(Overrides {
            node_id: number("OVERTURE_NODE_ID", "OVERTURE_NODE_ID must be a positive integer")?,
            listen: var("OVERTURE_LISTEN"),
            advertise: var("OVERTURE_ADVERTISE"),
            data_dir: var("OVERTURE_DATA_DIR").map(PathBuf::from),
            cluster_secret: var("OVERTURE_CLUSTER_SECRET"),
            log_format: match var("OVERTURE_LOG_FORMAT").as_deref() {
                None => None,
                Some("text") => Some(LogFormat::Text),
                Some("json") => Some(LogFormat::Json),
                Some(other) => bail!("OVERTURE_LOG_FORMAT must be text or json, not {other:?}"),
            },
            max_body_bytes: number("OVERTURE_MAX_BODY_BYTES", "OVERTURE_MAX_BODY_BYTES must be a number of bytes")?,
            max_in_flight: number("OVERTURE_MAX_IN_FLIGHT", "OVERTURE_MAX_IN_FLIGHT must be a number of requests")?,
            max_workflow_input_bytes: number(
                "OVERTURE_MAX_WORKFLOW_INPUT_BYTES",
                "OVERTURE_MAX_WORKFLOW_INPUT_BYTES must be a number of bytes",
            )?,
            max_task_output_bytes: number(
                "OVERTURE_MAX_TASK_OUTPUT_BYTES",
                "OVERTURE_MAX_TASK_OUTPUT_BYTES must be a number of bytes",
            )?,
            max_task_input_bytes: number(
                "OVERTURE_MAX_TASK_INPUT_BYTES",
                "OVERTURE_MAX_TASK_INPUT_BYTES must be a number of bytes",
            )?,
            max_workflow_output_bytes: number(
                "OVERTURE_MAX_WORKFLOW_OUTPUT_BYTES",
                "OVERTURE_MAX_WORKFLOW_OUTPUT_BYTES must be a number of bytes",
            )?,
            payload_storage: var("OVERTURE_PAYLOAD_STORAGE"),
            s3: crate::payload_config::S3File::from_env(),
            brokers: crate::event_config::BrokerAddresses {
                nats: var("OVERTURE_NATS_URL"),
                jsm: var("OVERTURE_JSM_URL"),
                amqp: var("OVERTURE_AMQP_URL"),
                kafka: var("OVERTURE_KAFKA_BOOTSTRAP_SERVERS"),
                sqs: var("OVERTURE_SQS_ENDPOINT"),
                aws_region: var("AWS_REGION"),
                aws_access_key: var("AWS_ACCESS_KEY_ID"),
                aws_secret_key: var("AWS_SECRET_ACCESS_KEY"),
            },
            retention_seconds: number(
                "OVERTURE_RETENTION_SECONDS",
                "OVERTURE_RETENTION_SECONDS must be a number of seconds",
            )?,
            retention_sweep_seconds: number(
                "OVERTURE_RETENTION_SWEEP_SECONDS",
                "OVERTURE_RETENTION_SWEEP_SECONDS must be a number of seconds",
            )?,
            schedule_grace_seconds: number(
                "OVERTURE_SCHEDULE_GRACE_SECONDS",
                "OVERTURE_SCHEDULE_GRACE_SECONDS must be a number of seconds",
            )?,
            members: var("OVERTURE_MEMBERS"),
            min_free_disk_bytes: number(
                "OVERTURE_MIN_FREE_DISK_BYTES",
                "OVERTURE_MIN_FREE_DISK_BYTES must be a number of bytes",
            )?,
            api_keys: var("OVERTURE_API_KEYS")
                .map(|v| v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            http_ca_bundle: var("OVERTURE_HTTP_CA_BUNDLE").map(PathBuf::from),
            http_client_cert: var("OVERTURE_HTTP_CLIENT_CERT").map(PathBuf::from),
            partitions: number("OVERTURE_PARTITIONS", "OVERTURE_PARTITIONS must be a number of partitions")?,
            protocol_version: number(
                "OVERTURE_PROTOCOL_VERSION",
                "OVERTURE_PROTOCOL_VERSION must be a protocol version number",
            )?,
            traces: crate::trace_config::TracesFile::from_env()?,
        })
    }

    /// Fields set in `other` replace ours.
    pub fn then(self, other: Overrides) -> Overrides {
        Overrides {
            node_id: other.node_id.or(self.node_id),
            listen: other.listen.or(self.listen),
            advertise: other.advertise.or(self.advertise),
            data_dir: other.data_dir.or(self.data_dir),
            cluster_secret: other.cluster_secret.or(self.cluster_secret),
            log_format: other.log_format.or(self.log_format),
            max_body_bytes: other.max_body_bytes.or(self.max_body_bytes),
            max_in_flight: other.max_in_flight.or(self.max_in_flight),
            max_workflow_input_bytes: other.max_workflow_input_bytes.or(self.max_workflow_input_bytes),
            max_task_output_bytes: other.max_task_output_bytes.or(self.max_task_output_bytes),
            max_task_input_bytes: other.max_task_input_bytes.or(self.max_task_input_bytes),
            max_workflow_output_bytes: other.max_workflow_output_bytes.or(self.max_workflow_output_bytes),
            payload_storage: other.payload_storage.or(self.payload_storage),
            s3: self.s3.then(other.s3),
            brokers: self.brokers.then(other.brokers),
            retention_seconds: other.retention_seconds.or(self.retention_seconds),
            retention_sweep_seconds: other.retention_sweep_seconds.or(self.retention_sweep_seconds),
            schedule_grace_seconds: other.schedule_grace_seconds.or(self.schedule_grace_seconds),
            members: other.members.or(self.members),
            min_free_disk_bytes: other.min_free_disk_bytes.or(self.min_free_disk_bytes),
            api_keys: self.api_keys.into_iter().chain(other.api_keys).collect(),
            http_ca_bundle: other.http_ca_bundle.or(self.http_ca_bundle),
            http_client_cert: other.http_client_cert.or(self.http_client_cert),
            partitions: other.partitions.or(self.partitions),
            protocol_version: other.protocol_version.or(self.protocol_version),
            traces: self.traces.then(other.traces),
        }
    }
}

/// The node-to-node protocol version to speak: `chosen`, or the newest; one this build serves.
fn protocol_version(chosen: Option<u16>) -> anyhow::Result<u16> {
    use overture_raft::protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, supported};
    let version = chosen.unwrap_or(PROTOCOL_VERSION);
    if !supported(version) {
        bail!("protocol_version must be between {MIN_PROTOCOL_VERSION} and {PROTOCOL_VERSION}, not {version}");
    }
    Ok(version)
}

impl Config {
    /// Reads a config file.
    pub fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Applies overrides to a file's settings and checks the result.
    pub fn resolve(file: FileConfig, overrides: Overrides) -> anyhow::Result<Config> {
        let node_id = overrides.node_id.or(file.node_id).unwrap_or(1);
        if node_id == 0 {
            bail!("node_id must be a positive integer");
        }
        let listen_text = overrides.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr =
            listen_text.parse().with_context(|| format!("listen address {listen_text:?} is not host:port"))?;
        let advertise = overrides.advertise.or(file.advertise).unwrap_or_else(|| listen.to_string());
        let mut members = BTreeMap::new();
        let listed: Vec<(String, String)> = match &overrides.members {
            Some(list) => list
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|pair| {
                    let (id, addr) = pair
                        .split_once('=')
                        .with_context(|| format!("OVERTURE_MEMBERS entry {pair:?} is not id=address"))?;
                    Ok((id.trim().to_owned(), addr.trim().to_owned()))
                })
                .collect::<anyhow::Result<_>>()?,
            None => file.members.into_iter().collect(),
        };
        for (id, addr) in listed {
            let id: u64 = id.parse().with_context(|| format!("member id {id:?} must be a positive integer"))?;
            if id == 0 {
                bail!("member ids must be positive integers");
            }
            members.insert(id, addr);
        }
        let join = file.join.unwrap_or(false);
        if members.is_empty() && !join {
            members.insert(node_id, advertise.clone());
        }
        if !join && !members.contains_key(&node_id) {
            bail!("members must include this node's id {node_id} (or set join = true to wait to be added)");
        }
        let cluster_secret = overrides.cluster_secret.or(file.cluster_secret).filter(|s| !s.is_empty());
        if (members.len() > 1 || join) && cluster_secret.is_none() {
            bail!(
                "cluster_secret is required when a group has more than one member: nodes authenticate each other with it"
            );
        }
        if members.len() > 1 && listen.port() == 0 {
            bail!("listen needs a fixed port in a multi-node group: the other members reach this node at its address");
        }
        let partitions = overrides.partitions.or(file.partitions).unwrap_or(1);
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            bail!("partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}");
        }
        let protocol_version = protocol_version(overrides.protocol_version.or(file.protocol_version))?;
        let mut api_keys = file.api_keys;
        for pair in &overrides.api_keys {
            let (id, secret) = pair.split_once(':').with_context(|| format!("API key {pair:?} is not keyId:secret"))?;
            api_keys.insert(id.trim().to_owned(), secret.to_owned());
        }
        if let Some((id, _)) = api_keys.iter().find(|(id, secret)| id.is_empty() || secret.len() < 8) {
            bail!("API key {id:?}: key ids must not be empty and secrets need at least 8 characters");
        }
        let max_workflow_input_bytes =
            overrides.max_workflow_input_bytes.or(file.max_workflow_input_bytes).unwrap_or(10 << 20);
        let max_task_output_bytes = overrides.max_task_output_bytes.or(file.max_task_output_bytes).unwrap_or(10 << 20);
        let external_payload_url = file.payloads.url.clone().filter(|u| !u.trim().is_empty());
        let payloads = crate::payload_config::resolve(
            file.payloads,
            overrides.payload_storage,
            overrides.s3,
            overrides.max_task_input_bytes.or(file.max_task_input_bytes),
            overrides.max_workflow_output_bytes.or(file.max_workflow_output_bytes),
        )?;
        let brokers =
            crate::event_config::resolve(file.event_queues, file.workflow_status_listener, overrides.brokers)?;
        Ok(Config {
            brokers,
            api_keys,
            auth_exempt: file
                .auth_exempt
                .unwrap_or_else(|| overture_api::auth::DEFAULT_EXEMPT.iter().map(|p| (*p).to_owned()).collect()),
            token_ttl_seconds: file.token_ttl_seconds.unwrap_or(3600).max(1),
            node_id,
            listen,
            advertise,
            data_dir: overrides.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./overture-data")),
            cluster_secret,
            members,
            log_format: overrides.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            max_body_bytes: overrides
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY.max(max_workflow_input_bytes.max(max_task_output_bytes) + (1 << 20))),
            max_workflow_input_bytes,
            max_task_output_bytes,
            payloads,
            external_payload_url,
            max_in_flight: overrides.max_in_flight.or(file.max_in_flight).unwrap_or(10_000).max(1),
            retention_seconds: overrides.retention_seconds.or(file.retention_seconds).unwrap_or(0),
            retention_sweep_seconds: overrides
                .retention_sweep_seconds
                .or(file.retention_sweep_seconds)
                .unwrap_or(60)
                .max(1),
            schedule_grace_seconds: overrides.schedule_grace_seconds.or(file.schedule_grace_seconds).unwrap_or(60),
            snapshot_every: file.snapshot_every.unwrap_or(20_000),
            keep_after_snapshot: file.keep_after_snapshot.unwrap_or(1_000),
            idle_actor_seconds: file.idle_actor_seconds.unwrap_or(30),
            max_live_actors: file.max_live_actors.unwrap_or(overture_actors::DEFAULT_MAX_LIVE_ACTORS).max(1),
            join,
            partitions,
            min_free_disk_bytes: overrides
                .min_free_disk_bytes
                .or(file.min_free_disk_bytes)
                .unwrap_or(overture_raft::replica::DEFAULT_MIN_FREE_DISK_BYTES),
            fault_injection: file.fault_injection.unwrap_or(false),
            http_ca_bundle: overrides.http_ca_bundle.or(file.http_ca_bundle),
            http_client_cert: overrides.http_client_cert.or(file.http_client_cert),
            protocol_version,
            traces: file.traces.then(overrides.traces).resolve(node_id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_env_beat_file() {
        let file: FileConfig =
            toml::from_str("node_id = 1\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/file\"").expect("parses");
        let env =
            Overrides { data_dir: Some("/env".into()), listen: Some("127.0.0.1:9001".into()), ..Default::default() };
        let flags = Overrides { listen: Some("127.0.0.1:9002".into()), ..Default::default() };
        let c = Config::resolve(file, env.then(flags)).expect("valid");
        assert_eq!((c.listen.port(), c.data_dir.to_str()), (9002, Some("/env")));
        assert_eq!(c.members.get(&1).map(String::as_str), Some("127.0.0.1:9002"));
    }

    #[test]
    fn members_come_from_the_environment_when_set() {
        let file: FileConfig =
            toml::from_str("node_id = 2\ncluster_secret = \"s\"\nlisten = \"127.0.0.1:8081\"\n[members]\n9 = \"x:1\"")
                .expect("parses");
        let env = Overrides {
            members: Some("1=127.0.0.1:8080, 2=127.0.0.1:8081,3=127.0.0.1:8082".into()),
            ..Default::default()
        };
        let c = Config::resolve(file, env).expect("valid");
        assert_eq!(c.members.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let bad = |text: &str| {
            Config::resolve(toml::from_str(text).expect("parses"), Overrides::default())
                .expect_err("refused")
                .to_string()
        };
        assert!(bad("listen = \"nowhere\"").contains("not host:port"));
        assert!(bad("node_id = 2\n[members]\n1 = \"a:1\"").contains("must include"));
        assert!(bad("node_id = 1\n[members]\n1 = \"a:1\"\n2 = \"b:1\"").contains("cluster_secret is required"));
        assert!(
            bad("node_id = 1\ncluster_secret = \"s\"\nlisten = \"127.0.0.1:0\"\n[members]\n1 = \"a:1\"\n2 = \"b:1\"")
                .contains("fixed port")
        );
        assert!(toml::from_str::<FileConfig>("nodeid = 1").is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_sample_files_are_valid_configurations() {
        for name in ["cluster-node.toml", "single-node.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name);
            let file = Config::read_file(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let config = Config::resolve(file, Overrides::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            if name == "cluster-node.toml" {
                assert_eq!(config.members.len(), 3);
                assert_eq!(config.api_keys.len(), 1, "the sample shows an API key");
                assert!(config.auth_exempt.iter().any(|p| p == "/ready"));
            }
        }
    }

    #[test]
    fn the_protocol_version_is_the_newest_unless_an_older_one_is_asked_for() {
        let newest = Config::resolve(FileConfig::default(), Overrides::default()).expect("valid");
        assert_eq!(newest.protocol_version, overture_raft::protocol::PROTOCOL_VERSION);
        let file: FileConfig = toml::from_str("protocol_version = 0").expect("parses");
        assert_eq!(Config::resolve(file, Overrides::default()).expect("valid").protocol_version, 0);
        let file: FileConfig = toml::from_str("protocol_version = 0").expect("parses");
        let env = Overrides { protocol_version: Some(1), ..Default::default() };
        assert_eq!(Config::resolve(file, env).expect("valid").protocol_version, 1, "the environment wins");
        let unknown =
            Overrides { protocol_version: Some(overture_raft::protocol::PROTOCOL_VERSION + 1), ..Default::default() };
        let err = Config::resolve(FileConfig::default(), unknown).expect_err("refused").to_string();
        assert!(err.contains("protocol_version must be between"), "{err}");
    }

    #[test]
    fn api_keys_come_from_every_source() {
        let file: FileConfig = toml::from_str("[api_keys]\nfile = \"file-secret\"").expect("parses");
        let env = Overrides { api_keys: vec!["env:env-secret-1".into()], ..Default::default() };
        let flags = Overrides { api_keys: vec!["file:flag-secret".into()], ..Default::default() };
        let config = Config::resolve(file, env.then(flags)).expect("valid");
        let keys: Vec<(&str, &str)> = config.api_keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(keys, [("env", "env-secret-1"), ("file", "flag-secret")]);
        let short = Overrides { api_keys: vec!["k:short".into()], ..Default::default() };
        let err = Config::resolve(FileConfig::default(), short).expect_err("too short").to_string();
        assert!(err.contains("at least 8 characters"), "{err}");
        let malformed = Overrides { api_keys: vec!["no-colon".into()], ..Default::default() };
        assert!(Config::resolve(FileConfig::default(), malformed).is_err());
    }
}
