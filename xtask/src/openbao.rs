//! A real OpenBao dev server on a free loopback port, stopped when dropped.

use crate::tools;
use anyhow::{Context, Result, bail};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct DevServer {
    child: Child,
    pub addr: String,
    pub root_token: String,
    pub bao: PathBuf,
}

impl DevServer {
    /// Starts `bao server -dev` and waits until it answers.
    pub fn start(log_name: &str) -> Result<Self> {
        let bao = tools::bao()?;
        let port = free_port()?;
        let addr = format!("http://127.0.0.1:{port}");
        let root_token = format!("hush-root-{port}");
        let log_path = tools::target_dir().join("xtask").join(format!("{log_name}.log"));
        std::fs::create_dir_all(log_path.parent().expect("log path has a parent"))?;
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(&bao)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root_token}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bao.display()))?;
        let mut server = DevServer { child, addr, root_token, bao };
        server.wait_ready(port).with_context(|| format!("OpenBao did not start; see {}", log_path.display()))?;
        crate::progress::note(&format!("OpenBao dev server at {} (log: {})", server.addr, log_path.display()));
        Ok(server)
    }

    fn wait_ready(&mut self, port: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("bao exited early: {status}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && self.cli().arg("status").output()?.status.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("not ready after 30 s")
    }

    /// A `bao` command aimed at this server with the root token.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(&self.bao);
        cmd.env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.root_token)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.root_token);
        cmd
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
