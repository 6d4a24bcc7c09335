//! Shared fixtures for the integration tests: a ferric TFTP server on
//! 127.0.0.1 and a free port, serving a temporary directory.
#![allow(dead_code, clippy::unwrap_used)]

pub mod client;

use std::net::SocketAddr;
use std::path::Path;

use ferric_tftp::{ServerConfig, ServerError, TftpServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in the background until [`RunningServer::stop`].
pub struct RunningServer {
    pub address: SocketAddr,
    pub root: tempfile::TempDir,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Serves `files` (name, contents; names may contain `/`) from a fresh
    /// temporary directory.
    pub async fn start(files: &[(&str, &[u8])], config: ServerConfig) -> RunningServer {
        let root = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            write_file(root.path(), name, contents);
        }
        let server =
            TftpServer::bind("127.0.0.1:0".parse().unwrap(), root.path(), config).await.unwrap();
        let address = server.local_addr();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stop.await;
        }));
        RunningServer { address, root, shutdown, task }
    }

    /// Stops the server and waits for it to return.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap().unwrap();
    }
}

pub fn write_file(root: &Path, name: &str, contents: &[u8]) {
    let path = root.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, contents).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(length: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0; length];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}
