//! The `bao`-compatible client commands of the `kura` binary.
//!
//! [`normalize_args`] turns Go-style single-dash long flags (`-format=json`) into the
//! double-dash form clap parses; [`run`] parses the command line, talks to the server through
//! `kura-client` and prints what `bao` prints. Exit codes follow `bao`: 0 success, 1 usage or
//! local error, 2 server error or "nothing found" (and "sealed" for `status`), 127 unknown
//! command.

mod format;
mod kv;
mod kvargs;
mod logical;
mod output;
mod raft;
mod sys;
mod token;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kura_client::{read_env, Client, ClientConfig, ClientError};

use output::Ui;

/// Rewrites Go-style single-dash long flags (`-format=json`, `-mount secret`) into the
/// double-dash form (`--format=json`). Left alone: `-` (stdin), single-letter flags (`-f`),
/// negative numbers, anything already double-dashed, `--` and every argument after it, and
/// positional arguments such as `key=value` (also `key=-value`: only the part before `=` of a
/// dash-prefixed argument is looked at).
pub fn normalize_args(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest_untouched = false;
    for arg in args {
        if rest_untouched || arg == "-" || arg.starts_with("--") || !arg.starts_with('-') {
            if arg == "--" {
                rest_untouched = true;
            }
            out.push(arg);
            continue;
        }
        let name = arg[1..].split('=').next().unwrap_or_default();
        let numeric = !name.is_empty() && name.chars().all(|c| c.is_ascii_digit() || c == '.');
        if name.chars().count() >= 2 && !numeric {
            out.push(format!("-{arg}"));
        } else {
            out.push(arg);
        }
    }
    out
}

/// Parses a Go boolean flag value (`true`, `1`, `F`, ...).
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: invalid boolean value {s:?}")),
    }
}

/// Parses a duration flag value; returns nanoseconds.
fn duration_arg(s: &str) -> Result<i128, String> {
    format::parse_duration(s).ok_or_else(|| format!("time: invalid duration {s:?}"))
}

/// Parses a `key=value` flag value (`-metadata`, `-options`, `-header`, ...).
fn kv_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
        None => Err(format!("missing = in KV pair: {s:?}")),
    }
}

/// HTTP options every command accepts (`-address`, `-namespace`, TLS settings, ...).
#[derive(Args, Debug, Clone, Default)]
pub struct HttpOpts {
    /// Address of the server.
    #[arg(long)]
    pub address: Option<String>,
    /// PEM CA certificate file to verify the server's certificate.
    #[arg(long = "ca-cert")]
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA certificates.
    #[arg(long = "ca-path")]
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate for TLS client authentication.
    #[arg(long = "client-cert")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long = "client-key")]
    pub client_key: Option<PathBuf>,
    /// Namespace for the command (`-ns` is a shortcut).
    #[arg(long, visible_alias = "ns")]
    pub namespace: Option<String>,
    /// Name to use as the SNI host when connecting over TLS.
    #[arg(long = "tls-server-name")]
    pub tls_server_name: Option<String>,
    /// Extra HTTP header `key=value` (repeatable).
    #[arg(long, value_parser = kv_pair)]
    pub header: Vec<(String, String)>,
    /// Wrap the response in a cubbyhole token with this TTL.
    #[arg(long = "wrap-ttl", value_parser = duration_arg)]
    pub wrap_ttl: Option<i128>,
    #[arg(long = "tls-skip-verify", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_bool)]
    /// Disable verification of TLS certificates.
    pub tls_skip_verify: Option<bool>,
    #[arg(long = "disable-redirects", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_bool)]
    /// Do not follow a redirect to the active node.
    pub disable_redirects: Option<bool>,
    #[arg(long = "non-interactive", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_bool)]
    /// Never ask for input on the terminal.
    pub non_interactive: Option<bool>,
}

impl HttpOpts {
    /// The client configuration: the environment, then these flags on top.
    pub fn config(&self) -> Result<ClientConfig, ClientError> {
        let mut c = ClientConfig::from_env()?;
        if let Some(a) = &self.address {
            c.address = a.clone();
        }
        if self.ca_cert.is_some() {
            c.ca_cert = self.ca_cert.clone();
        }
        if self.ca_path.is_some() {
            c.ca_path = self.ca_path.clone();
        }
        if self.client_cert.is_some() {
            c.client_cert = self.client_cert.clone();
        }
        if self.client_key.is_some() {
            c.client_key = self.client_key.clone();
        }
        if let Some(ns) = &self.namespace {
            c.namespace = Some(ns.trim_matches('/').to_string() + "/").filter(|n| n != "/");
        }
        if self.tls_server_name.is_some() {
            c.tls_server_name = self.tls_server_name.clone();
        }
        if let Some(v) = self.tls_skip_verify {
            c.skip_verify = v;
        }
        if let Some(v) = self.disable_redirects {
            c.disable_redirects = v;
        }
        c.headers.extend(self.header.iter().cloned());
        let wrap = self
            .wrap_ttl
            .map(format::go_duration)
            .or_else(|| read_env("WRAP_TTL"));
        if let Some(w) = wrap {
            c.headers.push(("X-Vault-Wrap-TTL".to_string(), w));
        }
        Ok(c)
    }

    /// Builds the client, refusing forbidden headers as `bao` does.
    pub fn client(&self) -> Result<Client, String> {
        let forbidden: Vec<&str> = self
            .header
            .iter()
            .filter(|(k, _)| k.starts_with("X-Vault-"))
            .map(|(k, _)| k.as_str())
            .collect();
        if !forbidden.is_empty() {
            return Err(format!(
                "failed to setup Headers[{}]: Header starting by 'X-Vault-' are for internal usage only",
                forbidden.join(", ")
            ));
        }
        let config = self.config().map_err(|e| e.to_string())?;
        Client::new(config).map_err(|e| format!("failed to create client: {e}"))
    }

    /// A client without the wrapping header, for preflight requests.
    pub fn plain_client(&self) -> Result<Client, String> {
        let mut config = self.config().map_err(|e| e.to_string())?;
        config.headers.retain(|(k, _)| k != "X-Vault-Wrap-TTL");
        Client::new(config).map_err(|e| format!("failed to create client: {e}"))
    }

    /// Whether `-non-interactive` was given.
    pub fn non_interactive(&self) -> bool {
        self.non_interactive.unwrap_or(false)
    }
}

/// `-format`.
#[derive(Args, Debug, Clone, Default)]
pub struct FormatOpts {
    /// Output format: "table" or "json".
    #[arg(long)]
    pub format: Option<String>,
}

impl FormatOpts {
    /// The format in force: the flag, else `*_FORMAT`, else `table`.
    pub fn resolve(&self) -> String {
        self.format
            .clone()
            .or_else(|| read_env("FORMAT"))
            .unwrap_or_else(|| "table".to_string())
            .to_lowercase()
    }
}

/// `-format` and `-field`.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputOpts {
    #[command(flatten)]
    pub fmt: FormatOpts,
    /// Print only this field, without a trailing newline.
    #[arg(long)]
    pub field: Option<String>,
}

impl OutputOpts {
    /// The `-field` value, if non-empty.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref().filter(|f| !f.is_empty())
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "kura",
    about = "Kura: bao-compatible client commands",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print seal and HA status.
    Status(sys::StatusArgs),
    /// Perform operator-specific tasks.
    #[command(subcommand)]
    Operator(sys::OperatorCmd),
    /// Authenticate locally.
    Login(logical::LoginArgs),
    /// Read data and retrieve secrets.
    Read(logical::ReadArgs),
    /// Write data, configuration, and secrets.
    Write(logical::WriteArgs),
    /// List data or secrets.
    List(logical::ListArgs),
    /// Delete secrets and configuration.
    Delete(logical::DeleteArgs),
    /// Interact with the key/value secrets engine.
    #[command(subcommand)]
    Kv(kv::KvCmd),
    /// Interact with secrets engines.
    #[command(subcommand)]
    Secrets(sys::SecretsCmd),
    /// Interact with auth methods.
    #[command(subcommand)]
    Auth(sys::AuthCmd),
    /// Interact with policies.
    #[command(subcommand)]
    Policy(sys::PolicyCmd),
    /// Interact with tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
}

/// Runs one client command. `args` is argv without the program name, already passed
/// through [`normalize_args`]. Returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    if unknown_top_level(&args) {
        use clap::CommandFactory;
        if let Some(first) = args.first() {
            eprintln!("Unknown command: {first}\n");
        }
        eprintln!("{}", Cli::command().render_help());
        return 127;
    }
    let argv = std::iter::once("kura".to_string()).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("failed to start the async runtime: {e}");
            return 1;
        }
    };
    let mut ui = Ui::stdio();
    runtime.block_on(dispatch(cli.command, &mut ui))
}

fn clap_error(e: clap::Error) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::UnknownArgument => {
            // Go's flag package wording: "flag provided but not defined: -name".
            match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => {
                    let name = arg
                        .trim_start_matches('-')
                        .split('=')
                        .next()
                        .unwrap_or_default();
                    eprintln!("flag provided but not defined: -{name}");
                }
                _ => {
                    let _ = e.print();
                }
            }
            1
        }
        _ => {
            let _ = e.print();
            1
        }
    }
}

/// `bao` answers an empty or unknown top-level command with its usage and exit code 127.
fn unknown_top_level(args: &[String]) -> bool {
    use clap::CommandFactory;
    let Some(first) = args.first() else {
        return true;
    };
    if first.starts_with('-') {
        return false;
    }
    !Cli::command()
        .get_subcommands()
        .any(|c| c.get_name() == first.as_str())
}

async fn dispatch(cmd: Command, ui: &mut Ui) -> i32 {
    match cmd {
        Command::Status(a) => sys::status(ui, a).await,
        Command::Operator(c) => sys::operator(ui, c).await,
        Command::Login(a) => logical::login(ui, a).await,
        Command::Read(a) => logical::read(ui, a).await,
        Command::Write(a) => logical::write(ui, a).await,
        Command::List(a) => logical::list(ui, a).await,
        Command::Delete(a) => logical::delete(ui, a).await,
        Command::Kv(c) => kv::run(ui, c).await,
        Command::Secrets(c) => sys::secrets(ui, c).await,
        Command::Auth(c) => sys::auth(ui, c).await,
        Command::Policy(c) => sys::policy(ui, c).await,
        Command::Token(c) => token::run(ui, c).await,
    }
}

/// Splits repeatable list flags on commas, as Go's string-slice flags do.
pub(crate) fn split_list(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `sanitizePath`: trims spaces and leading and trailing slashes.
pub(crate) fn sanitize_path(s: &str) -> String {
    s.trim()
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

/// `ensureTrailingSlash`.
pub(crate) fn ensure_trailing_slash(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        return String::new();
    }
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

/// Checks the number of positional arguments; prints `bao`'s message when it is wrong.
pub(crate) fn check_args(ui: &mut Ui, args: &[String], min: usize, max: usize) -> bool {
    let n = args.len();
    if n < min {
        let exp = if min == max {
            min.to_string()
        } else {
            format!(">{}", min - 1)
        };
        ui.error(&format!("Not enough arguments (expected {exp}, got {n})"));
        return false;
    }
    if n > max {
        ui.error(&format!("Too many arguments (expected {max}, got {n})"));
        return false;
    }
    true
}

/// Reads a secret from the terminal without echo (`stty -echo`), or one line from stdin
/// when stdin is not a terminal. `prompt` goes to `ui` before reading.
pub(crate) fn read_secret_input(
    ui: &mut Ui,
    prompt: &str,
    prompt_to_stderr: bool,
) -> Result<String, String> {
    if prompt_to_stderr {
        eprint!("{prompt}");
    } else {
        ui.prompt(prompt);
    }
    let tty = std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    };
    if tty {
        stty("-echo");
    }
    let mut line = String::new();
    let res = std::io::stdin().lock().read_line(&mut line);
    if tty {
        stty("echo");
    }
    if prompt_to_stderr {
        eprintln!();
    } else {
        ui.output("");
    }
    match res {
        Ok(0) => Err("EOF".to_string()),
        Ok(_) => Ok(line.trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            normalize_args(v(&["kv", "get", "-format=json", "-mount", "secret", "foo"])),
            v(&["kv", "get", "--format=json", "--mount", "secret", "foo"])
        );
        assert_eq!(
            normalize_args(v(&["-address=http://x:1"])),
            v(&["--address=http://x:1"])
        );
    }

    #[test]
    fn stdin_dash_double_dash_and_rest_untouched() {
        assert_eq!(
            normalize_args(v(&[
                "policy",
                "write",
                "p",
                "-",
                "--",
                "-format=json",
                "-x"
            ])),
            v(&["policy", "write", "p", "-", "--", "-format=json", "-x"])
        );
        assert_eq!(normalize_args(v(&["--format=json"])), v(&["--format=json"]));
    }

    #[test]
    fn values_after_equals_and_positionals_untouched() {
        assert_eq!(
            normalize_args(v(&["write", "secret/x", "a=-b", "k=v", "-field=-weird=x"])),
            v(&["write", "secret/x", "a=-b", "k=v", "--field=-weird=x"])
        );
    }

    #[test]
    fn short_flags_and_negative_numbers_untouched() {
        assert_eq!(
            normalize_args(v(&["write", "-f", "x", "-n=3", "-10", "-1.5"])),
            v(&["write", "-f", "x", "-n=3", "-10", "-1.5"])
        );
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("kura".to_string()).chain(normalize_args(v(args)));
        Cli::try_parse_from(argv)
    }

    #[test]
    fn parses_go_style_command_lines() {
        let cli = parse(&[
            "kv",
            "get",
            "-mount=secret",
            "-version=2",
            "-format=json",
            "foo",
        ])
        .unwrap();
        match cli.command {
            Command::Kv(kv::KvCmd::Get(a)) => {
                assert_eq!(a.common.mount.as_deref(), Some("secret"));
                assert_eq!(a.version, Some(2));
                assert_eq!(a.out.fmt.format.as_deref(), Some("json"));
                assert_eq!(a.path, vec!["foo".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&[
            "token",
            "create",
            "-policy=a",
            "-policy",
            "b,c",
            "-ttl=1h",
            "-renewable=false",
            "-orphan",
            "-metadata=k=v",
            "-use-limit=3",
        ])
        .unwrap();
        match cli.command {
            Command::Token(token::TokenCmd::Create(a)) => {
                assert_eq!(a.policy, vec!["a".to_string(), "b,c".to_string()]);
                assert_eq!(a.ttl, Some(3_600_000_000_000));
                assert_eq!(a.renewable, Some(false));
                assert_eq!(a.orphan, Some(true));
                assert_eq!(a.metadata, vec![("k".to_string(), "v".to_string())]);
                assert_eq!(a.use_limit, Some(3));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bool_flag_does_not_swallow_positional() {
        let cli = parse(&["write", "-f", "secret/x"]).unwrap();
        match cli.command {
            Command::Write(a) => {
                assert_eq!(a.force, Some(true));
                assert_eq!(a.args, vec!["secret/x".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["token", "revoke", "-accessor", "abc"]).unwrap();
        match cli.command {
            Command::Token(token::TokenCmd::Revoke(a)) => {
                assert_eq!(a.accessor, Some(true));
                assert_eq!(a.args, vec!["abc".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn usage_errors_exit_1_unknown_commands_127() {
        assert_eq!(run(v(&["kv", "get", "--no-such-flag", "x"])), 1);
        assert_eq!(run(v(&["no-such-command"])), 127);
        assert_eq!(run(v(&["kv", "get", "--help"])), 0);
    }

    #[test]
    fn namespace_and_wrap_flags_reach_the_config() {
        let h = HttpOpts {
            address: Some("http://127.0.0.1:1".into()),
            namespace: Some("/team/".into()),
            wrap_ttl: Some(300_000_000_000),
            ..HttpOpts::default()
        };
        let c = h.config().unwrap();
        assert_eq!(c.address, "http://127.0.0.1:1");
        assert_eq!(c.namespace.as_deref(), Some("team/"));
        assert!(c
            .headers
            .contains(&("X-Vault-Wrap-TTL".to_string(), "5m0s".to_string())));
        let bad = HttpOpts {
            header: vec![("X-Vault-Token".into(), "x".into())],
            ..HttpOpts::default()
        };
        assert!(bad.client().unwrap_err().contains("X-Vault-"));
    }

    #[test]
    fn arg_count_messages() {
        let mut ui = Ui::buffered("table");
        assert!(!check_args(&mut ui, &[], 1, 1));
        assert!(!check_args(&mut ui, &v(&["a", "b"]), 1, 1));
        assert!(!check_args(&mut ui, &[], 2, usize::MAX));
        assert_eq!(
            ui.stderr_text(),
            "Not enough arguments (expected 1, got 0)\nToo many arguments (expected 1, got 2)\nNot enough arguments (expected >1, got 0)\n"
        );
    }
}
