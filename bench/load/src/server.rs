//! Runs a worker for one phase: on workerd directly, from a configuration written from its
//! wrangler.toml (`workerd.rs`), or under `wrangler dev` the way tests/e2e does. Either way with a
//! fresh state directory, a free loopback port, vars from the command line, in its own process
//! group (killed whole with `kill -9 -- -PGID`, since wrangler leaves workerd behind otherwise).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `wrangler dev`; dropping it kills the process group.
#[derive(Debug)]
pub(crate) struct Server {
    child: Option<Child>,
    /// Durable Object storage kept in memory (`--storage tmpfs`), removed when the server stops.
    shm_state: Option<PathBuf>,
    /// The process group whose CPU is counted, for a server started elsewhere.
    group: Option<u32>,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
}

/// Where `--storage tmpfs` puts each server's Durable Object storage.
const SHM: &str = "/dev/shm";

/// Set once from `--storage`: `true` keeps Durable Object storage in memory (tmpfs) instead of on
/// disk.
pub(crate) static STATE_IN_MEMORY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether `--storage tmpfs` can be honoured here.
pub(crate) fn tmpfs_available() -> bool {
    Path::new(SHM).is_dir()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Listening IPv4 TCP sockets as (inode, port), from /proc/net/tcp.
fn listening_sockets() -> Vec<(String, u16)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address(1) is HEX_IP:HEX_PORT, st(3) 0A is LISTEN, inode(9).
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            Some((fields.get(9)?.to_string(), port))
        })
        .collect()
}

/// One blocking GET; the start of the answer (head and body), or `None` if nothing answered.
fn probe_body(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut answer);
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// One blocking GET; the status, or `None` if nothing answered.
fn probe(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A private copy of a worker's configuration and build for one run: the config without `[build]`
/// (wrangler would rebuild and reload whenever someone edits the sources mid-run), without
/// `[assets]` (the live page is not under load, and assets put a router worker in front of the one
/// measured) and with `main` pointing at a copy of the build directory (so a rebuild elsewhere
/// cannot swap it either). Returns the config's path, the build copy and `main` relative to it.
fn private_config(root: &Path, config: &str, dir: &Path) -> (PathBuf, PathBuf, String) {
    let source = root.join(config);
    let text = std::fs::read_to_string(&source).expect("wrangler config");
    let base = source.parent().expect("config directory");
    let mut out = String::new();
    let mut in_build = false;
    let mut copied = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_build = trimmed == "[build]" || trimmed == "[assets]";
        }
        if in_build {
            continue;
        }
        if let Some(main) = trimmed.strip_prefix("main = ") {
            // main = "<build dir>/worker/shim.mjs": copy <build dir> whole, keep the layout.
            let main = Path::new(main.trim().trim_matches('"'));
            let build = main
                .parent()
                .and_then(Path::parent)
                .expect("main is <build>/worker/shim.mjs");
            let copy = dir.join("build");
            copy_dir(&base.join(build), &copy);
            let relative = main.strip_prefix(build).expect("inside build");
            let shim = copy.join(relative);
            out.push_str(&format!("main = {:?}\n", shim.display().to_string()));
            copied = Some((copy, relative.to_string_lossy().into_owned()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = dir.join("wrangler.toml");
    std::fs::write(&path, out).expect("write private wrangler.toml");
    let (copy, main) = copied.expect("the config names main");
    (path, copy, main)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create build copy");
    for entry in std::fs::read_dir(from).expect("read build dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy build file");
        }
    }
}

/// The workerd that wrangler runs (the npm package `@cloudflare/workerd-linux-64`, installed with
/// wrangler); `HERALD_WORKERD` overrides it.
fn workerd_binary(root: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("HERALD_WORKERD") {
        return PathBuf::from(path);
    }
    let nested =
        root.join("node_modules/wrangler/node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    if nested.exists() {
        return nested;
    }
    root.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd")
}

/// PATH with the repository's `node_modules/.bin` (Node 22 from npm, package `node`) first.
fn node_path(root: &Path) -> std::ffi::OsString {
    let system = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(root.join("node_modules/.bin"));
    std::env::join_paths(dirs.chain(std::env::split_paths(&system))).expect("PATH")
}

/// What runs the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// `wrangler dev`: workerd started by wrangler with its inspector on and wrangler attached to
    /// it, plus a dev proxy (a second workerd and wrangler's Node process) in front.
    Wrangler,
    /// The same workerd binary started directly on a configuration written from the worker's
    /// wrangler.toml (see `workerd.rs`), with its inspector as `inspector` says, and with a
    /// pass-through worker in front of it when `entry`.
    Workerd { inspector: Inspector, entry: bool },
    /// A server started by hand, listening on `port`; the CPU of process group `group` is counted.
    /// Nothing is started or stopped (each phase still uses hubs of its own).
    External { port: u16, group: u32 },
}

/// The inspector of a workerd started directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inspector {
    /// No `--inspector-addr`: what production runs.
    Off,
    /// The port is open, nothing attaches.
    Open,
    /// A session is attached with the Runtime domain enabled, as wrangler dev's inspector proxy
    /// keeps one (see `inspector.rs`).
    Attached,
}

impl Runtime {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Runtime::Wrangler => "wrangler dev (inspector attached)",
            Runtime::External { .. } => "a server started by hand",
            Runtime::Workerd {
                inspector: Inspector::Off,
                entry: false,
            } => "workerd, no inspector",
            Runtime::Workerd {
                inspector: Inspector::Off,
                entry: true,
            } => "workerd, no inspector, a pass-through entry worker in front",
            Runtime::Workerd {
                inspector: Inspector::Open,
                ..
            } => "workerd, inspector port open, none attached",
            Runtime::Workerd {
                inspector: Inspector::Attached,
                ..
            } => "workerd, inspector attached (Runtime.enable)",
        }
    }
}

impl Server {
    /// Starts the worker of `<config>` on `runtime` and waits until `probe_path` answers with any
    /// status.
    pub(crate) fn start(
        root: &Path,
        name: &str,
        config: &str,
        vars: &[(&str, &str)],
        probe_path: &str,
        runtime: Runtime,
    ) -> Server {
        use std::os::unix::process::CommandExt;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let dir = root
            .join(".e2e")
            .join(format!("load-{name}-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("persist dir");
        if let Runtime::External { port, group } = runtime {
            let mut server = Server {
                child: None,
                shm_state: None,
                group: Some(group),
                port,
                dir,
            };
            server.wait_ready(name, probe_path);
            return server;
        }
        let port = free_port();
        let (config, build, main) = private_config(root, config, &dir);
        let log = |file: &str| Stdio::from(std::fs::File::create(dir.join(file)).expect("log"));
        if let Runtime::Workerd { inspector, entry } = runtime {
            let manifest = crate::workerd::Manifest::parse(
                &std::fs::read_to_string(&config).expect("private config"),
            );
            let state = match STATE_IN_MEMORY.get() {
                Some(true) => Path::new(SHM).join(dir.file_name().unwrap_or_default()),
                _ => dir.join("state"),
            };
            std::fs::create_dir_all(&state).expect("state dir");
            let text =
                crate::workerd::config(&manifest, &dir, &build, &main, &state, port, vars, entry);
            let capnp = dir.join("workerd.capnp");
            std::fs::write(&capnp, text).expect("write workerd.capnp");
            let mut command = Command::new(workerd_binary(root));
            command.current_dir(&dir).arg("serve").arg(&capnp);
            let inspector_port = (inspector != Inspector::Off).then(free_port);
            if let Some(port) = inspector_port {
                command.arg(format!("--inspector-addr=127.0.0.1:{port}"));
            }
            command
                .stdin(Stdio::null())
                .stdout(log("workerd.out"))
                .stderr(log("workerd.err"))
                .process_group(0);
            let child = command.spawn().expect("start workerd");
            let mut server = Server {
                child: Some(child),
                shm_state: state.starts_with(SHM).then_some(state),
                group: None,
                port,
                dir,
            };
            server.wait_ready(name, probe_path);
            if let (Inspector::Attached, Some(port)) = (inspector, inspector_port) {
                crate::inspector::attach(port);
            }
            return server;
        }
        let mut command = Command::new(root.join("node_modules/.bin/wrangler"));
        command
            .current_dir(root)
            .args(["dev", "-c"])
            .arg(&config)
            .args(["--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--inspector-port", "0", "--persist-to"])
            .arg(dir.join("state"))
            // wrangler's `#!/usr/bin/env node` must find the Node 22 from npm, not the system's
            // Node 20.
            .env("PATH", node_path(root))
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("HERALD_SKIP_BUILD", "1")
            .env("WRANGLER_LOG_PATH", dir.join("logs"))
            .stdin(Stdio::null())
            .stdout(log("wrangler.out"))
            .stderr(log("wrangler.err"))
            .process_group(0);
        for (key, value) in vars {
            command.arg("--var").arg(format!("{key}:{value}"));
        }
        let child = command.spawn().expect("start wrangler dev");
        let mut server = Server {
            child: Some(child),
            shm_state: None,
            group: None,
            port,
            dir,
        };
        server.wait_ready(name, probe_path);
        server
    }

    fn wait_ready(&mut self, name: &str, probe_path: &str) {
        let server = self;
        let port = server.port;
        let deadline = Instant::now() + Duration::from_secs(120);
        while probe(port, probe_path).is_none() {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the server ({name}) exited with {status}; see {}",
                    server.dir.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server ({name}) not ready in 120 s; see {}",
                server.dir.display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The user worker's own socket: `wrangler dev` puts a dev proxy (a proxy worker plus its Node
    /// process) in front of the workerd that runs the worker; production has no such hop. This is
    /// the socket of the workerd started with `--socket-addr=entry=127.0.0.1:0` whose answer to
    /// `probe_path` contains `expect`.
    pub(crate) fn direct_port(&self, probe_path: &str, expect: &str) -> Option<u16> {
        let pgid = self.child.as_ref().map(Child::id)?;
        let listening = listening_sockets();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let dir = entry.path();
            let in_group = std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(group, _)| group == pgid);
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if !in_group || !cmdline.contains("--socket-addr=entry=127.0.0.1:0") {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(link) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let link = link.to_string_lossy();
                let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|rest| rest.strip_suffix(']'))
                else {
                    continue;
                };
                if let Some(port) = listening.iter().find(|(i, _)| i == inode).map(|(_, p)| *p) {
                    if probe_body(port, probe_path).is_some_and(|body| body.contains(expect)) {
                        return Some(port);
                    }
                }
            }
        }
        None
    }

    /// CPU seconds used so far by the processes of the server's group, by role: `workerd` (the one
    /// running the worker), `workerd-proxy` (wrangler dev's dev proxy), `node` (wrangler), and any
    /// other by its command name. Sorted by role.
    pub(crate) fn cpu_s(&self) -> Vec<(String, f64)> {
        let Some(pgid) = self.child.as_ref().map(Child::id).or(self.group) else {
            return Vec::new();
        };
        let mut parts: std::collections::BTreeMap<String, u64> = Default::default();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        for entry in entries.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((group, used)) = parse_stat(&stat) else {
                continue;
            };
            if group != pgid {
                continue;
            }
            let name = stat
                .split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .map_or("?", |(name, _)| name);
            let role = if name == "workerd" {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                // wrangler dev runs the worker on a workerd bound to `entry=127.0.0.1:0`; its
                // other workerd (on wrangler's port) is the dev proxy.
                if cmdline.contains("--socket-addr=entry=")
                    && !cmdline.contains("entry=127.0.0.1:0")
                {
                    "workerd-proxy".to_owned()
                } else {
                    "workerd".to_owned()
                }
            } else {
                name.to_owned()
            };
            *parts.entry(role).or_default() += used;
        }
        parts
            .into_iter()
            .map(|(role, ticks)| (role, ticks as f64 / clock_ticks_per_s()))
            .collect()
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        if let Some(state) = self.shm_state.take() {
            let _ = std::fs::remove_dir_all(state);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The process group and utime+stime ticks from a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
    let group = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((group, utime + stime))
}

fn clock_ticks_per_s() -> f64 {
    // USER_HZ is 100 on every Linux this runs on; reading it needs libc, not worth a dependency.
    100.0
}

/// CPU seconds used so far by this process (the load generator).
pub(crate) fn own_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .map(|(_, ticks)| ticks as f64 / clock_ticks_per_s())
        .unwrap_or(0.0)
}
