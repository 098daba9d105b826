//! Just enough of the kubelet to start the mutated Pod on this machine: the init container,
//! then the app container with its env as the kubelet builds it (`$(VAR)` expansion), each as
//! its user. Paths inside the Pod are mapped to the host: `/hush/…` is the emptyDir, and the
//! projected service-account token is passed by path. No container runtime runs here, so there
//! are no namespaces, no read-only root and no seccomp profile: the demo is about the data.

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub struct Node<'a> {
    /// The shim binary, standing in for `/injector` in the injector image.
    pub shim: &'a Path,
    /// The directory standing in for the Pod's in-memory emptyDir.
    pub volume: &'a Path,
    /// The projected service-account token.
    pub token_file: &'a Path,
}

/// `setpriv` arguments that run a command as `uid` (and the same gid), with no groups.
pub fn as_user(uid: u32) -> [String; 3] {
    [format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".to_owned()]
}

/// The JSON Patch in an AdmissionResponse (base64 of the JSON text).
pub fn decode_patch(response: &Value) -> Result<json_patch::Patch> {
    let text = response["patch"].as_str().context("the response carries no patch")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).context("the patch is not base64")?;
    serde_json::from_slice(&bytes).context("the patch is not a JSON Patch")
}

/// Runs the init containers, then starts the first app container.
pub fn start_pod(pod: &Value, node: &Node) -> Result<RunningApp> {
    std::fs::create_dir_all(node.volume)?;
    // An emptyDir is writable by the Pod's users.
    std::fs::set_permissions(node.volume, std::fs::Permissions::from_mode(0o777))?;
    for init in pod["spec"]["initContainers"].as_array().context("the Pod has no init containers")? {
        let argv = command_line(init, node)?;
        let uid = run_as(pod, init);
        let out = Command::new("setpriv").args(as_user(uid)).args(&argv).env_clear().output()?;
        ensure!(out.status.success(), "init container {}: {}", init["name"], String::from_utf8_lossy(&out.stderr));
        super::say(&format!("init container {} ran as uid {uid}: {}", init["name"], argv.join(" ")));
    }
    let container = &pod["spec"]["containers"][0];
    let argv = command_line(container, node)?;
    let uid = run_as(pod, container);
    let child = Command::new("setpriv")
        .args(as_user(uid))
        .args(&argv)
        .env_clear()
        .envs(kubelet_env(container))
        .env("PATH", "/usr/bin:/bin")
        // In the Pod the kubelet mounts the token at the shim's default path.
        .env("HUSH_SA_TOKEN_PATH", node.token_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the app container")?;
    super::say(&format!("app container {} started as uid {uid}: {}", container["name"], shorten(&argv)));
    RunningApp::new(child)
}

fn shorten(argv: &[String]) -> String {
    argv.iter()
        .map(|a| if a.len() > 40 { format!("'{}…'", &a[..a.floor_char_boundary(37)]) } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The container's `runAsUser`, else the Pod's.
fn run_as(pod: &Value, container: &Value) -> u32 {
    container["securityContext"]["runAsUser"]
        .as_u64()
        .or_else(|| pod["spec"]["securityContext"]["runAsUser"].as_u64())
        .and_then(|u| u32::try_from(u).ok())
        .unwrap_or(0)
}

/// `command` + `args`, expanded with the container's env, with Pod paths mapped to the host.
fn command_line(container: &Value, node: &Node) -> Result<Vec<String>> {
    let env = kubelet_env(container);
    let words = container["command"].as_array().context("the container has no command")?.iter();
    let args = container["args"].as_array().map(|a| a.iter()).unwrap_or_default();
    words
        .chain(args)
        .map(|w| w.as_str().map(|w| host_path(&expand(w, &env), node)).context("a command word is not a string"))
        .collect()
}

fn host_path(word: &str, node: &Node) -> String {
    if word == "/injector" {
        return node.shim.to_string_lossy().into_owned();
    }
    if word == "/hush" {
        return node.volume.to_string_lossy().into_owned();
    }
    match word.strip_prefix("/hush/") {
        Some(file) => node.volume.join(file).to_string_lossy().into_owned(),
        None => word.to_owned(),
    }
}

/// The env the kubelet hands the runtime: literal values, each expanded with the variables
/// defined before it.
fn kubelet_env(container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let value = expand(var["value"].as_str().unwrap_or_default(), &env);
        env.insert(var["name"].as_str().unwrap_or_default().to_owned(), value);
    }
    env
}

/// The kubelet's `$(VAR)` expansion: one copy, shared with the webhook's tests.
#[path = "../../../webhook/tests/support/kubelet.rs"]
mod expansion;
use expansion::expand;

/// The app's process: its stdout lines on a channel, its stderr (the shim's log, then the
/// app's) collected as it comes (the app keeps stderr open, so it is never read to the end).
pub struct RunningApp {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl RunningApp {
    fn new(mut child: Child) -> Result<RunningApp> {
        let stdout = child.stdout.take().context("the app's stdout")?;
        let stderr = child.stderr.take().context("the app's stderr")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        Ok(RunningApp { child, lines, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn first_line(&mut self, patience: Duration) -> Result<String> {
        match self.lines.recv_timeout(patience) {
            Ok(line) => Ok(line),
            Err(_) => anyhow::bail!("the app printed nothing; the shim's log:\n{}", self.log()),
        }
    }

    /// What the container wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
