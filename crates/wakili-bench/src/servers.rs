//! Starting the TURN servers under test and waiting until they answer.

use std::{
    fs::File,
    net::{SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};

use crate::{
    cli::{ServerKind, Transport, TurnArgs},
    process::{self, ChildGuard},
};

/// Realm both servers use.
pub const REALM: &str = "wakili";
/// Per-user allocation cap on both servers: uclient authenticates every session, and its probe
/// allocations, as the same user.
pub const MAX_ALLOCATIONS_PER_USER: u32 = 100_000;
/// How long a server may take to answer its first STUN binding.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// A running server under test.
pub struct Server {
    /// Which one.
    pub kind: ServerKind,
    /// TURN port on 127.0.0.1, UDP and TCP.
    pub port: u16,
    /// Its command line, the shared secret masked.
    pub command_line: String,
    /// stdout and stderr of the server.
    pub log: PathBuf,
    /// The process; killed when dropped.
    pub process: ChildGuard,
}

/// A fresh shared secret for TURN REST credentials (at least 16 bytes).
pub fn new_secret() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("wakili-bench-{nanos:x}-{:x}", std::process::id())
}

/// The `wakili` binary: `--wakili-bin`, else `wakili` next to this executable.
pub fn wakili_binary(args: &TurnArgs) -> anyhow::Result<PathBuf> {
    locate_wakili(args.wakili_bin.as_deref())
}

/// The `wakili` binary: `explicit` (a `--wakili-bin` flag), else `wakili` next to this
/// executable.
pub fn locate_wakili(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !process::is_executable(path) {
            bail!("--wakili-bin {}: not an executable file", path.display());
        }
        return Ok(path.to_owned());
    }
    let path = std::env::current_exe()
        .context("cannot locate this executable to find `wakili` beside it")?
        .with_file_name("wakili");
    if !process::is_executable(&path) {
        bail!(
            "no wakili binary at {}; build it into the same target directory \
             (`cargo build --release -p wakili`) or pass --wakili-bin PATH",
            path.display()
        );
    }
    Ok(path)
}

/// Starts `kind` on a free port with its log in `dir`.
pub fn start(
    kind: ServerKind,
    args: &TurnArgs,
    secret: &str,
    dir: &Path,
) -> anyhow::Result<Server> {
    let port = process::free_port()?;
    let log = dir.join(format!("{}.log", kind.name()));
    let mut command = match (kind, &args.embedded_cmd) {
        (ServerKind::Embedded, Some(template)) => template_command(template, port, secret, dir)?,
        (ServerKind::Embedded, None) => wakili_command(&wakili_binary(args)?, port, dir),
        (ServerKind::Coturn, _) => coturn_command(port, secret, dir, relay_threads(args)),
    };
    if kind == ServerKind::Embedded {
        // Nothing from the caller's configuration leaks in: no ./wakili.toml, no WAKILI_* vars.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WAKILI_") {
                command.env_remove(&key);
            }
        }
        command
            .current_dir(dir)
            .env("WAKILI_TURN__SECRET", secret)
            .env("WAKILI_TURN__ALLOW_LOOPBACK_PEERS", "true")
            .env(
                "WAKILI_TURN__MAX_ALLOCATIONS_PER_USER",
                MAX_ALLOCATIONS_PER_USER.to_string(),
            )
            .env("RUST_LOG", "warn");
    }
    let command_line = describe(&command).replace(secret, "SECRET");
    let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    // To a file, not a pipe: a full pipe would stall the server.
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let process = ChildGuard::spawn(kind.name(), &mut command)?;
    Ok(Server {
        kind,
        port,
        command_line,
        log,
        process,
    })
}

/// Relay threads given to coturn.
pub fn relay_threads(args: &TurnArgs) -> usize {
    args.coturn_relay_threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, usize::from))
}

fn wakili_command(binary: &Path, port: u16, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(["--turn-listen", &format!("127.0.0.1:{port}")])
        .args(["--sfu-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"));
    command
}

fn coturn_command(port: u16, secret: &str, dir: &Path, relay_threads: usize) -> Command {
    let mut command = Command::new("turnserver");
    command
        // Flags only: no /etc/turnserver.conf.
        .arg("-n")
        .args([
            "--listening-ip=127.0.0.1".to_owned(),
            format!("--listening-port={port}"),
            "--relay-ip=127.0.0.1".to_owned(),
            "--use-auth-secret".to_owned(),
            format!("--static-auth-secret={secret}"),
            format!("--realm={REALM}"),
            format!("--user-quota={MAX_ALLOCATIONS_PER_USER}"),
            format!("--relay-threads={relay_threads}"),
            "--allow-loopback-peers".to_owned(),
            "--no-multicast-peers".to_owned(),
            "--no-cli".to_owned(),
            "--no-tls".to_owned(),
            "--no-dtls".to_owned(),
            "--log-file=stdout".to_owned(),
            "--simple-log".to_owned(),
        ])
        // Keep coturn out of /var/run and /var/lib/turn.
        .arg(format!(
            "--pidfile={}",
            dir.join("turnserver.pid").display()
        ))
        .arg(format!("--userdb={}", dir.join("turndb").display()));
    command
}

fn template_command(
    template: &str,
    port: u16,
    secret: &str,
    dir: &Path,
) -> anyhow::Result<Command> {
    let data_dir = dir.join("data");
    let mut words = template.split_whitespace().map(|word| {
        word.replace("{port}", &port.to_string())
            .replace("{secret}", secret)
            .replace("{data_dir}", &data_dir.to_string_lossy())
            .replace("{dir}", &dir.to_string_lossy())
    });
    let program = words.next().context("--embedded-cmd: empty")?;
    let mut command = Command::new(program);
    command.args(words);
    Ok(command)
}

/// `VAR=value … program args…`, the variables the benchmark sets first.
pub fn describe(command: &Command) -> String {
    let env = command.get_envs().filter_map(|(key, value)| {
        value.map(|v| format!("{}={}", key.to_string_lossy(), v.to_string_lossy()))
    });
    let words = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned());
    env.chain(words).collect::<Vec<_>>().join(" ")
}

/// Waits until the server answers a STUN binding on UDP (and accepts TCP connections when the
/// load uses TCP), failing when it exits, after 30 s, or at `deadline`.
pub fn wait_ready(
    server: &mut Server,
    transport: Transport,
    deadline: Instant,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let limit = deadline.min(started + STARTUP_LIMIT);
    let address = SocketAddr::from(([127, 0, 0, 1], server.port));
    loop {
        if let Some(status) = server.process.exited()? {
            bail!(
                "{} exited during start-up ({status}); its last output:{}",
                server.kind.name(),
                process::log_tail(&server.log, 15)
            );
        }
        let udp = stun_binding_answered(address)?;
        let tcp = transport == Transport::Udp
            || TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok();
        if udp && tcp {
            return Ok(());
        }
        if Instant::now() >= limit {
            let hint = match server.kind {
                ServerKind::Embedded => {
                    " (does this wakili build run the embedded TURN server on --turn-listen?)"
                }
                ServerKind::Coturn => "",
            };
            bail!(
                "{} did not answer {} on {address} within {:.0} s{hint}; its last output:{}",
                server.kind.name(),
                if udp {
                    "TCP connections"
                } else {
                    "a STUN binding request over UDP"
                },
                started.elapsed().as_secs_f64(),
                process::log_tail(&server.log, 15)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Sends one STUN Binding request (RFC 8489) and tells whether a success response with the same
/// transaction id came back within 300 ms.
fn stun_binding_answered(server: SocketAddr) -> anyhow::Result<bool> {
    const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
    const BINDING_SUCCESS: [u8; 2] = [0x01, 0x01];
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

    let socket = UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP socket on 127.0.0.1")?;
    socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let transaction: [u8; 12] = {
        let bytes = nanos.to_le_bytes();
        let mut id = [0u8; 12];
        id.copy_from_slice(&bytes[..12]);
        id
    };
    let mut request = Vec::with_capacity(20);
    request.extend_from_slice(&BINDING_REQUEST);
    request.extend_from_slice(&0u16.to_be_bytes()); // no attributes
    request.extend_from_slice(&MAGIC_COOKIE);
    request.extend_from_slice(&transaction);
    if socket.send_to(&request, server).is_err() {
        return Ok(false);
    }
    let mut response = [0u8; 1500];
    Ok(match socket.recv_from(&mut response) {
        Ok((n, _)) => n >= 20 && response[..2] == BINDING_SUCCESS && response[8..20] == transaction,
        // Timeout, or ICMP port unreachable reported as refused.
        Err(_) => false,
    })
}
