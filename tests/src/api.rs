//! The real `api` binary on 127.0.0.1:0, for end-to-end tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binary;

/// A running `api` server; killed when dropped.
pub struct ApiServer {
    /// The server process (for signal tests).
    pub child: Child,
    addr: String,
}

impl ApiServer {
    /// Starts `api` in `dir` serving `output`, with extra environment.
    pub fn start(dir: &Path, output: &str, env: &[(&str, String)]) -> ApiServer {
        let mut child = Command::new(binary("api"))
            .current_dir(dir)
            .args(["--output", output, "--bind", "127.0.0.1:0", "--reload-interval-secs", "1"])
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start api");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
        let addr = line
            .trim()
            .strip_prefix("Listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        ApiServer { child, addr }
    }

    /// GET over a plain HTTP/1.1 connection: (status, JSON body).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("http response");
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Polls `/health` until `ok` holds for its body (20 s at most).
    pub fn wait_for(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.get("/health");
            if ok(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
