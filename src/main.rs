//! The `cairn` command line.

use anyhow::{Context, Result};
use cairn::compile::Mode;
use cairn::manifest::Options;
use cairn::workspace::Workspace;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Gateways for LLM calls, MCP tools and agent-to-agent traffic, from Kubernetes resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the CustomResourceDefinitions, one YAML file per kind.
    Crds {
        /// Folder to write into; `-` prints all of them to stdout.
        #[arg(long, short, default_value = "crds")]
        out: PathBuf,
    },
    /// Check manifests offline as the API server and the operator would: YAML, schema, CEL rules
    /// and references between objects. Exits 1 when anything is wrong.
    Validate {
        /// Files or folders of YAML manifests (folders are read recursively).
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        /// Namespace of objects that name none.
        #[arg(short, long, default_value = cairn::manifest::DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Answer "what may agent X do" and "who may use tool/model/agent Y", from the live objects
    /// of a cluster (kubeconfig) or, with -f, from manifests.
    Explain {
        #[command(flatten)]
        source: Source,
        #[command(subcommand)]
        question: Question,
    },
    /// What the agents spent, per gateway, agent and model, and against their budgets: read from
    /// the shared store (spec.store.redis) the AIGateways count in.
    Spend {
        #[command(flatten)]
        source: Source,
        /// Only this Agent.
        #[arg(long)]
        agent: Option<String>,
        /// The window: a month (2026-12), an ISO week (2026-W49) or a day (2026-12-03). Default:
        /// this month (UTC).
        #[arg(long)]
        window: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", default_value = "table", value_parser = ["table", "json"])]
        output: String,
        /// Read the store at this URL instead of the one the AIGateways name (through a
        /// port-forward, say); the password still comes from their Secret.
        #[arg(long)]
        store_url: Option<String>,
    },
    /// Serve one gateway (what gateway pods run): its config from the Kubernetes API
    /// (`--config-map`, `--secret`; cluster mode) or from files (`--config`, `--credentials`),
    /// reloading when it changes and keeping the last good config when a new one is bad.
    Gateway {
        /// The layer.
        #[arg(long, value_parser = ["ai", "mcp", "agent"])]
        layer: String,
        /// Cluster mode: the gateway's main ConfigMap (`<name>-<layer>-gateway-config`).
        #[arg(long, requires = "secret", conflicts_with_all = ["config", "credentials"], required_unless_present = "config")]
        config_map: Option<String>,
        /// Cluster mode: the gateway's credentials Secret.
        #[arg(long, requires = "config_map")]
        secret: Option<String>,
        /// Cluster mode: the namespace of those objects (default: POD_NAMESPACE, then the pod's
        /// ServiceAccount namespace).
        #[arg(long, requires = "config_map")]
        namespace: Option<String>,
        /// File mode: the compiled config (JSON, as the operator writes it into the ConfigMap).
        #[arg(long)]
        config: Option<PathBuf>,
        /// File mode: the credentials bundle, a JSON object of credential id to value.
        #[arg(long, requires = "config")]
        credentials: Option<PathBuf>,
        /// Port of /metrics, /healthz and /readyz.
        #[arg(long, default_value_t = 9090)]
        admin_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        address: std::net::IpAddr,
    },
    /// Serve every gateway the manifests define, in this process, without a cluster; reloads when
    /// the files change (a bad edit keeps the last good config).
    Run {
        /// Files or folders of YAML manifests (folders are read recursively).
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        /// Namespace of objects that name none.
        #[arg(short, long, default_value = cairn::manifest::DEFAULT_NAMESPACE)]
        namespace: String,
        /// Port of /metrics, /healthz and /readyz.
        #[arg(long, default_value_t = 9090)]
        admin_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        address: std::net::IpAddr,
    },
    #[command(flatten)]
    Operator(cairn::operator::args::Command),
    /// Copy this binary to DEST (what the init container of an MCPServer pod with
    /// `transport: Stdio` runs, so the server's own image needs no Cairn).
    CopyBinary {
        /// Where to write it (made executable).
        dest: PathBuf,
    },
    /// Serve a stdio MCP server over streamable HTTP at /mcp (what the operator runs in an
    /// MCPServer's pod for `transport: Stdio`). The command comes only from here: no request can
    /// choose or change it.
    McpBridge {
        /// Port to listen on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        address: std::net::IpAddr,
        /// One child shared by every session (default: one child per session).
        #[arg(long)]
        shared: bool,
        /// Largest message accepted or relayed, in bytes.
        #[arg(long, default_value_t = 4 << 20)]
        max_message_bytes: usize,
        /// Sessions unused this many seconds are ended and their children stopped.
        #[arg(long, default_value_t = 1800)]
        session_idle_timeout_secs: u64,
        /// The server's program and arguments, after `--`.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

/// Where `explain` and `spend` read the objects.
#[derive(clap::Args)]
struct Source {
    /// A file or folder of YAML manifests (repeat `-f` for more); without it, the live objects
    /// of the cluster.
    #[arg(short = 'f', long = "filename")]
    paths: Vec<PathBuf>,
    /// Namespace to look in (and, with -f, of objects that name none). Default: the
    /// kubeconfig context's namespace, with -f `default`.
    #[arg(short, long)]
    namespace: Option<String>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, conflicts_with = "paths")]
    context: Option<String>,
}

#[derive(Subcommand)]
enum Question {
    /// Models, tools, peer agents, limits and budgets of one agent.
    Agent {
        /// The Agent's name.
        name: String,
    },
    /// Which agents may use a tool, a model or a peer agent.
    WhoCan {
        #[command(subcommand)]
        what: WhoCan,
    },
}

#[derive(Subcommand)]
enum WhoCan {
    /// A tool, by the name clients see: `<prefix>__<tool>`.
    Tool {
        /// Prefixed tool name.
        name: String,
    },
    /// A model, by the name clients request.
    Model {
        /// Model name.
        name: String,
    },
    /// A peer agent over A2A.
    Agent {
        /// Agent name.
        name: String,
        /// Only this skill.
        #[arg(long)]
        skill: Option<String>,
    },
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out } => crds(out),
        Command::Validate { paths, namespace } => validate(&paths, &namespace),
        Command::Explain { source, question } => explain(source, question),
        Command::Spend { source, agent, window, output, store_url } => {
            spend(source, agent.as_deref(), window.as_deref(), &output, store_url.as_deref())
        }
        Command::Gateway {
            layer,
            config_map,
            secret,
            namespace,
            config,
            credentials,
            admin_port,
            address,
        } => {
            let layer = match layer.as_str() {
                "ai" => cairn::config::Layer::Ai,
                "mcp" => cairn::config::Layer::Mcp,
                _ => cairn::config::Layer::Agent,
            };
            let listen = cairn::serve::Listen { address, admin_port: Some(admin_port) };
            let source = match (config_map, config) {
                (Some(config_map), _) => {
                    let namespace = match cairn::serve::cluster_namespace(namespace) {
                        Ok(n) => n,
                        Err(e) => {
                            eprintln!("error: {e}");
                            return Ok(ExitCode::FAILURE);
                        }
                    };
                    cairn::serve::Source::Cluster(cairn::gateway::source::kube::Cluster {
                        namespace,
                        config_map,
                        secret: secret.unwrap_or_default(),
                        instance: cairn::serve::instance_name(),
                    })
                }
                (None, Some(config)) => cairn::serve::Source::Files { config, credentials },
                // clap requires one of them.
                (None, None) => unreachable!("clap requires --config-map or --config"),
            };
            serve(|traces, shutdown| cairn::serve::gateway(layer, source, listen, traces, shutdown))
        }
        Command::Run { paths, namespace, admin_port, address } => {
            let options = Options::default().with_namespace(namespace);
            let listen = cairn::serve::Listen { address, admin_port: Some(admin_port) };
            serve(|traces, shutdown| cairn::serve::run(paths, options, listen, traces, shutdown))
        }
        Command::Operator(cairn::operator::args::Command::Operator(args)) => {
            let (log_format, otlp) = (args.log_format.clone(), args.otlp());
            operator(args.options(), &log_format, otlp)
        }
        Command::CopyBinary { dest } => copy_binary(&dest),
        Command::McpBridge {
            port,
            address,
            shared,
            max_message_bytes,
            session_idle_timeout_secs,
            command,
        } => mcp_bridge(cairn::gateway::mcp::bridge::BridgeOptions {
            address,
            port,
            shared,
            max_message_bytes,
            session_idle_timeout: std::time::Duration::from_secs(session_idle_timeout_secs.max(1)),
            command,
        }),
    }
}

/// Runs a serving command on a multi-threaded runtime until SIGINT or SIGTERM. Logs go to
/// stderr; the `tracing` spans are also the gateways' trace spans (`cairn::gateway::telemetry`).
fn serve<F, Fut>(f: F) -> Result<ExitCode>
where
    F: FnOnce(cairn::gateway::telemetry::Traces, cairn::gateway::server::Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<(), cairn::serve::ServeError>>,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let traces = cairn::gateway::telemetry::Traces::new();
    // Request spans are traced, not logged, unless RUST_LOG asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cairn::request=off"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a pod's log (a file, a pipe) gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry().with(fmt.with_filter(filter)).with(traces.layer()).init();
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let result = rt.block_on(async {
        let shutdown = cairn::gateway::supervisor::shutdown_on_signal();
        f(traces, shutdown).await
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn crds(out: PathBuf) -> Result<ExitCode> {
    let files = cairn::api::crd_files().context("rendering CRDs")?;
    if out.as_os_str() == "-" {
        for (_, yaml) in &files {
            print!("---\n{yaml}");
        }
    } else {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        for (name, yaml) in &files {
            let path = out.join(name);
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The compile mode `validate` and `explain` check against: what the operator does in a cluster.
fn cluster_mode() -> Mode {
    Mode::Cluster { domain: "cluster.local".into() }
}

fn validate(paths: &[PathBuf], namespace: &str) -> Result<ExitCode> {
    let ws = Workspace::load(paths, &Options::default().with_namespace(namespace), &cluster_mode());
    for line in ws.report() {
        println!("{line}");
    }
    if ws.has_errors() {
        let n = ws.problems.len() + ws.output.diagnostics.len();
        eprintln!("invalid: {n} problem{}", if n == 1 { "" } else { "s" });
        return Ok(ExitCode::FAILURE);
    }
    let gateways: Vec<String> = ws.output.gateways.iter().map(|g| g.config.gateway.to_string()).collect();
    eprintln!(
        "valid: {} objects, {} secrets; gateways: {}",
        ws.manifests.objects.len(),
        ws.manifests.secrets.len(),
        if gateways.is_empty() { "none".into() } else { gateways.join(", ") }
    );
    Ok(ExitCode::SUCCESS)
}

/// The compile of the objects `source` names, and their namespace; problems on stderr. `None`
/// when the cluster cannot be read (said on stderr).
fn load(source: Source) -> Result<Option<(cairn::compile::Output, String)>> {
    if !source.paths.is_empty() {
        let namespace = source.namespace.unwrap_or_else(|| cairn::manifest::DEFAULT_NAMESPACE.into());
        let ws =
            Workspace::load(&source.paths, &Options::default().with_namespace(&namespace), &cluster_mode());
        for line in ws.report() {
            eprintln!("{line}");
        }
        return Ok(Some((ws.output, namespace)));
    }
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let loaded = rt.block_on(async {
        let (client, default_ns) = cairn::cluster::connect(source.context.as_deref()).await?;
        let namespace = source.namespace.unwrap_or(default_ns);
        let mut warn = |w: String| eprintln!("warning: {w}");
        let output = cairn::cluster::compile(&client, &namespace, &cluster_mode(), &mut warn).await?;
        Ok::<_, cairn::cluster::ClusterError>((output, namespace))
    });
    match loaded {
        Ok((output, namespace)) => {
            for d in &output.diagnostics {
                eprintln!("{d}");
            }
            Ok(Some((output, namespace)))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(None)
        }
    }
}

fn explain(source: Source, question: Question) -> Result<ExitCode> {
    let Some((output, namespace)) = load(source)? else { return Ok(ExitCode::FAILURE) };
    let answer = match &question {
        Question::Agent { name } => cairn::explain::agent(&output, &namespace, name),
        Question::WhoCan { what } => {
            let subject = match what {
                WhoCan::Tool { name } => cairn::explain::Subject::Tool(name),
                WhoCan::Model { name } => cairn::explain::Subject::Model(name),
                WhoCan::Agent { name, skill } => cairn::explain::Subject::Agent(name, skill.as_deref()),
            };
            cairn::explain::who_can(&output, &namespace, subject)
        }
    };
    match answer {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn spend(
    source: Source,
    agent: Option<&str>,
    window: Option<&str>,
    output: &str,
    store_url: Option<&str>,
) -> Result<ExitCode> {
    let Some((compiled, namespace)) = load(source)? else { return Ok(ExitCode::FAILURE) };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let report = rt.block_on(cairn::spend::report(&compiled, &namespace, agent, window, store_url, now));
    match report {
        Ok(r) if output == "json" => {
            println!("{}", serde_json::to_string_pretty(&r).context("writing JSON")?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            print!("{}", cairn::explain::spend_table(&r));
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ cairn::spend::SpendError::Unavailable(_)) => {
            eprintln!("error: spend unknown: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `cairn mcp-bridge`: logs to stderr, serves until SIGINT or SIGTERM.
fn mcp_bridge(opts: cairn::gateway::mcp::bridge::BridgeOptions) -> Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a pod's log (a file, a pipe) gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    match rt.block_on(cairn::gateway::mcp::bridge::main(opts)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `cairn operator`: JSON (or text) logs to stderr, runs until SIGINT or SIGTERM, then finishes
/// the reconciles in flight and releases the Lease.
fn operator(
    opts: cairn::operator::Options,
    log_format: &str,
    otlp: Option<cairn::config::OtlpConfig>,
) -> Result<ExitCode> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The reconcile and compile spans are traced (when there is an endpoint), not logged,
    // unless RUST_LOG asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("info,{}=off", cairn::operator::trace::TARGET))
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if log_format == "json" { fmt.json().flatten_event(true).boxed() } else { fmt.boxed() };
    // The operator's spans, and as span events what the operator logs inside them.
    let traces = cairn::gateway::telemetry::Traces::for_targets(
        tracing_subscriber::filter::Targets::new()
            .with_target(cairn::operator::trace::TARGET, tracing::Level::INFO)
            .with_target("cairn::operator", tracing::Level::INFO),
    );
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otlp.is_some().then(|| traces.layer()))
        .init();
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let result = rt.block_on(async {
        if let Some(o) = &otlp {
            let http = cairn::gateway::http_client::HttpClients::default().unrestricted(0);
            if let Err(e) = traces.export_all("cairn-operator", o, http) {
                tracing::error!(error = %e, "the operator could not start");
                return Err(None);
            }
            tracing::info!(endpoint = %o.endpoint, protocol = ?o.protocol, "exporting reconcile spans");
        }
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let result = cairn::operator::run(opts, shutdown).await;
        // The spans of the last reconciles get a moment to leave.
        traces.shutdown(std::time::Duration::from_secs(2)).await;
        result.map_err(Some)
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Some(e)) => {
            tracing::error!(error = %e, category = e.category(), "the operator could not start");
            Ok(ExitCode::FAILURE)
        }
        Err(None) => Ok(ExitCode::FAILURE),
    }
}

/// `cairn copy-binary DEST`.
fn copy_binary(dest: &std::path::Path) -> Result<ExitCode> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().context("finding this binary")?;
    std::fs::copy(&me, dest).with_context(|| format!("copying {} to {}", me.display(), dest.display()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", dest.display()))?;
    Ok(ExitCode::SUCCESS)
}
