//! A real S3 API for tests: moto on 127.0.0.1 with an ephemeral port,
//! started through `scripts/s3-server.sh` (which installs moto from PyPI
//! into a virtualenv on first use).

use std::process::Stdio;
use std::time::Duration;

use crate::server::ScriptServer;

/// A running S3 server; stopped when dropped (its stdin closes, and the
/// server exits with it even if this process is killed).
pub struct S3Server {
    server: ScriptServer,
}

impl S3Server {
    /// Starts a server with `bucket` created. Panics with the server's
    /// message when it cannot start: a test that needs S3 must not pass
    /// without it.
    pub fn start(bucket: &str) -> S3Server {
        let failure = "the S3 test server did not start (see its output above)";
        S3Server { server: ScriptServer::start("s3-server.sh", &[bucket], &[], Stdio::inherit(), failure) }
    }

    /// Environment for a `pipeline`/`api` process to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.server.address().to_string()),
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
        self.server.stop(Duration::from_millis(200));
    }
}
