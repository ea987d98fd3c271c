//! HTTP tasks over TLS, against real TLS servers on loopback whose certificates the test makes:
//! a server signed by a certificate authority the node is told to trust (`OVERTURE_HTTP_CA_BUNDLE`)
//! is called; one signed by an authority nobody trusts fails its task; one that asks for a client
//! certificate gets the node's (`OVERTURE_HTTP_CLIENT_CERT`).

use std::sync::Arc;
use std::time::Duration;

use overture_tests::{Node, client, send, wait_status};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority the test makes.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-signed");
        Authority { pem: cert.pem(), der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses): its chain and key.
    fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String) {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], der, pem)
    }
}

/// The ring provider, which the node uses too (rustls marks it deprecated only for lacking
/// post-quantum key exchange).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An echo server behind TLS on a free loopback port, with a certificate from `authority`;
/// with `clients`, it requires a client certificate that authority signed. Returns its URL.
async fn tls_echo(authority: &Authority, clients: Option<&Authority>) -> String {
    let (chain, key, _) = authority.leaf(&["127.0.0.1", "localhost"]);
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).expect("client root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    overture_tests::echo::serve(tls).await;
                }
            });
        }
    });
    format!("https://{addr}")
}

fn call(reference: &str, uri: String) -> Value {
    json!({"name": reference, "taskReferenceName": reference, "type": "HTTP", "optional": true,
           "inputParameters": {"http_request": {"uri": uri, "method": "POST", "body": {"问候": "你好"}}}})
}

#[tokio::test]
async fn http_tasks_call_https_servers_the_node_trusts_and_only_those() {
    let trusted = Authority::new("Overture test CA");
    let stranger = Authority::new("Nobody trusts this CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &trusted.pem).expect("write CA");
    let (_, _, client_pem) = trusted.leaf(&["overture-node"]);
    let client_path = dir.path().join("client.pem");
    std::fs::write(&client_path, client_pem).expect("write client identity");

    let served = tls_echo(&trusted, None).await;
    let unknown = tls_echo(&stranger, None).await;
    let mutual = tls_echo(&trusted, Some(&trusted)).await;

    let env = [
        ("OVERTURE_HTTP_CA_BUNDLE", ca_path.to_str().expect("utf-8 path")),
        ("OVERTURE_HTTP_CLIENT_CERT", client_path.to_str().expect("utf-8 path")),
    ];
    let node = Node::start_with_env(&dir.path().join("node"), &env).await;
    let c = client();
    let def = json!({"name": "tls_calls", "version": 1, "tasks": [
        call("trusted", format!("{served}/订单")),
        call("unknown", format!("{unknown}/x")),
        call("mutual", format!("{mutual}/mtls")),
    ]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
    assert!(r.status < 300, "{} {}", r.status, r.text);
    let r = send(c.post(node.api("/workflow/tls_calls")).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_status(&node, &r.text, "COMPLETED", Duration::from_secs(30)).await;
    let task = |reference: &str| {
        done["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["referenceTaskName"] == reference))
            .cloned()
            .expect("task")
    };

    let trusted = task("trusted");
    assert_eq!(trusted["status"], "COMPLETED", "{trusted}");
    let echoed = &trusted["outputData"]["response"]["body"];
    assert_eq!(echoed["path"], "/%E8%AE%A2%E5%8D%95", "the path reached the server, percent-encoded");
    assert_eq!(echoed["body"], r#"{"问候":"你好"}"#);
    assert_eq!(trusted["outputData"]["response"]["statusCode"], 200);

    let unknown = task("unknown");
    assert_eq!(unknown["status"], "COMPLETED_WITH_ERRORS", "an untrusted certificate fails the call: {unknown}");
    let reason = unknown["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(reason.starts_with("Failed to invoke HTTP task"), "{reason}");

    let mutual = task("mutual");
    assert_eq!(mutual["status"], "COMPLETED", "the node presented its client certificate: {mutual}");
    assert_eq!(mutual["outputData"]["response"]["body"]["path"], "/mtls");
}

#[tokio::test]
async fn a_ca_bundle_that_is_not_pem_stops_the_start_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, "这不是证书").expect("write");
    let data = dir.path().join("node");
    let output = tokio::process::Command::new(overture_tests::overture_bin())
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("OVERTURE_HTTP_CA_BUNDLE", &ca_path)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output).await.expect("exits").expect("runs");
    assert!(!output.status.success(), "the node refused to start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http_ca_bundle"), "the error names the setting: {stderr}");
}
