//! Compiles the C BPF programs (`bpf/guard.bpf.c`) with clang into `$OUT_DIR/guard.bpf.o`, which
//! the guard embeds, and runs `bpf/layout.c` on the host to print `guard.h`'s layouts as Rust
//! constants (`$OUT_DIR/layout.rs`) that `src/maps.rs` asserts against.
//!
//! clang (and libbpf-dev for `<bpf/bpf_helpers.h>`) are installed by `cargo xtask test`. So that
//! `cargo check`/`clippy` of the workspace also work on a machine without them, a missing clang is
//! a warning and an empty object (the guard then refuses to start, naming the fix) unless
//! `HUSH_REQUIRE_BPF=1`, which the xtask sets, makes it an error.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIX: &str = "install clang and libbpf-dev (`apt-get install clang libbpf-dev`; `cargo xtask test` does it)";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bpf = manifest.join("bpf");
    for f in ["guard.bpf.c", "guard.h", "vmlinux_min.h", "layout.c"] {
        println!("cargo::rerun-if-changed=bpf/{f}");
    }
    println!("cargo::rerun-if-env-changed=HUSH_REQUIRE_BPF");
    println!("cargo::rerun-if-env-changed=CLANG");
    println!("cargo::rustc-check-cfg=cfg(hush_bpf)");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let required = env::var("HUSH_REQUIRE_BPF").is_ok_and(|v| v == "1");
    match build(&clang, &bpf, &out) {
        Ok(()) => println!("cargo::rustc-cfg=hush_bpf"),
        Err(e) if !required => {
            println!("cargo::warning=BPF programs not built ({e}); the guard will refuse to start: {FIX}");
            std::fs::write(out.join("guard.bpf.o"), b"").expect("writing the empty object");
            std::fs::write(out.join("layout.rs"), "").expect("writing the empty layout");
        }
        Err(e) => panic!("building the BPF programs failed: {e}\nfix: {FIX}"),
    }
}

fn build(clang: &str, bpf: &Path, out: &Path) -> Result<(), String> {
    let obj = out.join("guard.bpf.o");
    run(Command::new(clang)
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Werror", "-c"])
        .arg("-I")
        .arg(bpf)
        .arg(bpf.join("guard.bpf.c"))
        .arg("-o")
        .arg(&obj))?;
    let layout_bin = out.join("layout");
    run(Command::new(clang).args(["-Wall", "-Werror"]).arg(bpf.join("layout.c")).arg("-o").arg(&layout_bin))?;
    let printed = Command::new(&layout_bin).output().map_err(|e| format!("running {}: {e}", layout_bin.display()))?;
    if !printed.status.success() {
        return Err(format!("{} failed: {}", layout_bin.display(), printed.status));
    }
    // `pub const SIZEOF_hush_proc: usize = 40;` -> `pub const SIZEOF_HUSH_PROC: usize = 40;`
    let text = String::from_utf8(printed.stdout).map_err(|e| e.to_string())?;
    let upper: String = text
        .lines()
        .map(|l| match l.split_once(':') {
            Some((name, rest)) => format!("{}:{rest}\n", name.to_uppercase().replacen("PUB CONST", "pub const", 1)),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(out.join("layout.rs"), upper).map_err(|e| e.to_string())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let line = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("could not run `{line}`: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{line}` failed: {status}")) }
}
