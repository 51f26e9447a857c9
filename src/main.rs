//! The `kura` binary: `kura server` runs the secrets manager; every other subcommand is a
//! `bao`-compatible client command.

mod cli;
mod server;

fn main() {
    let args = cli::normalize_args(std::env::args().skip(1).collect());
    let code = match args.first().map(String::as_str) {
        Some("server") => server::run(args[1..].to_vec()),
        _ => cli::run(args),
    };
    std::process::exit(code);
}
