//! Real message brokers for the event queue tests, started on free loopback ports and stopped
//! when dropped: NATS with JetStream (Debian's `nats-server`, installed by `./tests/run.sh`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

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
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} starts ({e}): run ./tests/run.sh, which installs Debian's nats-server"));
        let up = crate::wait_for(Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        assert!(up, "nats-server did not listen on port {port}");
        NatsServer { url: format!("nats://127.0.0.1:{port}"), _child: child }
    }
}
