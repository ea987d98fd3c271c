//! The engine's settings.

use std::time::Duration;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Passivate a workflow actor after this long without messages.
    pub idle_actor_timeout: Duration,
    /// Live workflow actors at most: beyond, the least recently active are passivated.
    pub max_live_actors: usize,
    /// How long ended executions are kept, and how often the leader looks for expired ones.
    pub retention: crate::retention::Retention,
    /// How late a schedule's fire may run when the schedule does not catch up.
    pub schedule_grace: Duration,
    /// The largest output a task may have, in bytes: an HTTP task's response body over it
    /// fails the task.
    pub max_task_output_bytes: usize,
    /// Where JSON_JQ_TRANSFORM queries run: sandbox processes under time and memory limits.
    /// Without one (the default), jq tasks fail saying jq is not available.
    pub jq: overture_script::Sandbox,
    /// How HTTP tasks speak TLS.
    pub http_tls: HttpTls,
    /// When payloads go to external payload storage.
    pub payloads: crate::payloads::PayloadOptions,
    /// The message brokers event queues may be on.
    pub brokers: crate::brokers::Brokers,
}

/// How HTTP tasks speak TLS: `https://` URIs are verified against the system's certificate
/// authorities (through the platform verifier) and any in `ca_bundle`; a server that asks for a
/// client certificate gets `client_identity`.
#[derive(Debug, Clone, Default)]
pub struct HttpTls {
    /// Certificate authorities (PEM) trusted besides the system's.
    pub ca_bundle: Option<Vec<u8>>,
    /// A client certificate chain and its private key (PEM, in one file).
    pub client_identity: Option<Vec<u8>>,
}

impl HttpTls {
    /// The client HTTP tasks use, or why these settings cannot make one (a file that is not PEM,
    /// a key that does not parse).
    pub fn client(&self) -> Result<reqwest::Client, String> {
        let mut builder = overture_raft::http::client();
        if let Some(pem) = &self.ca_bundle {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA bundle is not PEM certificates: {e}"))?;
            if roots.is_empty() {
                return Err("the CA bundle holds no certificate".to_owned());
            }
            builder = builder.tls_certs_merge(roots);
        }
        if let Some(pem) = &self.client_identity {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| format!("the client certificate is not a PEM chain and private key: {e}"))?;
            builder = builder.identity(identity);
        }
        builder.build().map_err(|e| format!("cannot build the HTTP task client: {e}"))
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            idle_actor_timeout: Duration::from_secs(30),
            max_live_actors: crate::actor::DEFAULT_MAX_LIVE,
            retention: Default::default(),
            schedule_grace: crate::scheduler::DEFAULT_GRACE,
            jq: overture_script::Sandbox::unavailable(),
            max_task_output_bytes: 10 << 20,
            http_tls: HttpTls::default(),
            payloads: crate::payloads::PayloadOptions::default(),
            brokers: crate::brokers::Brokers::default(),
        }
    }
}
