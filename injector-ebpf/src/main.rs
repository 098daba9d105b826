//! Hush's per-node guard (work in progress: see the guard issue).

fn main() {
    eprintln!("guard: not implemented yet");
    std::process::exit(70);
}
