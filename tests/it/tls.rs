//! TLS: a self-signed server is refused with a hint, and trusted with --ca-file; expired
//! and wrong-host certificates are named; an HTTP proxy from the environment is used, and
//! its refusal is reported.

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
    let url = serve_tls(mock, cert.cert.der().clone(), cert.signing_key).await;
    (url, pem)
}

/// A TLS front whose certificate is issued by a fresh CA (whose PEM is returned, for
/// `--ca-file`) for `names`, valid in `years`: the trust is fine, only the name or the
/// dates can be wrong.
async fn tls_front_issued(mock: &Mock, names: &[&str], years: (i32, i32)) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    leaf.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let url = serve_tls(mock, cert.der().clone(), key).await;
    (url, ca.pem())
}

async fn serve_tls(
    mock: &Mock,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rcgen::KeyPair,
) -> String {
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
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
    format!("https://{addr}/mcp")
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

/// An expired certificate, and one for another host, both from a trusted CA: each
/// initialize gets one error naming the TLS failure and its cause, and the proxy goes on
/// answering (here: the next request fails the same way, it does not hang).
#[tokio::test]
async fn expired_or_wrong_host_certificate() {
    let mock = Mock::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "expired",
            ["127.0.0.1"],
            (2020, 2021),
            "certificate expired",
        ),
        (
            "wrong host",
            ["other.example"],
            (2020, 2090),
            "not valid for name",
        ),
    ];
    for (what, names, years, cause) in cases {
        let (url, ca_pem) = tls_front_issued(&mock, &names, years).await;
        let ca = dir.path().join(format!("{what}.pem"));
        std::fs::write(&ca, ca_pem).unwrap();
        let mut p = Proxy::spawn(&[&url, "--ca-file", ca.to_str().unwrap()]);
        let msg = p.initialize_error("2025-11-25").await;
        assert!(msg.contains("TLS") && msg.contains(cause), "{what}: {msg}");
        p.send(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#).await;
        let (resp, _) = p.recv_response(5.into()).await;
        let msg = resp["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(cause), "{what}, the next request: {resp}");
        p.assert_memory_below(crate::support::MEMORY_BOUND_MIB);
        p.finish().await;
    }
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

/// A test CA, for server and client certificates.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        TestCa { issuer }
    }

    /// A certificate for `names` (a server) or, with none, a client certificate named
    /// `client`, valid from `years.0` to `years.1`: (certificate PEM, key, DER).
    fn issue(
        &self,
        names: &[&str],
        years: (i32, i32),
    ) -> (
        String,
        rcgen::KeyPair,
        rustls::pki_types::CertificateDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if names.is_empty() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "client");
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key, cert.der().clone())
    }
}

/// A TLS front for `backend` (host:port) that requires a client certificate from `ca`;
/// returns its https base URL and the number of client certificates presented to it.
async fn serve_mtls(backend: &str, ca: &TestCa) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let (_, key, der) = ca.issue(&["127.0.0.1"], (2020, 2100));
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![der], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let presented = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (backend, counter) = (backend.to_owned(), presented.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend, counter) = (acceptor.clone(), backend.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty())
                {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let Ok(mut plain) = TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (format!("https://{addr}"), presented)
}

/// A-MTLS: --tls-cert (with the key in the same file, or apart with --tls-key) is presented
/// to a server that requires a client certificate; without it, the error names the flag.
#[tokio::test]
async fn client_certificate_to_the_server() {
    let ca = TestCa::new();
    let mock = Mock::start(Options::default()).await;
    let (base, presented) = serve_mtls(mock.base.trim_start_matches("http://"), &ca).await;
    let url = format!("{base}/mcp");
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca_file = file("ca.pem", &ca.issuer.pem());
    let (cert, key, _) = ca.issue(&[], (2020, 2100));
    let both = file("client.pem", &format!("{cert}{}", key.serialize_pem()));
    let cert_only = file("client-cert.pem", &cert);
    let key_only = file("client-key.pem", &key.serialize_pem());
    for args in [
        vec!["--tls-cert", both.as_str()],
        vec![
            "--tls-cert",
            cert_only.as_str(),
            "--tls-key",
            key_only.as_str(),
        ],
    ] {
        let mut all = vec![url.as_str(), "--ca-file", ca_file.as_str()];
        all.extend(args);
        let mut p = Proxy::spawn(&all);
        p.initialize("2025-11-25").await;
        p.send(&call(1, "echo", json!({"over": "mtls"}))).await;
        let (resp, _) = p.recv_response(1.into()).await;
        assert!(resp.get("result").is_some(), "{resp}");
        let (_, stderr) = p.finish().await;
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    }
    assert!(presented.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let mut p = Proxy::spawn(&[&url, "--ca-file", &ca_file]);
    let msg = p.initialize_error("2025-11-25").await;
    assert!(
        msg.contains("asks for a client certificate") && msg.contains("--tls-cert FILE"),
        "{msg}"
    );
    p.finish().await;

    // A certificate of a CA the server does not trust is "refused", not "asked for", on
    // the proxy's path and on `check`'s startup probe alike.
    let (stranger, stranger_key, _) = TestCa::new().issue(&[], (2020, 2100));
    let stranger = file(
        "stranger.pem",
        &format!("{stranger}{}", stranger_key.serialize_pem()),
    );
    let refused = [&url, "--ca-file", &ca_file, "--tls-cert", &stranger];
    let mut p = Proxy::spawn(&refused);
    let msg = p.initialize_error("2025-11-25").await;
    assert!(msg.contains("refused our client certificate"), "{msg}");
    p.finish().await;
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(crate::support::BIN)
        .arg("check")
        .args(refused)
        .env_clear()
        .env("HOME", home.path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refused our client certificate"), "{text}");
}

/// A-MTLS: the certificate reaches the authorization server too (its token endpoint here,
/// behind the same kind of front).
#[tokio::test]
async fn client_certificate_to_the_authorization_server() {
    use crate::support::oauth::{OAuthMock, OAuthOptions, Prm};
    let ca = TestCa::new();
    let as_ = OAuthMock::start(OAuthOptions {
        prm: Prm::None,
        preregistered: Some(("pre-mtls", "s3cr3t")),
        ..Default::default()
    })
    .await;
    let (base, presented) = serve_mtls(as_.base.trim_start_matches("http://"), &ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.issuer.pem()).unwrap();
    let (cert, key, _) = ca.issue(&[], (2020, 2100));
    let both = dir.path().join("client.pem");
    std::fs::write(&both, format!("{cert}{}", key.serialize_pem())).unwrap();
    let token_endpoint = format!("{base}/token");
    // A machine's sign-in at the token endpoint behind the front, for `url`, with `extra`.
    let spawn = |url: &str, extra: &[&str], config: &str| {
        let config = dir.path().join(config);
        let mut args = vec![url, "--ca-file", ca_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend([
            "--client-credentials",
            "--client-id",
            "pre-mtls",
            "--client-secret",
            "s3cr3t",
            "--token-endpoint",
            &token_endpoint,
            "--config-dir",
            config.to_str().unwrap(),
        ]);
        Proxy::spawn(&args)
    };
    let mut p = spawn(
        &format!("{base}/mcp"),
        &["--tls-cert", both.to_str().unwrap()],
        "config",
    );
    p.initialize("2025-11-25").await;
    p.finish().await;
    {
        let seen = as_.seen.lock().unwrap();
        assert_eq!(seen.token_requests[0].0["grant_type"], "client_credentials");
    }
    assert!(
        presented.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "MCP and token endpoint"
    );

    // Only the authorization server wants a certificate, and none is set: the sign-in
    // error names --tls-cert, not reqwest's bare "error sending request".
    let mut p = spawn(&as_.url, &[], "config-2");
    let msg = p.initialize_error("2025-11-25").await;
    assert!(
        msg.contains("token endpoint")
            && msg.contains("asks for a client certificate")
            && msg.contains("--tls-cert"),
        "{msg}"
    );
    p.finish().await;
}

/// A-MTLS: inputs that cannot work stop the start (exit 2) with one line naming the file: a
/// key of another certificate, an unreadable file, an expired certificate, no key.
#[tokio::test]
async fn bad_client_certificates_are_named() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (cert, _, _) = ca.issue(&[], (2020, 2100));
    let (_, other_key, _) = ca.issue(&[], (2020, 2100));
    let (expired, expired_key, _) = ca.issue(&[], (2001, 2002));
    let cert_file = write("cert.pem", &cert);
    let other_key = write("other-key.pem", &other_key.serialize_pem());
    let expired = write(
        "expired.pem",
        &format!("{expired}{}", expired_key.serialize_pem()),
    );
    let missing = dir.path().join("missing.pem").to_str().unwrap().to_owned();
    let url = "https://mcp.example.test/mcp";
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--tls-cert", &cert_file, "--tls-key", &other_key],
            format!(
                "invalid --tls-key: {other_key}: this key does not belong to the certificate in {cert_file}"
            ),
        ),
        (
            vec!["--tls-cert", &missing],
            format!("invalid --tls-cert: {missing}: "),
        ),
        (
            vec!["--tls-cert", &expired],
            format!("invalid --tls-cert: {expired}: the certificate is not valid now"),
        ),
        (
            vec!["--tls-cert", &cert_file],
            format!("invalid --tls-cert: {cert_file}: no PEM private key in it"),
        ),
    ];
    for (args, want) in cases {
        let mut all = vec![url];
        all.extend(args.iter().copied());
        let out = crate::support::run_in(dir.path(), &all).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
