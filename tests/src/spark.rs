//! A real Spark Connect server for tests, started through
//! `scripts/spark-server.sh` (which installs it from PyPI into a
//! virtualenv on first use): Sail in local-cluster mode with two workers,
//! or Apache Spark with `local[2]`, on 127.0.0.1 at a free port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Spark Connect server; stopped by its PID when dropped (the
/// launcher stops it when its stdin closes, also if this process is killed).
pub struct SparkServer {
    child: Child,
    stdin: Option<ChildStdin>,
    remote: String,
}

impl SparkServer {
    /// The server the tests use: `MINUTELY_TEST_SPARK` (`sail`, the
    /// default, or `spark` for Apache Spark).
    pub fn kind() -> String {
        std::env::var("MINUTELY_TEST_SPARK").unwrap_or_else(|_| "sail".into())
    }

    /// Starts a server of [`SparkServer::kind`] with `env` (AWS_* for S3)
    /// in its environment. Panics with the server's message when it cannot
    /// start: a test that needs Spark must not pass without it.
    pub fn start(env: &[(&str, String)]) -> SparkServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/spark-server.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .arg(Self::kind())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the server's ready line");
        let Some(remote) = line.trim().strip_prefix("ready ") else {
            let _ = child.kill();
            panic!("the Spark Connect test server did not start; got {line:?} (run scripts/spark-server.sh by hand)");
        };
        let stdin = child.stdin.take();
        SparkServer { remote: remote.to_string(), child, stdin }
    }

    /// `sc://127.0.0.1:PORT`.
    pub fn remote(&self) -> &str {
        &self.remote
    }
}

impl Drop for SparkServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // The launcher stops the server and exits; give it the time to.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
