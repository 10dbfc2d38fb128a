//! The functions' HTTPS clients complete real TLS handshakes, and refuse a server
//! whose certificate they cannot trust: the AWS SDK's client
//! (`modelwatch::tls::aws_http_client`, by way of `aws::load_sdk_config`) and the
//! reqwest client of the exporters and webhooks (`modelwatch::tls::reqwest_client`),
//! both as the functions build them, against a local HTTPS server on rustls.
//!
//! Every other endpoint of the local stack is plain HTTP, so without this test the
//! clients' TLS (rustls on ring, the system's roots) would first run against AWS.
//! Both clients read their roots from the system store, which `SSL_CERT_FILE`
//! replaces; the variable is read when a client is built, so each case runs in a
//! child process of this binary with its own `SSL_CERT_FILE` (no harness: `main`
//! decides which role the process has). The certificates in `fixtures/tls` are a
//! test CA, a `localhost` certificate it signed (and its key), and an unrelated CA;
//! they expire in 2126.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What a case's outcome must be.
type Check = fn(&Value) -> Result<(), String>;

/// Set in a child process: the case it runs.
const ROLE: &str = "MODELWATCH_TLS_CASE";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn main() -> ExitCode {
    if std::env::var_os(ROLE).is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        println!("{}", runtime.block_on(connect_both()));
        return ExitCode::SUCCESS;
    }
    let cases: [(&str, Check); 2] = [("ca.pem", both_completed), ("other-ca.pem", both_refused)];
    let mut failed = 0;
    for (roots, check) in cases {
        let name = format!("https clients with SSL_CERT_FILE={roots}");
        match run_case(roots).and_then(|outcome| check(&outcome).map(|()| outcome)) {
            Ok(outcome) => println!("test {name} ... ok {outcome}"),
            Err(problem) => {
                println!("test {name} ... FAILED: {problem}");
                failed += 1;
            }
        }
    }
    // libtest's closing line, which the test command's count reads.
    println!(
        "test result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" },
        cases.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one case in a child process whose system roots are the certificates of
/// `roots`; its outcome (see [`connect_both`]).
fn run_case(roots: &str) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .env(ROLE, roots)
        .env("SSL_CERT_FILE", fixture(roots))
        .env_remove("SSL_CERT_DIR")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_ENDPOINT_URL")
        // The SDK's own configuration, none of it the machine's.
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .map_err(|e| format!("the child process did not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the child process failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_str(stdout.trim()).map_err(|e| format!("{e}: {stdout}"))
}

/// With the test CA as the roots: both clients got the server's answer over TLS 1.3.
fn both_completed(outcome: &Value) -> Result<(), String> {
    let expected = json!({
        "sdk": {"ok": ["tls-handshake-ok"]},
        "reqwest": {"ok": "tls-handshake-ok"},
        "handshakes": ["TLSv1_3", "TLSv1_3"],
    });
    if *outcome == expected {
        Ok(())
    } else {
        Err(format!("expected {expected}, got {outcome}"))
    }
}

/// With an unrelated CA as the roots: both clients refused the certificate, so no
/// handshake completed.
fn both_refused(outcome: &Value) -> Result<(), String> {
    let refused = |client: &str| {
        outcome[client]["error"]
            .as_str()
            .is_some_and(|e| e.contains("UnknownIssuer") || e.contains("unknown issuer"))
    };
    if refused("sdk") && refused("reqwest") && outcome["handshakes"] == json!([]) {
        Ok(())
    } else {
        Err(format!(
            "expected both clients to refuse an unknown issuer, got {outcome}"
        ))
    }
}

/// Serves HTTPS on localhost and calls it once with each client: what each got
/// (`{"ok": …}` or `{"error": the error chain}`) and the protocol of every handshake
/// the server completed.
async fn connect_both() -> Value {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!(
        "https://localhost:{}",
        listener.local_addr().expect("address").port()
    );
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, handshakes.clone()));

    // The functions' SDK configuration, pointed at the server.
    let sdk_config = modelwatch::aws::load_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .endpoint_url(&endpoint)
            .build(),
    );
    let sdk = match dynamodb.list_tables().send().await {
        Ok(answer) => json!({"ok": answer.table_names()}),
        Err(err) => json!({"error": chain(&err)}),
    };
    let client = modelwatch::tls::reqwest_client()
        .build()
        .expect("reqwest client");
    let reqwest = match client.get(format!("{endpoint}/ping")).send().await {
        Ok(answer) => match answer.text().await {
            Ok(text) => json!({"ok": text}),
            Err(err) => json!({"error": chain(&err)}),
        },
        Err(err) => json!({"error": chain(&err)}),
    };
    let handshakes = handshakes.lock().expect("handshakes").clone();
    json!({"sdk": sdk, "reqwest": reqwest, "handshakes": handshakes})
}

/// An error and its sources, one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&format!("{cause:?}"));
        source = cause.source();
    }
    text
}

/// Accepts TLS connections with the `localhost` certificate and answers each request
/// with a DynamoDB ListTables answer (the SDK's call) or a plain text (reqwest's);
/// records the protocol of every completed handshake.
async fn serve(listener: TcpListener, handshakes: Arc<Mutex<Vec<String>>>) {
    let chain = CertificateDer::pem_file_iter(fixture("localhost.pem"))
        .expect("certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(fixture("localhost-key.pem")).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, handshakes) = (acceptor.clone(), handshakes.clone());
        tokio::spawn(async move {
            // A refused certificate ends the handshake here; the client reports it.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let protocol = tls.get_ref().1.protocol_version();
            handshakes
                .lock()
                .expect("handshakes")
                .push(protocol.map_or_else(|| "none".to_owned(), |v| format!("{v:?}")));
            let Some(head) = read_request(&mut tls).await else {
                return;
            };
            let (content_type, body) =
                if head.contains("x-amz-target: dynamodb_20120810.listtables") {
                    (
                        "application/x-amz-json-1.0",
                        r#"{"TableNames":["tls-handshake-ok"]}"#,
                    )
                } else {
                    ("text/plain", "tls-handshake-ok")
                };
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-amzn-requestid: tls-test\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

/// The request's head (lower-cased), its body read and dropped; `None` when the
/// connection ends first.
async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            while received.len() < end + 4 + length {
                let n = stream.read(&mut buffer).await.ok()?;
                if n == 0 {
                    return None;
                }
                received.extend_from_slice(&buffer[..n]);
            }
            return Some(head);
        }
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
    }
}
