//! A real S3-compatible server for tests: s3rver (pinned in `tests/js/package-lock.json`,
//! installed with the JavaScript SDK by `./tests/run.sh`). It serves path-style buckets over
//! HTTP and checks a request's access key (its key and secret are both `S3RVER`), though not a
//! Signature Version 4 signature.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::js::js_dir;

/// A running s3rver with one bucket; stopped when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket made at start.
    pub bucket: String,
    _child: Child,
}

impl S3Server {
    /// The access key and secret s3rver accepts.
    pub const KEY: &'static str = "S3RVER";

    /// Starts s3rver on a free loopback port, storing under `dir`, with `bucket`; waits until it
    /// answers.
    pub async fn start(dir: &Path, bucket: &str) -> S3Server {
        let script = js_dir().join("node_modules/s3rver/bin/s3rver.js");
        assert!(
            script.is_file(),
            "s3rver is not installed in {}: run ./tests/run.sh, or `npm ci` there",
            js_dir().display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let child = Command::new("node")
            .arg(&script)
            .args(["-d"])
            .arg(dir)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--silent", "--no-vhost-buckets"])
            .args(["--configure-bucket", bucket])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts s3rver");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = crate::client();
        let up = crate::wait_for(Duration::from_secs(30), || {
            let r = client.get(format!("{endpoint}/")).send();
            async move { r.await.is_ok() }
        })
        .await;
        assert!(up, "s3rver did not answer on {endpoint}");
        S3Server { endpoint, bucket: bucket.to_owned(), _child: child }
    }
}
