//! A real S3 API for recording-storage tests: an `s3s-fs` process serving a temporary directory
//! on a free local port and checking every request's SigV4 signature, so the storage code talks
//! to S3 (or R2, which speaks the same API) exactly as in production.
//!
//! `s3s-fs` is found through the `S3S_FS` environment variable, then `~/.cargo/bin/s3s-fs`, then
//! `PATH`; `scripts/install-test-tools` installs it.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use wakili_settings::{ProviderKind, ProviderSettings, Secret};

/// The access key id every [`S3Server`] accepts.
pub const ACCESS_KEY: &str = "wakili-test-ak";
/// The secret access key every [`S3Server`] accepts.
pub const SECRET_KEY: &str = "wakili-test-secret-key-0123456789";
/// The one bucket every [`S3Server`] has, created empty at start.
pub const BUCKET: &str = "recordings";
/// The region the providers name (`s3s-fs` accepts any; SigV4 signs it).
pub const REGION: &str = "us-east-1";

/// One `s3s-fs` server: a real S3 API over a temporary directory, verifying SigV4 with
/// [`ACCESS_KEY`] and [`SECRET_KEY`]. It keeps its port and directory across
/// [`stop`](Self::stop) and [`resume`](Self::resume), so a test can take the provider away and
/// bring it back with its objects; dropping it stops the process and removes the directory.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    root: tempfile::TempDir,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a server on a free port over a new directory holding an empty [`BUCKET`], once it
    /// accepts connections.
    ///
    /// # Panics
    /// When the directory or port cannot be had, `s3s-fs` cannot be run, or it does not listen
    /// within five seconds.
    #[must_use]
    pub fn start() -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket directory");
        let mut s3 = Self {
            port: 0,
            root,
            child: None,
        };
        // A port free a moment ago may be taken by the time `s3s-fs` binds it (another test's
        // server): then it exits, and the next free port is tried.
        for _ in 0..5 {
            s3.port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free local port")
                .port();
            if s3.try_resume() {
                return s3;
            }
        }
        panic!("s3s-fs found no free port to listen on");
    }

    /// The `s3s-fs` program: `$S3S_FS`, else `~/.cargo/bin/s3s-fs` when it exists, else
    /// `s3s-fs` from `PATH`.
    #[must_use]
    pub fn binary() -> PathBuf {
        if let Ok(path) = std::env::var("S3S_FS") {
            return path.into();
        }
        let home = std::env::var("HOME").unwrap_or_default();
        let installed = Path::new(&home).join(".cargo/bin/s3s-fs");
        if installed.exists() {
            installed
        } else {
            "s3s-fs".into()
        }
    }

    /// (Re)starts the server on its port and directory, waiting until it accepts connections.
    ///
    /// # Panics
    /// When `s3s-fs` cannot be run, its port is taken, or it does not listen within five
    /// seconds.
    pub fn resume(&mut self) {
        assert!(
            self.try_resume(),
            "s3s-fs could not listen on port {} (taken by another process?)",
            self.port
        );
    }

    /// Starts `s3s-fs` on the port and waits until this process listens there (not merely
    /// something: another server may hold the port); `false` when it exited first.
    fn try_resume(&mut self) -> bool {
        let mut child = Command::new(Self::binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is needed (scripts/install-test-tools installs it)");
        for _ in 0..200 {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if listens(child.id(), self.port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("s3s-fs did not start on port {}", self.port);
    }

    /// Kills the process and waits for it (nothing listens on the port until
    /// [`resume`](Self::resume)); the directory stays. Does nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends the process SIGSTOP (`true`: frozen, accepting connections but answering nothing)
    /// or SIGCONT (`false`).
    ///
    /// # Panics
    /// When it is not running or `kill` fails.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The port it listens on (on 127.0.0.1).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its endpoint URL, `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Settings for a recording provider called `name` of `kind` (S3 or R2) that stores in this
    /// server's [`BUCKET`] with its keys, over plain HTTP.
    #[must_use]
    pub fn provider(&self, name: &str, kind: ProviderKind) -> ProviderSettings {
        ProviderSettings {
            name: name.into(),
            kind,
            bucket: Some(BUCKET.into()),
            region: Some(REGION.into()),
            endpoint: Some(self.endpoint()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(Secret::new(SECRET_KEY)),
            allow_http: true,
            path: None,
        }
    }

    /// The directory holding [`BUCKET`]'s objects, one file per object, to look at what is
    /// stored at rest.
    #[must_use]
    pub fn dir(&self) -> PathBuf {
        self.root.path().join(BUCKET)
    }
}

/// Whether process `pid` holds a TCP socket listening on `port`: one of its descriptors is a
/// socket whose inode `/proc/net/tcp` lists in state LISTEN (`0A`) on that local port.
fn listens(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let local = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 9
                && fields[1].ends_with(&local)
                && fields[3] == "0A"
                && inodes.iter().any(|inode| inode == fields[9])
        })
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    #[test]
    fn it_listens_until_stopped_and_resumes_on_the_same_port_and_directory() {
        let mut s3 = S3Server::start();
        let port = s3.port();
        assert!(listening(port));
        assert!(s3.dir().is_dir());
        std::fs::write(s3.dir().join("kept"), b"object").expect("write");
        s3.stop();
        assert!(!listening(port));
        s3.resume();
        assert_eq!(s3.port(), port);
        assert!(listening(port));
        assert_eq!(
            std::fs::read(s3.dir().join("kept")).expect("read"),
            b"object"
        );
        s3.freeze(true);
        s3.freeze(false);
    }

    #[test]
    fn providers_point_at_the_server_with_its_keys() {
        let s3 = S3Server::start();
        let provider = s3.provider("r2", ProviderKind::R2);
        assert_eq!(provider.name, "r2");
        assert_eq!(provider.kind, ProviderKind::R2);
        assert_eq!(provider.bucket.as_deref(), Some(BUCKET));
        assert_eq!(provider.endpoint, Some(s3.endpoint()));
        assert_eq!(provider.access_key_id.as_deref(), Some(ACCESS_KEY));
        assert!(provider.allow_http);
    }
}
