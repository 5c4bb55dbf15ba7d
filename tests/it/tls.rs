//! TLS: a self-signed server is refused with a hint, and trusted with --ca-file; an
//! HTTP proxy from the environment is used, and its refusal is reported.

use std::sync::Arc;

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::support::mock::{Mock, Options};
use crate::support::{Proxy, call};

/// A TLS front for the mock server, with a fresh self-signed certificate for 127.0.0.1.
/// Returns the https URL and the certificate's PEM.
async fn tls_front(mock: &Mock) -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = mock.base.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (format!("https://{addr}/mcp"), pem)
}

#[tokio::test]
async fn self_signed_needs_ca_file() {
    let mock = Mock::start(Options::default()).await;
    let (url, pem) = tls_front(&mock).await;

    let mut p = Proxy::spawn(&[&url]);
    let msg = p.initialize_error("2025-11-25").await;
    assert!(msg.contains("TLS") && msg.contains("--ca-file"), "{msg}");
    p.finish().await;

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let mut p = Proxy::spawn(&[&url, "--ca-file", ca.to_str().unwrap()]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "echo", json!({"over": "tls"}))).await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert_eq!(resp["result"]["content"][0]["text"], r#"{"over":"tls"}"#);
    p.finish().await;
}

/// HTTP_PROXY is honoured: the request goes to the proxy in absolute form, and a
/// refusing proxy's status is reported to the client.
#[tokio::test]
async fn refusing_http_proxy() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let _ = seen_tx.send(head);
            let _ = s
                .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 24\r\nconnection: close\r\n\r\nblocked by proxy policy\n")
                .await;
        }
    });
    let target = "http://mcp.example.test/mcp";
    let mut p = Proxy::spawn_env(&[target, "--allow-http"], &[("HTTP_PROXY", &proxy_url)]);
    let msg = p.initialize_error("2025-11-25").await;
    assert!(
        msg.contains("HTTP 403") && msg.contains("blocked by proxy policy"),
        "{msg}"
    );
    // The startup sign-in probe also goes through the proxy; find the POST.
    let mut heads = Vec::new();
    while let Some(head) = seen_rx.recv().await {
        let post = head.starts_with("POST ");
        heads.push(head);
        if post {
            break;
        }
    }
    assert_eq!(
        heads.last().unwrap(),
        &format!("POST {target} HTTP/1.1"),
        "{heads:?}"
    );
    assert!(
        heads.iter().all(|h| h.contains("http://mcp.example.test/")),
        "{heads:?}"
    );
    p.finish().await;
}
