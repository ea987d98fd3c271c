//! Where every outgoing HTTP client of a node starts: Raft RPC, request forwarding, HTTP tasks,
//! the cluster commands.
//!
//! reqwest is built with rustls and no crypto provider of its own (`rustls-no-provider`), so that
//! the workspace never compiles the C crypto library reqwest would pick; building a client before
//! a provider is installed panics. [`client`] installs ring as the process's provider first, once.

use std::sync::Once;

/// Makes ring the process's rustls crypto provider, if none is installed yet.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which is as good. rustls marks ring's
        // provider deprecated because it has no post-quantum key exchange; the alternative,
        // aws-lc, is the C crypto build this project does not compile.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder, with the crypto provider in place.
pub fn client() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}
