//! The `api` binary's command line. (An integration test here also makes
//! `cargo test` build the binary that the `tests` crate starts.)

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn bad_bind_address_is_a_usage_error_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .args(["--bind", "not-an-address", "--output", "memory://api-cli"])
        .output()
        .expect("api binary runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-address"));
}

#[test]
fn zero_memory_budget_is_a_usage_error_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_api"))
        .args(["--memory-budget-mb", "0", "--output", "memory://api-cli"])
        .output()
        .expect("api binary runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory_budget_mb"));
}

/// The `api` binary, started; killed when dropped.
struct Server {
    child: Child,
    /// `host:port` it listens on.
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let bind = if args.contains(&"--bind") { &[][..] } else { &["--bind", "127.0.0.1:0"][..] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
            .args(["--output", "memory://api-cli"])
            .args(bind)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("api starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().expect("log").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a line");
        let addr = line.trim().rsplit("://").next().unwrap_or_default().to_string();
        assert!(line.starts_with("Listening on "), "no listening line: {line:?}; log: {}", stderr.lock().expect("log"));
        Server { child, addr, stderr }
    }

    fn log(&self) -> String {
        self.stderr.lock().expect("log").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// `api token new NAME`: (token, tokens-file line).
fn new_token(name: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_api")).args(["token", "new", name]).output().expect("api runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let field = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).expect(key).trim().to_string();
    (field("token:"), field("tokens file line:"))
}

#[test]
fn token_new_prints_a_random_token_and_the_line_holding_its_hash() {
    let (token, line) = new_token("ci");
    let (a, b) = (new_token("ci").0, token.clone());
    assert_ne!(a, b, "tokens are random");
    let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()));
    assert_eq!(line, format!("ci {hash}"));
    let out = Command::new(env!("CARGO_BIN_EXE_api")).args(["token", "new", "two words"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_access_and_tls_settings_stop_the_server_with_exit_2_naming_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (cert, key) = certificate();
    let (_, other_key) = certificate();
    std::fs::write(path("cert.pem"), &cert).expect("write");
    std::fs::write(path("key.pem"), &key).expect("write");
    std::fs::write(path("other-key.pem"), &other_key).expect("write");
    std::fs::write(path("not-pem.pem"), "hello").expect("write");
    std::fs::write(path("tokens-bad"), "alice\n").expect("write");
    for (args, needle) in [
        (vec!["--tokens-file", &path("missing")], "tokens_file"),
        (vec!["--tokens-file", &path("tokens-bad")], "line 1"),
        (vec!["--tls-key", &path("key.pem")], "tls_key is set but tls_cert is not"),
        (vec!["--tls-cert", &path("cert.pem")], "tls_cert is set but tls_key is not"),
        (vec!["--tls-cert", &path("cert.pem"), "--tls-key", &path("other-key.pem")], "does not match"),
        (vec!["--tls-cert", &path("not-pem.pem"), "--tls-key", &path("key.pem")], "tls_cert"),
        (vec!["--tls-cert", &path("cert.pem"), "--tls-key", &path("missing")], "tls_key"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_api"))
            .args(["--output", "memory://api-cli", "--bind", "127.0.0.1:0"])
            .args(&args)
            .output()
            .expect("api runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?} should name {needle:?}: {stderr}");
    }
}

#[test]
fn https_with_tokens_over_a_real_client_and_a_renewed_certificate_without_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (cert, key) = certificate();
    std::fs::write(path("cert.pem"), &cert).expect("write");
    std::fs::write(path("key.pem"), &key).expect("write");
    let (token, line) = new_token("ci");
    std::fs::write(path("tokens"), format!("# CI\n{line}\n")).expect("write");
    let server = Server::start(&[
        "--tls-cert",
        &path("cert.pem"),
        "--tls-key",
        &path("key.pem"),
        "--tokens-file",
        &path("tokens"),
        "--log-format",
        "json",
    ]);
    let port = server.addr.rsplit(':').next().expect("a port").to_string();
    let (renewed, renewed_key) = certificate();
    // A new client for each request: no pooled connection, no resumed TLS
    // session (which would keep the certificate it began with).
    let client = || {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).expect("pem"))
            .add_root_certificate(reqwest::Certificate::from_pem(renewed.as_bytes()).expect("pem"))
            .tls_built_in_root_certs(false)
            .tls_info(true)
            .build()
            .expect("a client")
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = format!("https://localhost:{port}");
    let get = |path: &str, token: Option<&str>| {
        let mut request = client().get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        runtime.block_on(async {
            let response = request.send().await.expect("an HTTPS response");
            let peer = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|info| info.peer_certificate().map(<[u8]>::to_vec));
            let status = response.status().as_u16();
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or("").to_string());
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, challenge, body, peer)
        })
    };
    // No gold in this output: /health is 503, and so is /services once let in.
    assert_eq!(get("/health", None).0, 503);
    let (status, challenge, body, _) = get("/services", None);
    assert_eq!((status, challenge.as_deref(), &body["error"]["code"]), (401, Some("Bearer"), &"unauthorized".into()));
    let (status, _, body, first_peer) = get("/services", Some(&token));
    assert_eq!((status, &body["error"]["code"]), (503, &"unavailable".into()), "let in");
    assert_eq!(get("/services", Some("not-the-token")).0, 401);
    // HTTPS only: plain HTTP on that port gets no HTTP answer.
    let plain = runtime.block_on(client().get(format!("http://127.0.0.1:{port}/health")).send());
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // Renew: new connections get the new certificate, without a restart.
    std::fs::write(path("key.pem"), &renewed_key).expect("write");
    std::fs::write(path("cert.pem"), &renewed).expect("write");
    let renewed_der = pem_der(&renewed);
    assert_eq!(first_peer.as_deref(), Some(pem_der(&cert).as_slice()), "the first certificate was served");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let peer = get("/health", None).3;
        if peer.as_deref() == Some(renewed_der.as_slice()) {
            break;
        }
        assert!(Instant::now() < deadline, "the renewed certificate was not picked up; log: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = server.log();
    assert!(log.contains(r#""token":"ci""#), "the log names the holder: {log}");
    assert!(!log.contains(&token), "the token never reaches the log");
}

/// The DER bytes of a PEM certificate.
fn pem_der(pem: &str) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate").to_vec()
}

#[test]
fn an_open_api_on_a_non_loopback_address_warns() {
    let server = Server::start(&["--bind", "0.0.0.0:0"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("without tokens on a non-loopback address") {
        assert!(Instant::now() < deadline, "no warning: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let quiet = Server::start(&[]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!quiet.log().contains("non-loopback"), "127.0.0.1 is loopback: {}", quiet.log());
}
