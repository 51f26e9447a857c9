//! The `kura` binary: `kura server` runs the secrets manager; every other subcommand is a
//! `bao`-compatible client command.

mod cli;
mod server;

/// Keeps the allocator from holding on to memory: large buffers (password hashing, big request
/// bodies) are mapped and unmapped instead of growing per-thread heaps, and the number of malloc
/// arenas is bounded. Resident memory then follows what is live.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only adjusts glibc malloc parameters; called once before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() {
    tune_allocator();
    let args = cli::normalize_args(std::env::args().skip(1).collect());
    let code = match args.first().map(String::as_str) {
        Some("server") => server::run(args[1..].to_vec()),
        _ => cli::run(args),
    };
    std::process::exit(code);
}
