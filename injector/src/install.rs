//! `injector install DIR`: place a copy of the running binary where the application's
//! container will find it. Init containers have no shell to `cp` with.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The installed file's name.
pub const BINARY_NAME: &str = hush_contract::exit::SHIM_FILE;

/// A failed installation.
#[derive(Debug, thiserror::Error)]
#[error("installing into {}: {step}: {source}", dir.display())]
pub struct InstallError {
    /// The target directory.
    pub dir: PathBuf,
    /// Which step failed.
    pub step: &'static str,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// Copies the running executable to `dir/injector` with mode 0555, atomically (a reader
/// never sees a partial file), and returns its path.
pub fn install(dir: &Path) -> Result<PathBuf, InstallError> {
    let fail = |step| move |source| InstallError { dir: dir.to_owned(), step, source };
    let target = dir.join(BINARY_NAME);
    let partial = dir.join(format!(".{BINARY_NAME}.partial"));
    // /proc/self/exe is the running image even if its path was replaced meanwhile.
    std::fs::copy("/proc/self/exe", &partial).map_err(fail("copying /proc/self/exe"))?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o555)).map_err(fail("setting mode 0555"))?;
    std::fs::rename(&partial, &target).map_err(fail("renaming into place"))?;
    Ok(target)
}
