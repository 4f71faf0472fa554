//! A real Spark Connect server for tests, started through
//! `scripts/spark-server.sh` (which installs it from PyPI into a
//! virtualenv on first use): Sail in local-cluster mode with two workers,
//! or Apache Spark with `local[2]`, on 127.0.0.1 at a free port.

use std::process::Stdio;
use std::time::Duration;

use crate::server::ScriptServer;

/// A running Spark Connect server; stopped by its PID when dropped (the
/// launcher stops it when its stdin closes, also if this process is killed).
pub struct SparkServer {
    server: ScriptServer,
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
        let failure = "the Spark Connect test server did not start (run scripts/spark-server.sh by hand)";
        let kind = Self::kind();
        SparkServer { server: ScriptServer::start("spark-server.sh", &[&kind], env, Stdio::null(), failure) }
    }

    /// `sc://127.0.0.1:PORT`.
    pub fn remote(&self) -> &str {
        self.server.address()
    }
}

impl Drop for SparkServer {
    fn drop(&mut self) {
        // The launcher stops the server and exits; give it the time to.
        self.server.stop(Duration::from_secs(30));
    }
}
