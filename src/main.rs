//! The `sgpolicy` binary: parse arguments, set up logging, run a mode, and map its outcome to an exit
//! status. The exit codes live here and in `cli::exit`, nowhere below.

use clap::Parser;
use sgpolicy::accounts::connect::ConnectError;
use sgpolicy::cli::import::ImportConfig;
use sgpolicy::cli::{
    exit, Cli, Command, Config, LogFormat, OutputFormat, PlanExit, RunMode, SimArgs,
};
use sgpolicy::daemon::{self, Ended};
use sgpolicy::import;
use sgpolicy::once::OnceError;
use sgpolicy::policy;
use sgpolicy::report;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    init_logging(cli.run.log_format);
    // A one-shot pass runs on one thread: it waits on the network and the rate limiter and needs
    // well under a core, while on worker threads every request crossed threads twice (the pass here,
    // its connection on a worker), which cost more CPU than the request itself (docs/scale.md).
    let one_shot = match &cli.command {
        None => cli.run.once,
        Some(command) => matches!(command, Command::Import(_) | Command::Status(_)),
    };
    let mut builder = if one_shot {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(exit::ERROR as u8);
        }
    };
    let code = match cli.command {
        Some(Command::Sim(args)) => runtime.block_on(run_sim(args)),
        Some(Command::Validate(args)) => sgpolicy::cli::validate::run_cli(&args),
        Some(Command::Schema) => sgpolicy::cli::validate::print_schema(),
        Some(Command::Import(args)) => match args.validate() {
            Ok(config) => runtime.block_on(run_import(config)),
            Err(problems) => usage(problems, "sgpolicy import --help"),
        },
        Some(Command::Status(args)) => match args.validate() {
            Ok(config) => runtime.block_on(run_status(config)),
            Err(problems) => usage(problems, "sgpolicy status --help"),
        },
        None => match cli.run.validate() {
            Ok(config) => match config.mode.clone() {
                RunMode::Daemon(settings) => run_daemon(&runtime, config, *settings),
                RunMode::Apply | RunMode::Plan(_) => runtime.block_on(run_once(config)),
            },
            Err(problems) => usage(problems, "sgpolicy --help"),
        },
    };
    // Dropping the runtime would wait for every blocking task still running, without limit: a DNS
    // lookup reqwest started on the blocking pool for a request that shutdown abandoned could hold
    // the exit up for seconds. Everything that matters has finished by now.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    ExitCode::from(code as u8)
}

/// The daemon, until it stops; its exit code.
fn run_daemon(
    runtime: &tokio::runtime::Runtime,
    config: Config,
    settings: sgpolicy::daemon::settings::DaemonSettings,
) -> i32 {
    let setup = daemon::Setup {
        policies: config.policies,
        load: config.load,
        connect: config.connect,
        pass: config.pass,
        settings,
        report: config.report,
        shard: config.shard,
    };
    match runtime.block_on(daemon::run(setup)) {
        Ended::Stopped => exit::OK,
        Ended::Misconfigured => exit::USAGE,
        Ended::Failed => exit::ERROR,
    }
}

/// `sgpolicy status`: a daemon's `/status.json`, filtered, as a table or JSON on stdout.
async fn run_status(config: sgpolicy::cli::status::StatusConfig) -> i32 {
    use sgpolicy::daemon::status::{fetch, table};
    use std::io::Write;
    if let Some(w) = sgpolicy::cli::status::clear_text_warning(&config) {
        eprintln!("warning: {w}");
    }
    let doc = match fetch::fetch(&config.target).await {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("error: {}", sgpolicy::escape::text(&e.to_string()));
            return exit::ERROR;
        }
    };
    let doc = match table::filtered(doc, &config.filter) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("error: {}: {e}", config.target.url());
            return exit::ERROR;
        }
    };
    let out = match config.output {
        sgpolicy::cli::status::StatusOutput::Json => {
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
        sgpolicy::cli::status::StatusOutput::Text => table::text(&doc),
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    exit::OK
}

/// How long the exit waits for blocking tasks left running (see the end of `main`).
const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_millis(200);

fn usage(problems: Vec<String>, help: &str) -> i32 {
    for p in problems {
        eprintln!("error: {p}");
    }
    eprintln!("(see {help})");
    exit::USAGE
}

fn init_logging(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("sgpolicy=info"));
    // notify's per-event trace lines would feed themselves through a log file in a watched folder:
    // a `RUST_LOG` that does not name notify keeps it at warnings (the default never shows it).
    let broad = std::env::var("RUST_LOG").is_ok_and(|v| !v.contains("notify"));
    if broad {
        if let Ok(quiet) = daemon::watch::QUIET_NOTIFY.parse() {
            filter = filter.add_directive(quiet);
        }
    }
    // Colours only for a terminal: piped into a file or a log collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        // Untrusted text in a message or field (file names, event authors) is escaped: it can never
        // forge a second line. JSON lines are escaped by serde.
        LogFormat::Human => builder.fmt_fields(sgpolicy::escape::log_fields()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

async fn run_once(config: Config) -> i32 {
    let once = sgpolicy::once::Once {
        policies: &config.policies,
        load: &config.load,
        connect: &config.connect,
        pass: &config.pass,
        shard: config.shard,
        coverage: config
            .report_ungoverned
            .then_some(config.fail_on_ungoverned),
    };
    let result = match sgpolicy::once::run(once).await {
        Ok(report) => report,
        Err(OnceError::Folder(errors)) => return folder_errors(&config, &errors),
        Err(OnceError::Connect(e)) => return connect_failed(&e),
    };
    // The summary is on stdout already; the log line is for runs whose stdout is a JSON report.
    tracing::debug!("{}", report::summary_line(&result));
    match config.output {
        OutputFormat::Text => print!("{}", report::text(&result)),
        OutputFormat::Json => {
            // Streamed: a 10,000-group document as one `Value` would double the agent's memory.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = report::write_json(&result, &mut out)
                .and_then(|()| std::io::Write::write_all(&mut out, b"\n"))
                .and_then(|()| std::io::Write::flush(&mut out));
            if let Err(e) = written {
                eprintln!("error: writing the JSON report: {e}");
                return exit::ERROR;
            }
        }
        OutputFormat::Markdown => print!("{}", report::markdown(&result)),
    }
    if let Some(path) = &config.report {
        if let Err(e) = sgpolicy::cli::validate::write_report(path, &report::json(&result)) {
            eprintln!("error: {e:#}");
            return exit::ERROR;
        }
    }
    if result.has_errors() {
        exit::ERROR
    } else if config.require_isolation && report::isolation::unproven(&result) > 0 {
        eprintln!(
            "error: {} group(s) declared Drop are not proven isolated (--require-isolation)",
            report::isolation::unproven(&result)
        );
        exit::ERROR
    } else if config.mode == RunMode::Plan(PlanExit::Detailed) && result.has_drift() {
        exit::DRIFT
    } else {
        exit::OK
    }
}

/// A folder that cannot be fully understood: every problem on stderr (and in the report formats
/// asked for); nothing was sent.
fn folder_errors(config: &Config, errors: &[policy::LoadError]) -> i32 {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!(
        "error: {} problem(s) in {}; nothing was written",
        errors.len(),
        config.policies.display()
    );
    if config.output == OutputFormat::Json {
        println!("{}", sgpolicy::cli::validate::load_errors_json(errors));
    }
    let markdown = config.output == OutputFormat::Markdown;
    sgpolicy::cli::validate::report_load_errors(errors, markdown, config.report.as_deref());
    exit::ERROR
}

/// Says why no client could be made; its exit status: 1 when no credentials were found, 64 for an
/// endpoint or role that cannot be used as given.
fn connect_failed(e: &ConnectError) -> i32 {
    eprintln!("error: {e}");
    match e {
        ConnectError::Credentials(_) => exit::ERROR,
        ConnectError::Client(_) | ConnectError::Sessions(_) => exit::USAGE,
    }
}

/// The clients of a one-shot command, or (after saying why on stderr) its exit status.
async fn connect(
    settings: &sgpolicy::accounts::connect::ConnectSettings,
) -> Result<sgpolicy::accounts::Clients, i32> {
    match sgpolicy::accounts::connect::connect(settings).await {
        Ok((clients, _credentials)) => Ok(clients),
        Err(e) => Err(connect_failed(&e)),
    }
}

/// `sgpolicy import`: connect, reach the account, list, read and write; a progress line on stderr.
async fn run_import(config: ImportConfig) -> i32 {
    let clients = match connect(&config.connect).await {
        Ok(clients) => clients,
        Err(code) => return code,
    };
    let settings = &config.settings;
    let client = match &settings.account {
        None => clients.get("", None).await,
        Some(role) => {
            let account = role.account_id().unwrap_or_default();
            clients.get(account, Some(role)).await
        }
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}; nothing was written");
            return exit::ERROR;
        }
    };
    let started = std::time::Instant::now();
    let (mut listed, mut regions) = (0usize, 0usize);
    let progress = |p: import::Progress| match p {
        import::Progress::Listed { groups } => {
            listed += groups;
            regions += 1;
            eprintln!(
                "import: listed {listed} group(s) in {regions} of {} region(s)",
                settings.regions.len()
            );
        }
        import::Progress::Read { read, total } => eprintln!(
            "import: read {read} of {total} policies ({:.0}s)",
            started.elapsed().as_secs_f64()
        ),
    };
    match import::import(&client, settings, progress).await {
        Ok(summary) => {
            for f in &summary.files {
                println!("{}", f.display());
            }
            let also = import_also(&summary);
            eprintln!(
                "imported {} group(s) into {} file(s) in {}{also} ({:.1}s; API calls: {})",
                summary.declared,
                summary.files.len(),
                settings.out.display(),
                started.elapsed().as_secs_f64(),
                calls(clients.stats()),
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
    }
}

/// The groups an import skipped or lost, as the tail of its summary line (empty when none).
fn import_also(summary: &import::Summary) -> String {
    let mut also = String::new();
    if summary.skipped > 0 {
        also += &format!(
            ", {} written as comments (cannot be managed)",
            summary.skipped
        );
    }
    if summary.vanished > 0 {
        also += &format!(", {} gone before their policy was read", summary.vanished);
    }
    also
}

fn calls(stats: &sgpolicy::ecs::client::CallStats) -> String {
    let mut by_action = std::collections::BTreeMap::<String, u64>::new();
    for ((action, _), n) in stats.snapshot() {
        *by_action.entry(action).or_default() += n;
    }
    let calls: Vec<String> = by_action.iter().map(|(a, n)| format!("{n} {a}")).collect();
    if calls.is_empty() {
        "none".into()
    } else {
        calls.join(", ")
    }
}

async fn run_sim(args: SimArgs) -> i32 {
    let text = match std::fs::read_to_string(&args.seed) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: reading seed {}: {e}", args.seed.display());
            return exit::USAGE;
        }
    };
    let seed = match sgpolicy_sim::Seed::from_yaml(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e:#}", args.seed.display());
            return exit::USAGE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: listening on {}: {e}", args.listen);
            return exit::USAGE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => eprintln!("warning: cannot read the bound address: {e}"),
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match sgpolicy_sim::Simulator::new(seed)
        .serve(listener, shutdown)
        .await
    {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: simulator: {e}");
            exit::ERROR
        }
    }
}
