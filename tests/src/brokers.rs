//! Real message brokers for the event queue tests, started on free loopback ports and stopped
//! when dropped: NATS with JetStream (Debian's `nats-server`), RabbitMQ (Debian's
//! `rabbitmq-server`), a Kafka-protocol broker (`tansu`, from crates.io) and an SQS-compatible
//! server (moto's, from PyPI), all installed by `./tests/run.sh`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A broker's process and whatever it started, in a process group of their own: dropping it
/// kills the whole group (`rabbitmq-server` is a script whose Erlang node would outlive it).
pub struct BrokerProcess {
    child: Child,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The group's id is the leader's pid (`process_group(0)`).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Starts `command` with its output discarded, killed with everything it started when dropped;
/// `install` says where the program comes from if it does not start. Waits until it listens on
/// `port` (within `seconds`).
async fn start_listening(command: &mut Command, install: &str, port: u16, seconds: u64) -> BrokerProcess {
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts ({e}): run ./tests/run.sh, which installs {install}"));
    let process = BrokerProcess { child };
    wait_listening(&format!("{program} ({install})"), port, seconds).await;
    process
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
    _process: BrokerProcess,
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
        NatsServer { url: format!("nats://127.0.0.1:{port}"), _process: child }
    }
}

/// A running RabbitMQ node of its own (its own node name, ports, data, Erlang cookie and
/// Erlang port mapper, which is stopped after it).
pub struct RabbitMq {
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub url: String,
    _process: BrokerProcess,
    // Dropped after the node (fields drop in order).
    _epmd: Epmd,
}

/// An Erlang port mapper on a port of its own, which daemonizes out of the node's process group;
/// stopped when dropped, once the node it served is gone.
struct Epmd(u16);

impl Drop for Epmd {
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        // It refuses while it still lists the node, which it forgets when the node's
        // connection closes.
        while std::time::Instant::now() < deadline {
            let killed = std::process::Command::new("epmd")
                .args(["-port", &self.0.to_string(), "-kill"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Killed"));
            if killed {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
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
        let epmd_port = NatsServer::free_port();
        let mut command = Command::new(&bin);
        command
            .env("ERL_EPMD_PORT", epmd_port.to_string())
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
        RabbitMq { url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"), _process: child, _epmd: Epmd(epmd_port) }
    }
}

/// A running Tansu broker (Kafka's protocol), keeping its topics in memory.
pub struct Tansu {
    /// `127.0.0.1:<port>`, as Kafka clients take bootstrap servers.
    pub bootstrap: String,
    _process: BrokerProcess,
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
        Tansu { bootstrap: format!("127.0.0.1:{port}"), _process: child }
    }
}

/// A running moto server (SQS's API, among AWS's others), from the tests' Python environment.
pub struct MotoServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _process: BrokerProcess,
}

impl MotoServer {
    /// Starts `python -m moto.server` on a free loopback port; waits until it takes connections.
    pub async fn start() -> MotoServer {
        let python = std::env::var("OVERTURE_PYTHON").unwrap_or_else(|_| "python3".into());
        let port = NatsServer::free_port();
        let mut command = Command::new(&python);
        command.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        let child = start_listening(&mut command, "moto (PyPI) in its Python environment", port, 30).await;
        MotoServer { url: format!("http://127.0.0.1:{port}"), _process: child }
    }
}
