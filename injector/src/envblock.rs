//! The application's environment as one block of locked, wiped-on-drop memory.
//!
//! `std::process::Command` would copy every `NAME=VALUE` into its own `CString`s that are
//! never wiped. Instead the whole environment is written once, into a [`LockedPages`]
//! mapping, and `envp` points into it. If exec fails, dropping the block wipes it.

use crate::sys::LockedPages;
use std::ffi::c_char;

/// A byte that cannot be in an environment string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the value contains a NUL byte, which an environment variable cannot hold")]
pub struct NulByte;

/// Measures the entries before the block is allocated, so that it is allocated once.
#[derive(Debug, Default)]
pub struct Measure {
    bytes: usize,
    entries: usize,
}

impl Measure {
    /// Adds an entry made of `parts` (`NAME`, `=`, value pieces); the NUL is counted here.
    pub fn add<'a>(&mut self, parts: impl IntoIterator<Item = &'a [u8]>) {
        self.bytes += parts.into_iter().map(<[u8]>::len).sum::<usize>() + 1;
        self.entries += 1;
    }
}

/// The environment block being written.
pub struct EnvBlock {
    pages: LockedPages,
    used: usize,
    starts: Vec<usize>,
}

impl EnvBlock {
    /// Allocates room for what `measure` counted. `for_child`: the block must survive a
    /// `fork` (daemon mode), so it is not wiped in the child.
    pub fn new(measure: &Measure, for_child: bool) -> std::io::Result<Self> {
        Ok(EnvBlock {
            pages: LockedPages::new(measure.bytes, !for_child)?,
            used: 0,
            starts: Vec::with_capacity(measure.entries),
        })
    }

    /// Appends one `NAME=VALUE` entry from its pieces.
    ///
    /// # Panics
    /// When the entries exceed what was measured: a bug in the caller.
    pub fn push<'a>(&mut self, parts: impl IntoIterator<Item = &'a [u8]>) -> Result<(), NulByte> {
        let start = self.used;
        let buffer = self.pages.as_mut_slice();
        let mut at = start;
        for part in parts {
            if part.contains(&0) {
                buffer[start..at].fill(0);
                return Err(NulByte);
            }
            buffer[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        buffer[at] = 0;
        self.used = at + 1;
        self.starts.push(start);
        Ok(())
    }

    /// Whether the memory is locked in RAM (never swapped).
    pub fn is_locked(&self) -> bool {
        self.pages.is_locked()
    }

    /// The null-terminated `envp` array; valid while `self` lives.
    pub fn envp(&self) -> Vec<*const c_char> {
        self.starts.iter().map(|&s| self.pages.ptr_at(s)).chain(std::iter::once(std::ptr::null())).collect()
    }

    /// The entries written so far (for tests).
    #[cfg(test)]
    pub fn entries(&self) -> Vec<&[u8]> {
        let bytes = &self.pages.as_slice()[..self.used];
        bytes.split(|&b| b == 0).take(self.starts.len()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_entries_back_to_back() {
        let entries: [&[&[u8]]; 3] = [&[b"A", b"=", b"1"], &[b"B", b"=", b"x", b"", b"yz"], &[b"E", b"="]];
        let mut measure = Measure::default();
        entries.iter().for_each(|e| measure.add(e.iter().copied()));
        let mut block = EnvBlock::new(&measure, false).unwrap();
        for e in entries {
            block.push(e.iter().copied()).unwrap();
        }
        assert_eq!(block.entries(), [&b"A=1"[..], b"B=xyz", b"E="]);
        let envp = block.envp();
        assert_eq!(envp.len(), 4);
        assert!(envp[3].is_null());
    }

    #[test]
    fn a_nul_byte_is_refused_and_wiped() {
        let mut measure = Measure::default();
        measure.add([&b"A=ok"[..]]);
        measure.add([&b"B="[..], b"se\0cret"]);
        let mut block = EnvBlock::new(&measure, false).unwrap();
        block.push([&b"A=ok"[..]]).unwrap();
        assert_eq!(block.push([&b"B="[..], b"se\0cret"]), Err(NulByte));
        assert_eq!(block.entries(), [&b"A=ok"[..]]);
        assert!(block.pages.as_slice()[5..].iter().all(|&b| b == 0));
    }
}
