//! A throwaway qemu VM for kernel-level tests (aya's `xtask integration-test vm` model): a Debian
//! kernel, an initramfs written here (newc cpio, no external tool) holding a static
//! busybox, the test binaries and a `/init` script, and one `init: success|failure` line on the
//! serial console that decides the outcome.

use crate::{cmd, tools};
use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Debian packages the VM needs on the host. The kernel itself is downloaded, not installed.
pub const APT: &[&str] = &["qemu-system-x86", "busybox-static"];

/// The Debian 12 generic kernel (`linux-image-amd64`): the one Debian kernel with x32 built
/// (`CONFIG_X86_X32_ABI=y`, off unless booted with `syscall.x32=y`), and otherwise the cloud
/// kernel's BPF, BTF, LSM and ftrace configuration. Its drivers are modules, which the VM loads
/// none of: the serial console, devtmpfs, tmpfs, bpffs, tracefs and cgroup2 are built in.
pub const GENERIC_KERNEL: &str = "linux-image-amd64";

/// Resolves the Debian metapackage `meta` to its versioned image (pinned by name, e.g.
/// `linux-image-6.1.0-57-amd64`; apt checks the download against the signed archive), downloads
/// that .deb into `dir` and extracts only `vmlinuz` from it, cached by that name: later runs
/// download nothing until Debian moves the metapackage on. Returns its path.
pub fn debian_kernel(dir: &Path, meta: &str) -> Result<PathBuf> {
    let deps = cmd::stdout(Command::new("apt-cache").args(["depends", meta]))?;
    let image = deps
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .with_context(|| format!("apt-cache depends {meta} names no linux-image package"))?
        .to_owned();
    let version = image.trim_start_matches("linux-image-");
    let vmlinuz = dir.join(format!("vmlinuz-{version}"));
    if vmlinuz.exists() {
        return Ok(vmlinuz);
    }
    std::fs::create_dir_all(dir)?;
    cmd::run(Command::new("apt-get").current_dir(dir).args(["download", "-qq", &image]))?;
    let deb = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{image}_"))))
        .with_context(|| format!("apt-get download {image} left no .deb in {}", dir.display()))?;
    // Only boot/vmlinuz-*: the generic image's modules unpack to hundreds of MB the VM never loads.
    let x = dir.join("extract");
    std::fs::create_dir_all(&x)?;
    let member = format!("./boot/vmlinuz-{version}");
    cmd::run(Command::new("sh").arg("-c").arg(r#"dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "$3""#).args([
        OsStr::new("sh"),
        deb.as_os_str(),
        x.as_os_str(),
        OsStr::new(&member),
    ]))?;
    std::fs::rename(x.join(&member), &vmlinuz).with_context(|| format!("no {member} in {}", deb.display()))?;
    std::fs::remove_dir_all(&x)?;
    std::fs::remove_file(&deb)?;
    Ok(vmlinuz)
}

/// A newc cpio archive being built in memory.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let name_z = format!("{name}\0");
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name_z.len(),
            0
        );
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(name_z.as_bytes());
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, data);
    }

    pub fn copy(&mut self, name: &str, from: &Path) -> Result<()> {
        let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        self.file(name, 0o755, &data);
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        while !self.buf.len().is_multiple_of(512) {
            self.buf.push(0);
        }
        self.buf
    }
}

/// Boots `kernel` with `initrd` and `append`, streams the serial console to stderr (prefixed),
/// and returns whether `/init` printed `init: success`. Any other end (failure line, panic,
/// timeout, qemu exiting without a verdict) is an error naming it.
/// Boots the VM and returns its console lines once `/init` reports `init: success`.
pub fn boot(kernel: &Path, initrd: &Path, append: &str, timeout: Duration, tag: &str) -> Result<Vec<String>> {
    // TCG only: nested KVM on hosts of this kind fails with "KVM internal error ... emulation
    // failure" in the guest kernel, and these tests need no speed.
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "1024M",
        "-smp",
        "2",
        "-no-reboot",
        "-nographic",
        "-nodefaults",
        "-serial",
        "stdio",
    ])
    .arg("-kernel")
    .arg(kernel)
    .arg("-initrd")
    .arg(initrd)
    .args(["-append", append])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    eprintln!("xtask: $ {}", cmd::describe(&qemu));
    let started = Instant::now();
    let mut child = qemu.spawn().context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut console = Vec::new();
    let verdict = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_owned();
                eprintln!("{tag}| {line}");
                if line.starts_with("init: success") {
                    break Ok(());
                }
                console.push(line.clone());
                if line.starts_with("init: failure") {
                    break Err(anyhow::anyhow!("{tag}: the VM reported `{line}`"));
                }
                if line.contains("Kernel panic")
                    || line.contains("soft lockup")
                    || line.contains("rcu_sched self-detected")
                {
                    break Err(anyhow::anyhow!("{tag}: kernel trouble: {line}"));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Err(anyhow::anyhow!("{tag}: no verdict within {}s", timeout.as_secs()));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(anyhow::anyhow!("{tag}: qemu exited without an `init: success|failure` line"));
            }
        }
    };
    // Ctrl-A x quits qemu's stdio mux; then make sure.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&[0x01, b'x']);
    }
    let until = Instant::now() + Duration::from_secs(5);
    while child.try_wait()?.is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait()?.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("xtask: {tag}: {} s from boot to verdict", started.elapsed().as_secs());
    verdict.map(|()| console)
}

/// Writes `bytes` to a file under the xtask's target dir and returns the path.
pub fn write_initrd(name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let dir = tools::target_dir().join("xtask").join("vm");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
