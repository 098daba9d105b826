//! `cargo xtask images`: Hush's three images (and the test cluster's pause and app images)
//! built without a Docker daemon: a tar layer per image part, an OCI image config and an OCI
//! manifest, pushed with the registry HTTP API to the cluster's loopback registry.
//!
//! [`HUSH_IMAGES`] describes Hush's images once; a unit test below checks that
//! `docker/Dockerfile` builds the same ones (base, file, mode, user, entrypoint, port). The
//! Dockerfile's runtime base, distroless `cc-debian12`, cannot be pulled here (no traffic
//! leaves the machine); its stand-in is made of this Debian 12 host's own files: the shared
//! libraries the binaries link (glibc, libgcc), `/etc/passwd` with root and nonroot (65532),
//! CA certificates and `/tmp`.

use crate::{cluster, cmd, tools};
use anyhow::{Context, Result, ensure};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What an image is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// Nothing at all.
    Scratch,
    /// distroless `cc-debian12` (glibc, libgcc, CA certificates, passwd); `nonroot` is its
    /// `:nonroot` tag.
    DistrolessCc { nonroot: bool },
}

/// One of Hush's images, as `docker/Dockerfile` builds it.
#[derive(Debug)]
pub struct ImageSpec {
    /// Repository name in the registry.
    pub name: &'static str,
    /// The Dockerfile's target stage.
    pub stage: &'static str,
    pub base: Base,
    /// The binary's path in the image (mode 0555).
    pub path: &'static str,
    pub user: Option<&'static str>,
    pub entrypoint: &'static [&'static str],
    pub expose: Option<u16>,
}

pub const HUSH_IMAGES: &[ImageSpec] = &[
    ImageSpec {
        name: "hush-injector",
        stage: "shim",
        base: Base::Scratch,
        path: "/injector",
        user: Some("65532:65532"),
        entrypoint: &["/injector"],
        expose: None,
    },
    ImageSpec {
        name: "hush-guard",
        stage: "guard",
        base: Base::DistrolessCc { nonroot: false },
        path: "/usr/local/bin/guard",
        user: None,
        entrypoint: &["/usr/local/bin/guard"],
        expose: None,
    },
    ImageSpec {
        name: "hush-webhook",
        stage: "webhook",
        base: Base::DistrolessCc { nonroot: true },
        path: "/usr/local/bin/webhook",
        user: Some("65532:65532"),
        entrypoint: &["/usr/local/bin/webhook"],
        expose: Some(8443),
    },
];

/// The tag pushed; charts pin the digest as well.
pub const TAG: &str = "local";
/// The example app's image (`examples/deployment.yaml` names `registry.example/shop/app:1.4`,
/// which the test cluster's containerd mirrors to the loopback registry): a static busybox.
pub const APP_REPOSITORY: &str = "shop/app";
pub const APP_TAG: &str = "1.4";

/// A pushed image: `repository@digest`.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub repository: String,
    pub digest: String,
}

impl Pushed {
    pub fn reference(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// Every image the test cluster needs, by name: hush-injector, hush-webhook, hush-guard,
/// pause, and the example app.
pub struct Images {
    pub injector: Pushed,
    pub webhook: Pushed,
    pub guard: Pushed,
    pub pause: Pushed,
    pub app: Pushed,
}

pub fn run() -> Result<()> {
    let images = build_and_push(cluster::REGISTRY)?;
    for p in [&images.injector, &images.webhook, &images.guard, &images.pause, &images.app] {
        println!("{}", p.reference());
    }
    Ok(())
}

/// Builds the binaries, then every image, and pushes them to `registry` (plain HTTP).
pub fn build_and_push(registry: &str) -> Result<Images> {
    tools::ensure_apt(&["curl", "gcc", "libc6-dev", "busybox-static", "binutils", "tar"])?;
    let shim = tools::build_static_shim()?;
    let guard_bins = crate::guard::build()?;
    let guard = guard_bins.guard.clone();
    cmd::run(Command::new(env!("CARGO")).current_dir(tools::root()).args([
        "build",
        "--locked",
        "--package",
        "webhook",
        "--bin",
        "webhook",
    ]))?;
    let webhook = tools::target_dir().join("debug").join("webhook");
    let work = tools::scratch("images")?;
    ensure!(
        std::net::TcpStream::connect(registry).is_ok(),
        "no registry at {registry}: start the cluster first (`cargo xtask cluster up`)"
    );
    let binary = |spec: &ImageSpec| -> &Path {
        match spec.stage {
            "shim" => &shim,
            "guard" => &guard,
            _ => &webhook,
        }
    };
    let mut pushed = Vec::new();
    for spec in HUSH_IMAGES {
        let dir = work.join(spec.name);
        let mut layers = Vec::new();
        if let Base::DistrolessCc { .. } = spec.base {
            layers.push(distroless_cc_layer(&dir.join("base"), &[&webhook, &guard])?);
        }
        let bin = dir.join("bin");
        stage_file(&bin, spec.path, binary(spec), true)?;
        if spec.stage == "webhook" {
            // The debug build the suite already made, without its 100+ MB of debug info.
            let staged = bin.join(spec.path.trim_start_matches('/'));
            std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            cmd::run(Command::new("objcopy").arg("--strip-debug").arg(&staged))?;
            std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o555))?;
        }
        layers.push(tar_layer(&bin, &dir.join("bin.tar"))?);
        let config = image_config(spec.user, spec.entrypoint, spec.expose);
        pushed.push(push(registry, spec.name, &dir, &layers, config)?);
    }
    let [injector, guard_image, webhook_image] = <[Pushed; 3]>::try_from(pushed).expect("three images");

    let pause_dir = work.join("pause");
    let pause_bin = pause_dir.join("pause");
    std::fs::create_dir_all(&pause_dir)?;
    cmd::run(
        Command::new("gcc")
            .args(["-Os", "-Wall", "-Werror", "-static", "-o"])
            .arg(&pause_bin)
            .arg(tools::root().join("docker").join("pause.c")),
    )?;
    let root = pause_dir.join("root");
    stage_file(&root, "/pause", &pause_bin, true)?;
    let layer = tar_layer(&root, &pause_dir.join("layer.tar"))?;
    let (repo, tag) = cluster::PAUSE_IMAGE
        .strip_prefix(&format!("{registry}/"))
        .and_then(|r| r.split_once(':'))
        .context("PAUSE_IMAGE names the loopback registry")?;
    let pause =
        push_tagged(registry, repo, tag, &pause_dir, &[layer], image_config(Some("65535:65535"), &["/pause"], None))?;

    // The guard's attack suite rides along as `/bin/guard-suite`: `kubectl exec` runs its
    // attacks (io_uring, /proc/PID/mem) inside the app's container.
    let app = push_app(registry, APP_REPOSITORY, APP_TAG, &work.join("app"), None, Some(&guard_bins.suite))?;

    Ok(Images { injector, webhook: webhook_image, guard: guard_image, pause, app })
}

/// The example's app image (a static busybox, and `attacker` as `/bin/guard-suite`) pushed as
/// `repo:tag`; `auth` is a curl config
/// file holding `user = "name:password"` for a registry that requires it (kept off argv).
pub fn push_app(
    registry: &str,
    repo: &str,
    tag: &str,
    dir: &Path,
    auth: Option<&Path>,
    attacker: Option<&Path>,
) -> Result<Pushed> {
    let root = dir.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    stage_file(&root, "/bin/busybox", Path::new("/bin/busybox"), true)?;
    for applet in ["sh", "sleep", "cat", "echo", "env", "head", "ls", "id", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    if let Some(suite) = attacker {
        stage_file(&root, "/bin/guard-suite", suite, true)?;
    }
    let layer = tar_layer(&root, &dir.join("layer.tar"))?;
    push_tagged_auth(registry, repo, tag, dir, &[layer], image_config(None, &["/bin/sh"], None), auth)
}

/// Copies `from` to `root/path` (mode 0555 for executables, else 0444).
fn stage_file(root: &Path, path: &str, from: &Path, executable: bool) -> Result<()> {
    let to = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().expect("a path in the image has a parent"))?;
    std::fs::copy(from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    let mode = if executable { 0o555 } else { 0o444 };
    std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    Ok(())
}

/// The distroless `cc` stand-in: what the dynamic binaries load, passwd/group, CA
/// certificates, /tmp.
fn distroless_cc_layer(root: &Path, binaries: &[&Path]) -> Result<PathBuf> {
    let mut libs = Vec::new();
    for bin in binaries {
        let out = Command::new("ldd").arg(bin).output()?;
        // A static binary: "not a dynamic executable" (exit 1).
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split("=>").nth(1) {
                Some(rhs) => rhs.split_whitespace().next(),
                None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                libs.push(p.to_owned());
            }
        }
    }
    libs.sort();
    libs.dedup();
    ensure!(libs.iter().any(|l| l.contains("libc.so")), "ldd found no libc in the webhook");
    for lib in &libs {
        // Executable: the kernel opens the ELF interpreter (ld-linux) like an executable.
        stage_file(root, lib, Path::new(lib), true)?;
    }
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
         nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )?;
    std::fs::write(etc.join("group"), "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")?;
    std::fs::write(etc.join("nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files dns\n")?;
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if certs.exists() {
        stage_file(root, "/etc/ssl/certs/ca-certificates.crt", certs, false)?;
    }
    for dir in ["tmp", "home/nonroot", "root"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::set_permissions(root.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777))?;
    tar_layer(root, &root.with_extension("tar"))
}

/// A reproducible tar of `root`'s contents (owner root, mtime 0, sorted).
fn tar_layer(root: &Path, out: &Path) -> Result<PathBuf> {
    let mut entries: Vec<String> =
        std::fs::read_dir(root)?.map(|e| Ok(e?.file_name().to_string_lossy().into_owned())).collect::<Result<_>>()?;
    entries.sort();
    cmd::run(
        Command::new("tar")
            .arg("-C")
            .arg(root)
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--format=gnu", "-cf"])
            .arg(out)
            .args(&entries),
    )?;
    Ok(out.to_path_buf())
}

fn image_config(user: Option<&str>, entrypoint: &[&str], expose: Option<u16>) -> serde_json::Value {
    let mut config = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Entrypoint": entrypoint,
    });
    if let Some(user) = user {
        config["User"] = json!(user);
    }
    if let Some(port) = expose {
        config["ExposedPorts"] = json!({ format!("{port}/tcp"): {} });
    }
    config
}

fn sha256(path: &Path) -> Result<String> {
    let out = cmd::stdout(Command::new("sha256sum").arg(path))?;
    Ok(format!("sha256:{}", out.split_whitespace().next().context("sha256sum printed nothing")?))
}

fn push(registry: &str, name: &str, dir: &Path, layers: &[PathBuf], config: serde_json::Value) -> Result<Pushed> {
    push_tagged(registry, name, TAG, dir, layers, config)
}

/// Pushes the layers (uncompressed OCI tar layers), the config and the manifest; returns the
/// manifest's digest.
fn push_tagged(
    registry: &str,
    repo: &str,
    tag: &str,
    dir: &Path,
    layers: &[PathBuf],
    config: serde_json::Value,
) -> Result<Pushed> {
    push_tagged_auth(registry, repo, tag, dir, layers, config, None)
}

/// curl, with the credentials of `auth` (a curl config file) when given.
fn curl(auth: Option<&Path>) -> Command {
    let mut c = Command::new("curl");
    if let Some(file) = auth {
        c.arg("-K").arg(file);
    }
    c
}

fn push_tagged_auth(
    registry: &str,
    repo: &str,
    tag: &str,
    dir: &Path,
    layers: &[PathBuf],
    config: serde_json::Value,
    auth: Option<&Path>,
) -> Result<Pushed> {
    std::fs::create_dir_all(dir)?;
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for layer in layers {
        let digest = sha256(layer)?;
        upload_blob(registry, repo, layer, &digest, auth)?;
        diff_ids.push(digest.clone());
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": std::fs::metadata(layer)?.len(),
        }));
    }
    let image = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&image)?)?;
    let config_digest = sha256(&config_path)?;
    upload_blob(registry, repo, &config_path, &config_digest, auth)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": std::fs::metadata(&config_path)?.len(),
        },
        "layers": descriptors,
    });
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest)?)?;
    let digest = sha256(&manifest_path)?;
    cmd::output(
        curl(auth)
            .args([
                "-fsS",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.oci.image.manifest.v1+json",
                "--data-binary",
            ])
            .arg(format!("@{}", manifest_path.display()))
            .arg(format!("http://{registry}/v2/{repo}/manifests/{tag}")),
    )?;
    crate::progress::note(&format!("pushed {registry}/{repo}:{tag} ({digest})"));
    Ok(Pushed { repository: format!("{registry}/{repo}"), digest })
}

fn upload_blob(registry: &str, repo: &str, file: &Path, digest: &str, auth: Option<&Path>) -> Result<()> {
    let base = format!("http://{registry}/v2/{repo}/blobs");
    let exists = curl(auth).args(["-fsS", "-o", "/dev/null", "-I"]).arg(format!("{base}/{digest}")).output()?;
    if exists.status.success() {
        return Ok(());
    }
    let headers = cmd::stdout(
        curl(auth).args(["-fsS", "-o", "/dev/null", "-D", "-", "-X", "POST"]).arg(format!("{base}/uploads/")),
    )?;
    let location = headers
        .lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.trim().to_owned())
        })
        .context("the registry's upload answer has no Location")?;
    let location = if location.starts_with('/') { format!("http://{registry}{location}") } else { location };
    let sep = if location.contains('?') { '&' } else { '?' };
    cmd::output(
        curl(auth)
            .args(["-fsS", "-X", "PUT", "-H", "Content-Type: application/octet-stream", "-T"])
            .arg(file)
            .arg(format!("{location}{sep}digest={digest}")),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Base, HUSH_IMAGES};

    /// What one final stage of docker/Dockerfile builds.
    #[derive(Debug, Default)]
    struct Stage {
        from: String,
        copies: Vec<(String, String)>,
        user: Option<String>,
        entrypoint: Vec<String>,
        expose: Option<u16>,
    }

    fn stages(dockerfile: &str) -> Vec<(String, Stage)> {
        let mut out: Vec<(String, Stage)> = Vec::new();
        for line in dockerfile.lines().map(str::trim) {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "FROM" => {
                    let parts: Vec<&str> = rest.split_whitespace().collect();
                    let name = if parts.len() == 3 && parts[1].eq_ignore_ascii_case("AS") { parts[2] } else { "" };
                    out.push((name.to_owned(), Stage { from: parts[0].to_owned(), ..Stage::default() }));
                }
                "COPY" => {
                    let stage = &mut out.last_mut().expect("COPY after FROM").1;
                    let mode =
                        rest.split_whitespace().find_map(|w| w.strip_prefix("--chmod=")).unwrap_or("").to_owned();
                    let dest = rest.split_whitespace().last().unwrap_or("").to_owned();
                    stage.copies.push((dest, mode));
                }
                "USER" => out.last_mut().expect("USER after FROM").1.user = Some(rest.to_owned()),
                "EXPOSE" => out.last_mut().expect("EXPOSE after FROM").1.expose = rest.parse().ok(),
                "ENTRYPOINT" => {
                    out.last_mut().expect("ENTRYPOINT after FROM").1.entrypoint =
                        serde_json::from_str(rest).expect("ENTRYPOINT in exec form")
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn images_and_dockerfile_agree_on_base_files_users_and_entrypoints() {
        let dockerfile = include_str!("../../docker/Dockerfile");
        let stages = stages(dockerfile);
        for spec in HUSH_IMAGES {
            let (_, stage) = stages
                .iter()
                .find(|(name, _)| name == spec.stage)
                .unwrap_or_else(|| panic!("docker/Dockerfile has no stage {}", spec.stage));
            let from = match spec.base {
                Base::Scratch => "scratch",
                Base::DistrolessCc { nonroot: false } => "${RUNTIME_IMAGE}",
                Base::DistrolessCc { nonroot: true } => "${RUNTIME_IMAGE}:nonroot",
            };
            assert_eq!(stage.from, from, "{}: base", spec.name);
            assert!(dockerfile.contains("ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12"), "the runtime base changed");
            assert_eq!(stage.copies, vec![(spec.path.to_owned(), "0555".to_owned())], "{}: files", spec.name);
            assert_eq!(stage.user.as_deref(), spec.user, "{}: user", spec.name);
            assert_eq!(stage.entrypoint, spec.entrypoint, "{}: entrypoint", spec.name);
            assert_eq!(stage.expose, spec.expose, "{}: exposed port", spec.name);
        }
        // Every final (non-build) stage of the Dockerfile is one of the images built here.
        let finals: Vec<&str> =
            stages.iter().filter(|(_, s)| !s.entrypoint.is_empty()).map(|(name, _)| name.as_str()).collect();
        let mut specs: Vec<&str> = HUSH_IMAGES.iter().map(|s| s.stage).collect();
        let mut finals_sorted = finals.clone();
        finals_sorted.sort_unstable();
        specs.sort_unstable();
        assert_eq!(finals_sorted, specs);
    }

    #[test]
    fn the_parser_sees_a_changed_user() {
        // The check above is only as good as the parser: a Dockerfile whose webhook runs as
        // root must not agree.
        let changed = include_str!("../../docker/Dockerfile").replace("USER 65532:65532\nEXPOSE", "USER 0:0\nEXPOSE");
        let stages = stages(&changed);
        let webhook = &stages.iter().find(|(n, _)| n == "webhook").expect("webhook stage").1;
        assert_eq!(webhook.user.as_deref(), Some("0:0"));
    }
}
