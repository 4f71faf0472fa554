//! A test server started through one of the repository's scripts
//! (`scripts/s3-server.sh`, `scripts/spark-server.sh`): the script prints
//! `ready <address>` as its first line on stdout and stops its server, by
//! PID, when its stdin closes, also when this process is killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct ScriptServer {
    child: Child,
    stdin: Option<ChildStdin>,
    address: String,
}

impl ScriptServer {
    /// Runs `scripts/<script> <args>` with `env` and waits for its ready
    /// line. Panics with `failure` when the server does not start: a test
    /// that needs it must not pass without it.
    pub(crate) fn start(script: &str, args: &[&str], env: &[(&str, String)], stderr: Stdio, failure: &str) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(script);
        let mut child = Command::new("bash")
            .arg(&script)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the server's ready line");
        let Some(address) = line.trim().strip_prefix("ready ") else {
            let _ = child.kill();
            panic!("{failure}; got {line:?}");
        };
        let stdin = child.stdin.take();
        ScriptServer { address: address.to_string(), child, stdin }
    }

    /// What the ready line named: an endpoint URL or a Spark Connect remote.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Closes the script's stdin, so that it stops its server, and gives it
    /// `grace` to exit before killing it.
    pub(crate) fn stop(&mut self, grace: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
