//! `webapp api-get PATH`: one HTTPS GET of the Kubernetes API from inside
//! a pod, as an in-cluster client does it: the address from
//! `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, the server
//! verified as `kubernetes.default.svc` against the mounted `ca.crt`, and
//! the mounted ServiceAccount token as the bearer. Prints the status code
//! on the first line, then the body; exits 0 whenever an answer came.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Where ServiceAccount admission mounts the token and CA.
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The name the API's serving certificate carries for the Service.
const SERVER_NAME: &str = "kubernetes.default.svc";

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("webapp api-get: {what}: {e}");
    std::process::exit(2)
}

/// ring, as the rest of Skiff (no toolchain beyond cc); its "no
/// post-quantum key exchange" deprecation does not matter inside a lab.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Runs the subcommand for `path` (`/api/v1/namespaces/default/pods`).
pub fn run(path: &str) -> ! {
    let host = std::env::var("KUBERNETES_SERVICE_HOST")
        .unwrap_or_else(|e| fail("KUBERNETES_SERVICE_HOST", e));
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let token = std::fs::read_to_string(format!("{MOUNT}/token"))
        .unwrap_or_else(|e| fail("reading the token", e));
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(format!("{MOUNT}/ca.crt"))
        .unwrap_or_else(|e| fail("reading ca.crt", e));
    for ca in cas {
        let ca = ca.unwrap_or_else(|e| fail("parsing ca.crt", e));
        roots.add(ca).unwrap_or_else(|e| fail("adding the CA", e));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail("TLS versions", e))
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(SERVER_NAME).unwrap_or_else(|e| fail("server name", e));
    let connection = rustls::ClientConnection::new(Arc::new(config), name)
        .unwrap_or_else(|e| fail("TLS client", e));
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tcp = TcpStream::connect(&address).unwrap_or_else(|e| fail(&address, e));
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        token.trim()
    );
    tls.write_all(request.as_bytes())
        .unwrap_or_else(|e| fail("sending", e));
    let mut response = Vec::new();
    // A server that closes without close_notify still gave its answer.
    if let Err(e) = tls.read_to_end(&mut response)
        && response.is_empty()
    {
        fail("reading", e);
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).unwrap_or("?");
    println!("{code}");
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    println!(
        "{}",
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        }
    );
    std::process::exit(0)
}

/// The body of a chunked response.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}
