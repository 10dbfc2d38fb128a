//! TLS of every outbound connection: rustls on *ring*, for the AWS SDK's clients and
//! reqwest's alike.
//!
//! Both default to rustls on aws-lc, a C library that every build compiles (debug and
//! release) and that every function's binary carries; ring is the smaller of rustls's
//! two providers and needs nothing but the Rust toolchain and a C compiler for its few
//! assembly parts.

use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The HTTPS client of the AWS SDK's clients (hyper, rustls on ring, the system's roots).
pub fn aws_http_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A reqwest client builder whose TLS runs on ring: ring is installed as the process's
/// rustls provider first (reqwest is built without one of its own and would panic).
#[cfg(feature = "https")]
pub fn reqwest_client() -> reqwest::ClientBuilder {
    // Err: a provider is installed already, ring by an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "https")]
    #[test]
    fn reqwest_clients_build_on_ring_however_often() {
        // Without a process provider reqwest panics while building; the second call
        // finds ring installed.
        for _ in 0..2 {
            reqwest_client().build().expect("a reqwest client on ring");
        }
        let installed = rustls::crypto::CryptoProvider::get_default().expect("a provider");
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            format!("{:?}", installed.cipher_suites),
            format!("{:?}", ring.cipher_suites)
        );
    }

    #[tokio::test]
    async fn the_sdk_configuration_carries_the_ring_client() {
        let sdk = crate::aws::load_sdk_config().await;
        assert!(
            sdk.http_client().is_some(),
            "an SDK without an HTTPS client fails every call"
        );
    }
}
