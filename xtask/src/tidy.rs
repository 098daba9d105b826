//! `cargo xtask tidy`: the repository's own rules, checked instead of only stated
//! (rust-analyzer's `tidy.rs` is the model). Run by `cargo xtask test`.
//!
//! - The modules ARCHITECTURE.md says "do no I/O" import no `std::fs`, `std::net`,
//!   `std::process` or `tokio::net`, and no module of their crate that is not pure.
//! - `unsafe` code appears only in `sys` modules (`sys.rs` or `sys/`).
//! - The shim's exit codes: the table in `contract/src/exit.rs` (which `--help` prints) and
//!   README's table agree, and `--help` is built from that table.
//! - Every `vault.security.banzaicloud.io/*` alias the docs name is spelled in the code.
//! - Every pointer from the docs and comments to a file of this repository names a file
//!   that exists.
//!
//! Plain text scanning, no parser: the rules are about spellings, and a false alarm is
//! fixed by writing the doc or the code more plainly.

use crate::tools;
use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's top-level directories: a doc path starting with one of these points
/// into this repository.
const TOP_DIRS: &[&str] =
    &["contract", "injector", "injector-ebpf", "guard-suite", "webhook", "xtask", "charts", "docker", "examples"];

/// The crates whose sources are scanned.
const CRATES: &[&str] = &["contract", "injector", "injector-ebpf", "guard-suite", "webhook", "xtask"];

/// Spellings a pure module may not contain.
const IO: &[&str] = &["std::fs", "std::net", "std::process", "tokio::net", "std::os::unix::net"];

const ALIAS_PREFIX: &str = "vault.security.banzaicloud.io/";

/// Findings already reported to their owners (`/work/coord/tidy-findings.md`, issue 14) and
/// being fixed while this was written: printed as `known`, not failing the run. Each is the
/// start of a finding without its line number; an entry that no longer matches anything is
/// itself a finding, so the list only shrinks.
const KNOWN: &[&str] = &[];

pub fn run() -> Result<()> {
    let root = tools::root();
    let (known, findings) = triage(check(&root)?, KNOWN);
    for finding in &known {
        println!("tidy: known (reported to its owner): {finding}");
    }
    if findings.is_empty() {
        println!("tidy: ok ({} known)", known.len());
        return Ok(());
    }
    for finding in &findings {
        eprintln!("tidy: {finding}");
    }
    bail!("tidy: {} finding(s)", findings.len())
}

/// Splits findings into the known ones and the rest; a known entry matching none is a finding.
fn triage(findings: Vec<String>, known: &[&str]) -> (Vec<String>, Vec<String>) {
    let without_line = |f: &str| -> String {
        // `path:line: text` → `path: text`
        let mut parts = f.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(path), Some(line), Some(rest)) if line.chars().all(|c| c.is_ascii_digit()) => {
                format!("{path}:{rest}")
            }
            _ => f.to_owned(),
        }
    };
    let (old, mut new): (Vec<String>, Vec<String>) =
        findings.into_iter().partition(|f| known.iter().any(|k| without_line(f).starts_with(k)));
    for k in known {
        if !old.iter().any(|f| without_line(f).starts_with(k)) {
            new.push(format!("fixed, so remove it from tidy.rs's KNOWN: {k}"));
        }
    }
    (old, new)
}

/// Every rule over the tree at `root`; each finding names the file and what is wrong.
fn check(root: &Path) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md"))?;
    for (krate, modules) in pure_modules(&architecture) {
        findings.extend(check_pure(root, &krate, &modules)?);
    }
    findings.extend(check_unsafe(root)?);
    findings.extend(check_exit_codes(root)?);
    findings.extend(check_aliases(root)?);
    findings.extend(check_pointers(root)?);
    Ok(findings)
}

// === Pure modules ===

/// Which modules ARCHITECTURE.md calls pure, per crate directory: the backticked names
/// before "do no I/O" / "does no I/O" in a sentence of the crate's section; none before it
/// means the whole crate (`None`).
fn pure_modules(architecture: &str) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let mut out: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut krate: Option<String> = None;
    for block in blocks(architecture) {
        if let Some(heading) = block.strip_prefix("### ") {
            krate = backticked(heading).first().map(|s| s.trim_end_matches('/').to_owned());
            continue;
        }
        let Some(krate) = &krate else { continue };
        for sentence in block.split(". ") {
            let Some(at) = sentence.find(" do no I/O").or_else(|| sentence.find(" does no I/O")) else { continue };
            let names = backticked(&sentence[..at]);
            let entry = out.entry(krate.clone()).or_insert_with(|| Some(BTreeSet::new()));
            match (names.is_empty(), entry.as_mut()) {
                (true, _) => *entry = None,
                (false, Some(set)) => set.extend(names.into_iter().map(str::to_owned)),
                (false, None) => {}
            }
        }
    }
    out
}

/// Paragraphs and list items as single lines.
fn blocks(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let starts_item = line.starts_with("- ") || line.starts_with("#");
        if line.trim().is_empty() || starts_item {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            if line.trim().is_empty() {
                continue;
            }
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line.trim());
        if line.starts_with('#') {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The `backticked` spans of `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The Rust files of a module: `src/<m>.rs` and everything under `src/<m>/`.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    files.extend(rust_files(&src.join(module)));
    files
}

/// The modules a crate root declares (`mod x;` / `pub mod x;`).
fn crate_modules(src: &Path) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for root in ["lib.rs", "main.rs"] {
        let Ok(text) = std::fs::read_to_string(src.join(root)) else { continue };
        for line in text.lines() {
            let line = line.trim();
            let rest = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod "));
            if let Some(name) = rest.and_then(|r| r.strip_suffix(';')) {
                modules.insert(name.trim().to_owned());
            }
        }
    }
    modules
}

/// The code of a file without its `#[cfg(test)]` tail (tests may touch the file system)
/// and without comment lines, with line numbers.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

fn check_pure(root: &Path, krate: &str, modules: &Option<BTreeSet<String>>) -> Result<Vec<String>> {
    let src = root.join(krate).join("src");
    let mut findings = Vec::new();
    let declared = crate_modules(&src);
    let files: Vec<(String, PathBuf)> = match modules {
        None => rust_files(&src).into_iter().map(|f| (String::from("*"), f)).collect(),
        Some(modules) => {
            let mut files = Vec::new();
            for module in modules {
                let found = module_files(&src, module);
                if found.is_empty() {
                    findings.push(format!(
                        "ARCHITECTURE.md calls `{module}` in {krate}/ pure, but {krate}/src has no such module"
                    ));
                }
                files.extend(found.into_iter().map(|f| (module.clone(), f)));
            }
            files
        }
    };
    for (module, file) in files {
        let text = std::fs::read_to_string(&file)?;
        let shown = relative(root, &file);
        for (number, line) in code_lines(&text) {
            for io in IO {
                if line.contains(io) {
                    findings.push(format!("{shown}:{number}: `{io}` in a module ARCHITECTURE.md calls pure"));
                }
            }
            if let Some(set) = modules {
                for used in crate_paths(line) {
                    if used != module && declared.contains(used) && !set.contains(used) {
                        findings.push(format!(
                            "{shown}:{number}: pure `{module}` uses `crate::{used}`, which ARCHITECTURE.md does not call pure"
                        ));
                    }
                }
            }
        }
    }
    Ok(findings)
}

/// The modules a line names as `crate::x`.
fn crate_paths(line: &str) -> Vec<&str> {
    line.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &line[at + "crate::".len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| !name.is_empty())
        .collect()
}

// === unsafe ===

/// Whether a line holds `unsafe` code (a block, fn, impl, trait or extern), not the word in
/// an attribute or a lint name.
fn has_unsafe(line: &str) -> bool {
    line.match_indices("unsafe").any(|(at, _)| {
        let before = line[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"') {
            return false;
        }
        let after = line[at + "unsafe".len()..].trim_start();
        ["{", "fn ", "impl", "trait ", "extern "].iter().any(|p| after.starts_with(p))
    })
}

/// The line with the contents of its string literals blanked (escapes ignored: enough to
/// keep `"unsafe {"` in a test from counting).
fn without_strings(line: &str) -> String {
    let mut inside = false;
    line.chars()
        .filter(|&c| {
            if c == '"' {
                inside = !inside;
                return true;
            }
            !inside
        })
        .collect()
}

fn in_sys(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "sys.rs") || path.components().any(|c| c.as_os_str() == "sys")
}

fn check_unsafe(root: &Path) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    for krate in CRATES {
        for file in rust_files(&root.join(krate)) {
            if in_sys(&file) || file.components().any(|c| c.as_os_str() == "target") {
                continue;
            }
            let text = std::fs::read_to_string(&file)?;
            for (i, line) in text.lines().enumerate() {
                if !line.trim_start().starts_with("//") && has_unsafe(&without_strings(line)) {
                    findings.push(format!("{}:{}: `unsafe` outside a `sys` module", relative(root, &file), i + 1));
                }
            }
        }
    }
    Ok(findings)
}

// === Exit codes ===

/// `(code, meaning)` rows of `EXIT_CODES` in `contract/src/exit.rs`.
fn exit_table(source: &str) -> Result<Vec<(u8, String)>> {
    let mut constants = BTreeMap::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else { continue };
        let Some((name, value)) = rest.split_once(": u8 = ") else { continue };
        if let Ok(value) = value.trim_end_matches(';').parse::<u8>() {
            constants.insert(name.to_owned(), value);
        }
    }
    let Some(start) = source.find("pub const EXIT_CODES") else { bail!("no EXIT_CODES table") };
    let table = &source[start..source[start..].find("];").map_or(source.len(), |end| start + end)];
    let mut rows = Vec::new();
    for entry in table.split("ExitCode {").skip(1) {
        let name = entry.split("code:").nth(1).and_then(|r| r.split(',').next()).map(str::trim);
        let meaning = entry.split("meaning: \"").nth(1).and_then(|r| r.split('"').next());
        let (Some(name), Some(meaning)) = (name, meaning) else { bail!("cannot read the entry {entry:?}") };
        let Some(code) = constants.get(name) else { bail!("EXIT_CODES names `{name}`, which is not a u8 constant") };
        rows.push((*code, meaning.to_owned()));
    }
    Ok(rows)
}

/// `| code | meaning |` rows of a Markdown text whose first cell is a number.
fn markdown_exit_rows(markdown: &str) -> Vec<(u8, String)> {
    markdown
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.strip_suffix('|')?.split(" | ").collect();
            match cells.as_slice() {
                [code, meaning] => Some((code.trim().parse().ok()?, meaning.trim().to_owned())),
                _ => None,
            }
        })
        .collect()
}

fn check_exit_codes(root: &Path) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    let source = std::fs::read_to_string(root.join("contract/src/exit.rs"))?;
    let table = exit_table(&source)?;
    let readme = markdown_exit_rows(&std::fs::read_to_string(root.join("README.md"))?);
    if readme != table {
        findings.push(format!(
            "README.md's exit-code table differs from contract/src/exit.rs's EXIT_CODES:\n  README: {readme:?}\n  code:   {table:?}"
        ));
    }
    // `--help` prints the table itself: the shim's clap command takes it as `after_help`.
    let main = std::fs::read_to_string(root.join("injector/src/main.rs"))?;
    let exit = std::fs::read_to_string(root.join("injector/src/exit.rs"))?;
    if !main.contains("after_help = exit_codes_help()") || !exit.contains("code::help_text()") {
        findings.push(
            "injector --help no longer prints hush_contract::exit::help_text() (injector/src/main.rs after_help)"
                .into(),
        );
    }
    Ok(findings)
}

// === Bank-Vaults aliases ===

/// The alias names a Markdown text gives: full `vault.security.banzaicloud.io/<name>`
/// spellings, and the backticked names in a table column headed by the prefix.
fn doc_aliases(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in markdown.match_indices(ALIAS_PREFIX) {
        let rest = &markdown[at + ALIAS_PREFIX.len()..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(rest.len());
        if end > 0 {
            out.insert(rest[..end].to_owned());
        }
    }
    let mut column: Option<usize> = None;
    for line in markdown.lines() {
        let cells: Vec<&str> = line.split('|').collect();
        if !line.trim_start().starts_with('|') {
            column = None;
            continue;
        }
        if let Some(i) = cells.iter().position(|c| c.contains(ALIAS_PREFIX)) {
            column = Some(i);
            continue;
        }
        let Some(cell) = column.and_then(|i| cells.get(i)) else { continue };
        for name in backticked(cell) {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

fn check_aliases(root: &Path) -> Result<Vec<String>> {
    let mut code = String::new();
    for dir in ["contract/src", "webhook/src"] {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file)?;
            for (_, line) in code_lines(&text) {
                code.push_str(line);
                code.push('\n');
            }
        }
    }
    let mut findings = Vec::new();
    for doc in markdown_files(root) {
        for alias in doc_aliases(&std::fs::read_to_string(&doc)?) {
            if !code.contains(&format!("\"{alias}\"")) && !code.contains(&format!("\"{ALIAS_PREFIX}{alias}\"")) {
                findings.push(format!(
                    "{}: names the alias `{ALIAS_PREFIX}{alias}`, which the code (contract/src, webhook/src) does not spell",
                    relative(root, &doc)
                ));
            }
        }
    }
    Ok(findings)
}

// === File pointers ===

/// Paths into this repository that a text names: `dir/…/file.ext` where `dir` is one of
/// [`TOP_DIRS`] and the extension is a source or doc file's.
fn pointers(text: &str) -> Vec<&str> {
    const EXTENSIONS: &[&str] = &[".rs", ".md", ".toml", ".yaml", ".c", ".h", ".py"];
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    let mut out = Vec::new();
    for (start, _) in text.match_indices(|c: char| c.is_ascii_lowercase()) {
        if start > 0 && text[..start].chars().next_back().is_some_and(is_path_char) {
            continue;
        }
        let rest = &text[start..];
        let end = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
        let candidate = rest[..end].trim_end_matches('.');
        let Some((top, _)) = candidate.split_once('/') else { continue };
        if TOP_DIRS.contains(&top) && EXTENSIONS.iter().any(|e| candidate.ends_with(e)) {
            out.push(candidate);
        }
    }
    out
}

fn check_pointers(root: &Path) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    let mut files = markdown_files(root);
    for krate in CRATES {
        files.extend(rust_files(&root.join(krate)));
    }
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let is_rust = file.extension().is_some_and(|e| e == "rs");
        for (i, line) in text.lines().enumerate() {
            // In Rust, only comments point at files; string literals may name paths that
            // tests create.
            if is_rust && !line.trim_start().starts_with("//") {
                continue;
            }
            for pointer in pointers(line) {
                if !root.join(pointer).exists() {
                    findings.push(format!(
                        "{}:{}: points at {pointer}, which does not exist",
                        relative(root, &file),
                        i + 1
                    ));
                }
            }
        }
    }
    Ok(findings)
}

// === Files ===

/// `.rs` files under `dir`, skipping `target/` and fuzz corpora.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, "rs")
}

/// The repository's Markdown files (outside `target/`).
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    files_with(root, "md")
}

fn files_with(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == "corpus" || name == "artifacts" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_modules_are_read_off_the_do_no_io_sentences() {
        let text = "### `contract/`\n\n**Invariant:** `contract` is the only place. It does no I/O and depends on\nnothing but `thiserror`.\n\n### `injector/`\n\n- `config`, `plan` and\n  `secret` do no I/O (apart from allocating).\n- All `unsafe` is in `sys.rs`.\n";
        let pure = pure_modules(text);
        assert_eq!(pure["contract"], None);
        assert_eq!(pure["injector"], Some(["config", "plan", "secret"].map(String::from).into_iter().collect()));
    }

    #[test]
    fn unsafe_code_is_told_from_the_word() {
        assert!(has_unsafe("    unsafe { libc::fork() }"));
        assert!(has_unsafe("pub unsafe fn fork() -> i32 {"));
        assert!(has_unsafe("unsafe impl Send for X {}"));
        assert!(!has_unsafe("#![forbid(unsafe_code)]"));
        assert!(!has_unsafe("let unsafe_thing = 1;"));
        // A test's string holding the keyword is not code (spelled in two halves here so
        // that this line itself holds no such string).
        let quoted = format!("let s = \"{} {{ x }}\";", concat!("un", "safe"));
        assert!(!has_unsafe(&without_strings(&quoted)));
        assert!(has_unsafe(&quoted.replace('"', " ")));
    }

    #[test]
    fn known_findings_do_not_fail_and_a_fixed_one_must_leave_the_list() {
        let findings = vec!["a.rs:12: old problem".to_owned(), "b.rs:3: new problem".to_owned()];
        let (known, new) = triage(findings, &["a.rs: old problem", "c.rs: gone"]);
        assert_eq!(known, ["a.rs:12: old problem"]);
        assert_eq!(new, ["b.rs:3: new problem", "fixed, so remove it from tidy.rs's KNOWN: c.rs: gone"]);
    }

    #[test]
    fn exit_tables_are_read_from_the_source_and_the_readme() {
        let source = "pub const USAGE: u8 = 64;\npub const OS: u8 = 71;\npub const EXIT_CODES: &[ExitCode] = &[\n    ExitCode { code: USAGE, meaning: \"usage\" },\n    ExitCode {\n        code: OS,\n        meaning: \"os call\",\n    },\n];\n";
        assert_eq!(exit_table(source).unwrap(), [(64, "usage".to_owned()), (71, "os call".to_owned())]);
        let readme = "| code | meaning |\n|---|---|\n| 64 | usage |\n| 71 | os call |\n";
        assert_eq!(markdown_exit_rows(readme), exit_table(source).unwrap());
    }

    #[test]
    fn aliases_come_from_full_spellings_and_the_alias_column() {
        let doc = "keep `vault.security.banzaicloud.io/mutate: \"true\"`.\n\n| `hush.dev/…` | Bank-Vaults alias (`vault.security.banzaicloud.io/…`) | Becomes |\n|---|---|---|\n| `role` | `vault-role` | `VAULT_ROLE` |\n| `landlock` | — | x |\n\nafter `not-an-alias`\n";
        assert_eq!(doc_aliases(doc), ["mutate", "vault-role"].map(String::from).into_iter().collect());
    }

    #[test]
    fn pointers_are_paths_into_the_repository() {
        let line = "see [`injector/src/policy.rs`](injector/src/policy.rs), kubernetes pkg/x/y.go and src/maps.rs.";
        assert_eq!(pointers(line), ["injector/src/policy.rs", "injector/src/policy.rs"]);
        assert_eq!(pointers("(xtask/src/demo/kubelet.rs: setpriv)"), ["xtask/src/demo/kubelet.rs"]);
    }
}
