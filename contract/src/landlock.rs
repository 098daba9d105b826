//! The Landlock policy language of the shim (`HUSH_LANDLOCK`, annotation
//! `hush.dev/landlock`): parsed here so that the webhook rejects a bad policy at admission
//! and the shim reads the same grammar. Pure.
//!
//! ```text
//! policy = [ item *( ";" item ) ]
//! item   = "ro:" paths        ; read and execute below each path
//!        / "rw:" paths        ; everything below each path
//!        / "deny:" paths      ; nothing below each path, even inside an ro/rw path
//!        / "connect:" ports   ; TCP connect only to these ports (Landlock ABI 4+)
//!        / "bind:" ports      ; TCP bind only to these ports (Landlock ABI 4+)
//!        / "sa-token"         ; let the application read the service-account token
//!        / "required"         ; fail unless the kernel enforces every rule
//!        / "off"              ; no Landlock at all
//! paths  = abs-path *( "," abs-path )
//! ports  = port *( "," port )  ; 1-65535
//! ```
//!
//! Without `ro:`/`rw:` items the file system stays open except the denied subtrees. The
//! directory of the service-account token is denied unless `sa-token` is given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A parsed policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Read-and-execute roots.
    pub read_only: Vec<PathBuf>,
    /// Read-write roots.
    pub read_write: Vec<PathBuf>,
    /// Denied subtrees.
    pub deny: Vec<PathBuf>,
    /// Allowed TCP connect ports; `None`: unrestricted.
    pub connect: Option<BTreeSet<u16>>,
    /// Allowed TCP bind ports; `None`: unrestricted.
    pub bind: Option<BTreeSet<u16>>,
    /// The application may read the service-account token.
    pub sa_token: bool,
    /// Every rule must be enforced, or the shim fails.
    pub required: bool,
    /// Landlock is not used.
    pub off: bool,
}

/// What is wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An item the grammar does not know.
    #[error("unknown item `{0}` (expected ro:, rw:, deny:, connect:, bind:, sa-token, required or off)")]
    UnknownItem(String),
    /// A path that is not absolute, or has `.`/`..`.
    #[error("`{0}` is not an absolute path without . or ..")]
    BadPath(String),
    /// A port outside 1-65535.
    #[error("`{0}` is not a port from 1 to 65535")]
    BadPort(String),
    /// `off` together with rules.
    #[error("`off` cannot be combined with other items")]
    OffWithRules,
}

/// Parses a policy.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let mut policy = Policy::default();
    for item in text.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once(':').map(|(k, v)| (k.trim(), v)) {
            Some(("ro", paths)) => policy.read_only.extend(parse_paths(paths)?),
            Some(("rw", paths)) => policy.read_write.extend(parse_paths(paths)?),
            Some(("deny", paths)) => policy.deny.extend(parse_paths(paths)?),
            Some(("connect", ports)) => policy.connect.get_or_insert_default().extend(parse_ports(ports)?),
            Some(("bind", ports)) => policy.bind.get_or_insert_default().extend(parse_ports(ports)?),
            None if item == "sa-token" => policy.sa_token = true,
            None if item == "required" => policy.required = true,
            None if item == "off" => policy.off = true,
            _ => return Err(PolicyError::UnknownItem(item.to_owned())),
        }
    }
    if policy.off && policy != (Policy { off: true, ..Policy::default() }) {
        return Err(PolicyError::OffWithRules);
    }
    Ok(policy)
}

fn parse_paths(list: &str) -> Result<Vec<PathBuf>, PolicyError> {
    list.split(',')
        .map(str::trim)
        .map(|p| {
            let path = Path::new(p);
            let clean = path.is_absolute()
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)));
            if clean { Ok(path.to_path_buf()) } else { Err(PolicyError::BadPath(p.to_owned())) }
        })
        .collect()
}

fn parse_ports(list: &str) -> Result<Vec<u16>, PolicyError> {
    list.split(',')
        .map(str::trim)
        .map(|p| p.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(|| PolicyError::BadPort(p.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_language() {
        let policy =
            parse(" ro:/usr,/etc ; rw:/tmp; deny:/etc/shadow; connect:5432,443; bind:8080; required ").unwrap();
        assert_eq!(policy.read_only, [PathBuf::from("/usr"), "/etc".into()]);
        assert_eq!(policy.read_write, [PathBuf::from("/tmp")]);
        assert_eq!(policy.deny, [PathBuf::from("/etc/shadow")]);
        assert_eq!(policy.connect, Some(BTreeSet::from([443, 5432])));
        assert_eq!(policy.bind, Some(BTreeSet::from([8080])));
        assert!(policy.required && !policy.sa_token && !policy.off);
        assert_eq!(parse("").unwrap(), Policy::default());
        assert!(parse("off").unwrap().off);
    }

    #[test]
    fn rejects_what_it_does_not_know_naming_it() {
        assert_eq!(parse("ro:usr"), Err(PolicyError::BadPath("usr".into())));
        assert_eq!(parse("rw:/tmp/../etc"), Err(PolicyError::BadPath("/tmp/../etc".into())));
        assert_eq!(parse("connect:0"), Err(PolicyError::BadPort("0".into())));
        assert_eq!(parse("connect:70000"), Err(PolicyError::BadPort("70000".into())));
        assert_eq!(parse("write:/tmp"), Err(PolicyError::UnknownItem("write:/tmp".into())));
        assert_eq!(parse("off;ro:/usr"), Err(PolicyError::OffWithRules));
    }
}
