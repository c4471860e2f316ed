//! Janus, the reference: installing it when missing, a minimal configuration in a temporary
//! directory (HTTP transport and the VideoRoom plugin only), and the child process.

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

use crate::{
    process::{self, ChildGuard},
    servers,
};

/// The plugin and the transport the benchmark loads.
const VIDEOROOM: &str = "libjanus_videoroom.so";
const HTTP: &str = "libjanus_http.so";
/// Where distributions put Janus's plugins and transports (`<dir>/plugins`, `<dir>/transports`).
const LIB_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu/janus",
    "/usr/lib/aarch64-linux-gnu/janus",
    "/usr/lib/janus",
    "/usr/local/lib/janus",
    "/opt/janus/lib/janus",
];
/// How long Janus may take to answer `GET /janus/info`.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// An installed Janus.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The `janus` binary.
    pub binary: PathBuf,
    /// The directory holding `plugins/` and `transports/`.
    pub lib_dir: PathBuf,
    /// `janus --version`, first line.
    pub version: String,
}

/// Finds Janus with its VideoRoom plugin and HTTP transport; when missing and `install` is
/// set, installs the Debian package first (`apt-get install -y --no-install-recommends
/// janus`, after `apt-get update` if that fails).
pub fn ensure_installed(install: bool) -> anyhow::Result<Installation> {
    if let Some(found) = find() {
        return Ok(found);
    }
    if !install {
        bail!(
            "Janus (with {VIDEOROOM} and {HTTP}) is not installed and --no-install was given; \
             install it with `apt-get install -y --no-install-recommends janus`"
        );
    }
    if process::find_in_path("apt-get").is_none() {
        bail!(
            "Janus is not installed and there is no apt-get to install it with; install Janus 1.x"
        );
    }
    eprintln!("[janus] not installed: apt-get install -y --no-install-recommends janus");
    if !apt_install()? {
        eprintln!("[janus] install failed; apt-get update, then again");
        apt(&["update"])?;
        if !apt_install()? {
            bail!("apt-get install janus failed (are you root?)");
        }
    }
    find().context("Janus was installed but its VideoRoom plugin or HTTP transport is missing")
}

fn apt_install() -> anyhow::Result<bool> {
    apt(&["install", "-y", "--no-install-recommends", "janus"])
}

fn apt(args: &[&str]) -> anyhow::Result<bool> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("cannot run apt-get")?;
    Ok(status.success())
}

fn find() -> Option<Installation> {
    let binary = process::find_in_path("janus")?;
    let lib_dir = LIB_DIRS.iter().map(PathBuf::from).find(|dir| {
        dir.join("plugins").join(VIDEOROOM).is_file() && dir.join("transports").join(HTTP).is_file()
    })?;
    // "Janus version: 1102 (1.1.2)" → "Janus 1.1.2".
    let line = crate::report::version_of(&binary.to_string_lossy(), "--version");
    let version = match line.split_once('(').and_then(|(_, v)| v.strip_suffix(')')) {
        Some(v) => format!("Janus {v}"),
        None => line,
    };
    Some(Installation {
        binary,
        lib_dir,
        version,
    })
}

/// The settings written into `janus.jcfg` and its siblings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP API port on 127.0.0.1.
    pub http_port: u16,
    /// The only address ICE gathers candidates on.
    pub media_ip: Ipv4Addr,
    /// Log level 0-7.
    pub debug_level: u8,
}

/// Writes the configuration under `dir` (`conf/`, `plugins/` and `transports/` holding only
/// links to the VideoRoom plugin and the HTTP transport, empty `events/` and `loggers/`).
/// Returns the configuration folder.
pub fn write_config(
    dir: &Path,
    janus: &Installation,
    settings: &Settings,
) -> anyhow::Result<PathBuf> {
    let conf = dir.join("conf");
    for sub in ["conf", "plugins", "transports", "events", "loggers"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let link = |kind: &str, file: &str| -> anyhow::Result<()> {
        let target = janus.lib_dir.join(kind).join(file);
        std::os::unix::fs::symlink(&target, dir.join(kind).join(file))
            .with_context(|| format!("cannot link {}", target.display()))
    };
    link("plugins", VIDEOROOM)?;
    link("transports", HTTP)?;
    let folder = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
    let main = format!(
        r#"general: {{
	configs_folder = "{conf}"
	plugins_folder = "{plugins}"
	transports_folder = "{transports}"
	events_folder = "{events}"
	loggers_folder = "{loggers}"
	debug_level = {level}
	debug_timestamps = false
	debug_colors = false
	server_name = "wakili-bench"
	session_timeout = 120
}}
certificates: {{
}}
media: {{
}}
nat: {{
	nice_debug = false
	ice_lite = false
	ice_tcp = false
	full_trickle = false
	ice_enforce_list = "{ip}"
	ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
events: {{
	broadcast = false
}}
"#,
        conf = conf.display(),
        plugins = folder("plugins"),
        transports = folder("transports"),
        events = folder("events"),
        loggers = folder("loggers"),
        level = settings.debug_level,
        ip = settings.media_ip,
    );
    fs::write(conf.join("janus.jcfg"), main)?;
    let http = format!(
        r#"general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
cors: {{
}}
certificates: {{
}}
"#,
        port = settings.http_port
    );
    fs::write(conf.join("janus.transport.http.jcfg"), http)?;
    // No static rooms: the benchmark creates its own.
    fs::write(conf.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    Ok(conf)
}

/// A running Janus.
pub struct JanusProcess {
    /// The process; killed when dropped.
    pub process: ChildGuard,
    /// Its command line.
    pub command_line: String,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    /// `http://127.0.0.1:PORT/janus`.
    pub url: String,
}

/// Starts Janus with the configuration in `conf` and waits until its HTTP API answers.
pub async fn start(
    janus: &Installation,
    conf: &Path,
    settings: &Settings,
) -> anyhow::Result<JanusProcess> {
    let mut command = Command::new(&janus.binary);
    command
        .arg(format!("--configs-folder={}", conf.display()))
        .arg(format!("--config={}", conf.join("janus.jcfg").display()))
        .arg("--disable-colors");
    let command_line = servers::describe(&command);
    let dir = conf.parent().unwrap_or(conf);
    let log = dir.join("janus.log");
    let out = fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out));
    let mut process = ChildGuard::spawn("janus", &mut command)?;
    let url = format!("http://127.0.0.1:{}/janus", settings.http_port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(response) = http.get(format!("{url}/info")).send().await
            && response.status().is_success()
        {
            break;
        }
        process
            .ensure_running()
            .with_context(|| format!("janus did not start:{}", process::log_tail(&log, 20)))?;
        if started.elapsed() > STARTUP_LIMIT {
            bail!(
                "janus did not answer GET {url}/info within {STARTUP_LIMIT:?}:{}",
                process::log_tail(&log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(JanusProcess {
        process,
        command_line,
        log,
        url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_loads_only_the_videoroom_and_http() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        let janus = Installation {
            binary: "/usr/bin/janus".into(),
            lib_dir: lib.clone(),
            version: "test".into(),
        };
        let settings = Settings {
            http_port: 18088,
            media_ip: Ipv4Addr::new(192, 0, 2, 2),
            debug_level: 3,
        };
        let out = dir.path().join("run");
        let conf = write_config(&out, &janus, &settings).unwrap();
        let main = fs::read_to_string(conf.join("janus.jcfg")).unwrap();
        assert!(main.contains(r#"ice_enforce_list = "192.0.2.2""#));
        assert!(main.contains("debug_level = 3"));
        assert!(!main.contains("stun_server"));
        assert!(!main.contains("nat_1_1_mapping"));
        let http = fs::read_to_string(conf.join("janus.transport.http.jcfg")).unwrap();
        assert!(http.contains("port = 18088") && http.contains(r#"ip = "127.0.0.1""#));
        let plugins: Vec<_> = fs::read_dir(out.join("plugins")).unwrap().collect();
        assert_eq!(plugins.len(), 1);
        let link = fs::read_link(out.join("plugins").join(VIDEOROOM)).unwrap();
        assert_eq!(link, lib.join("plugins").join(VIDEOROOM));
        assert_eq!(fs::read_dir(out.join("transports")).unwrap().count(), 1);
    }
}
