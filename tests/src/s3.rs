//! A real S3 API for tests: moto on 127.0.0.1 with an ephemeral port,
//! started through `scripts/s3-server.sh` (which installs moto from PyPI
//! into a virtualenv on first use).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running S3 server; stopped when dropped (its stdin closes, and the
/// server exits with it even if this process is killed).
pub struct S3Server {
    child: Child,
    stdin: Option<ChildStdin>,
    endpoint: String,
}

impl S3Server {
    /// Starts a server with `bucket` created. Panics with the server's
    /// message when it cannot start: a test that needs S3 must not pass
    /// without it.
    pub fn start(bucket: &str) -> S3Server {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-server.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .arg(bucket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the server's ready line");
        let Some(endpoint) = line.trim().strip_prefix("ready ") else {
            let _ = child.kill();
            panic!("the S3 test server did not start (see its output above); got {line:?}");
        };
        let stdin = child.stdin.take();
        S3Server { endpoint: endpoint.to_string(), child, stdin }
    }

    /// Environment for a `pipeline`/`api` process to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The same settings as object_store options, for in-process access.
    pub fn options(&self) -> Vec<(String, String)> {
        self.env().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
