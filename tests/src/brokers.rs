//! Real message brokers for the event queue tests, started on free loopback ports and stopped
//! when dropped: NATS with JetStream (Debian's `nats-server`), RabbitMQ (Debian's
//! `rabbitmq-server`), a Kafka-protocol broker (`tansu`, from crates.io) and an SQS-compatible
//! server (moto's, from PyPI), all installed by `./tests/run.sh`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Starts `command` with its output discarded, killed when dropped; `install` says where the
/// program comes from if it does not start. Waits until it listens on `port` (within `seconds`).
async fn start_listening(command: &mut Command, install: &str, port: u16, seconds: u64) -> Child {
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts ({e}): run ./tests/run.sh, which installs {install}"));
    wait_listening(&format!("{program} ({install})"), port, seconds).await;
    child
}

/// Waits until `what` listens on `port` (within `seconds`), or fails the test.
async fn wait_listening(what: &str, port: u16, seconds: u64) {
    let up = crate::wait_for(Duration::from_secs(seconds), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;
    assert!(up, "{what} did not listen on port {port}");
}

/// A running `nats-server -js`.
pub struct NatsServer {
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    _child: Child,
}

impl NatsServer {
    /// A free loopback port to start a server on later.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
    }

    /// Starts nats-server with JetStream, storing under `dir`; waits until it takes connections.
    pub async fn start(dir: &Path) -> NatsServer {
        NatsServer::start_on(dir, NatsServer::free_port()).await
    }

    /// [`NatsServer::start`] on `port`.
    pub async fn start_on(dir: &Path, port: u16) -> NatsServer {
        let bin = std::env::var("OVERTURE_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let mut command = Command::new(&bin);
        command.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]).arg(dir);
        let child = start_listening(&mut command, "Debian's nats-server", port, 20).await;
        NatsServer { url: format!("nats://127.0.0.1:{port}"), _child: child }
    }
}

/// A running RabbitMQ node of its own (its own node name, ports, data and Erlang cookie).
pub struct RabbitMq {
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub url: String,
    _child: Child,
}

impl RabbitMq {
    /// Starts a RabbitMQ node storing under `dir`; waits until it takes connections.
    pub async fn start(dir: &Path) -> RabbitMq {
        let bin = std::env::var("OVERTURE_RABBITMQ_SERVER")
            .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin/rabbitmq-server".into());
        std::fs::create_dir_all(dir).expect("rabbitmq dir");
        let plugins = dir.join("enabled_plugins");
        std::fs::write(&plugins, "[].").expect("plugins file");
        let port = NatsServer::free_port();
        let dist = NatsServer::free_port();
        let mut command = Command::new(&bin);
        command
            .env("RABBITMQ_NODENAME", format!("overture_test_{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("HOME", dir)
            // Where Erlang writes its crash dumps when the test kills the node.
            .current_dir(dir);
        let child = start_listening(&mut command, "Debian's rabbitmq-server", port, 60).await;
        RabbitMq { url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"), _child: child }
    }
}

/// A running Tansu broker (Kafka's protocol), keeping its topics in memory.
pub struct Tansu {
    /// `127.0.0.1:<port>`, as Kafka clients take bootstrap servers.
    pub bootstrap: String,
    _child: Child,
}

impl Tansu {
    /// Starts `tansu broker` on a free loopback port; waits until it takes connections.
    pub async fn start() -> Tansu {
        let bin = std::env::var("OVERTURE_TANSU").unwrap_or_else(|_| {
            let installed = std::env::var("HOME").map(|h| format!("{h}/.cache/overture-tools/tansu/bin/tansu"));
            installed.ok().filter(|p| Path::new(p).exists()).unwrap_or_else(|| "tansu".into())
        });
        let port = NatsServer::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(&bin);
        command.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url]);
        command.args(["--storage-engine", "memory://tansu/", "--cluster-id", "overture-test"]);
        let child = start_listening(&mut command, "tansu from crates.io", port, 20).await;
        Tansu { bootstrap: format!("127.0.0.1:{port}"), _child: child }
    }
}

/// A running moto server (SQS's API, among AWS's others), from the tests' Python environment.
pub struct MotoServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _child: Child,
}

impl MotoServer {
    /// Starts `python -m moto.server` on a free loopback port; waits until it takes connections.
    pub async fn start() -> MotoServer {
        let python = std::env::var("OVERTURE_PYTHON").unwrap_or_else(|_| "python3".into());
        let port = NatsServer::free_port();
        let mut command = Command::new(&python);
        command.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        let child = start_listening(&mut command, "moto (PyPI) in its Python environment", port, 30).await;
        MotoServer { url: format!("http://127.0.0.1:{port}"), _child: child }
    }
}
