//! MCP gateway benchmark: a fast MCP backend (one or more servers, streamable HTTP), an MCP
//! client load driver and the report. Not a test: `harness = false`, never run by `cargo test`.
//! benches/mcp.sh drives it (builds in release, starts the backends, Cairn and `mcp-proxy`, runs
//! every scenario, prints the markdown tables); see docs/benchmarks.md.
//!
//! ```text
//! mcp_gateway backend --port P [--port P2 ...] [--result-bytes 512]
//! mcp_gateway proxy --port P --upstream http://127.0.0.1:B   (the AI benchmark's bare proxy)
//! mcp_gateway drive --label L --url http://127.0.0.1:P/mcp --tool T [--key K] [--pid PID...]
//!                   [--backends N] SCENARIO ...   (serial, closed, open, ladder, setup, sessions,
//!                                                  calls: a fixed count for instruction counts)
//! mcp_gateway rss   --label L --phase started|after --pid PID...
//! mcp_gateway report results.jsonl
//! ```
//!
//! The load scenarios (`serial`, `closed`, `open`, `ladder`) and their statistics are shared
//! with the AI gateway benchmark (`benches/common`).

#[path = "../common/mod.rs"]
mod common;

mod backend;
mod drive;
#[path = "../ai_gateway/proxy.rs"]
mod proxy;
mod report;

use clap::{Parser, Subcommand};
use common::runtime;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Cairn MCP gateway benchmark pieces (see benches/mcp.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// MCP servers, one per port, in one process.
    Backend {
        #[arg(long = "port", required = true)]
        ports: Vec<u16>,
        /// Size of the text a tool call answers, bytes.
        #[arg(long, default_value_t = 512)]
        result_bytes: usize,
        /// Runtime worker threads (1: a current-thread runtime).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// The bare reverse proxy (the ceiling: one more HTTP hop, nothing else).
    Proxy(common::ProxyArgs),
    /// Load against one target; prints one JSON line.
    Drive {
        #[command(flatten)]
        target: common::DriveArgs,
        /// The MCP endpoint.
        #[arg(long)]
        url: String,
        /// The tool to call, as the target names it.
        #[arg(long)]
        tool: String,
        /// Bearer key.
        #[arg(long)]
        key: Option<String>,
        /// Backends behind the target (recorded in the results).
        #[arg(long, default_value_t = 1)]
        backends: usize,
        #[command(subcommand)]
        scenario: Scenario,
    },
    /// Prints the summed VmRSS of processes as a JSON line.
    Rss(common::RssArgs),
    /// Markdown tables from the JSON lines of a run.
    Report { file: std::path::PathBuf },
}

#[derive(Subcommand)]
enum Scenario {
    /// One session, one connection, sequential tools/call.
    Serial {
        #[arg(long, default_value_t = 1.0)]
        warmup_s: f64,
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
    },
    /// Closed loop: N sessions, each on its own connection.
    Closed {
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
    },
    /// Open loop at a fixed rate over `sessions` sessions.
    Open {
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
        #[arg(long, default_value_t = 32)]
        sessions: usize,
        #[arg(long, default_value_t = 512)]
        max_inflight: usize,
    },
    /// Rising open-loop rates until p99 exceeds the bound.
    Ladder {
        #[arg(long, default_value_t = 2000.0)]
        start: f64,
        #[arg(long, default_value_t = 1.4)]
        factor: f64,
        #[arg(long, default_value_t = 200_000.0)]
        max: f64,
        #[arg(long, default_value_t = 3.0)]
        step_s: f64,
        #[arg(long, default_value_t = 50.0)]
        p99_bound_ms: f64,
        #[arg(long, default_value_t = 32)]
        sessions: usize,
        #[arg(long, default_value_t = 512)]
        max_inflight: usize,
    },
    /// Session set-up time: initialize + notifications/initialized, sequential.
    Setup {
        #[arg(long, default_value_t = 1.0)]
        warmup_s: f64,
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
    },
    /// `count` sequential tools/call on one session, untimed (for instruction counts).
    Calls {
        #[arg(long)]
        count: usize,
    },
    /// Memory per open session: RSS before and after opening `count` sessions.
    Sessions {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 8)]
        conns: usize,
        /// Pause before each RSS reading, milliseconds.
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
    },
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Backend { ports, result_bytes, threads } => {
            if let Err(e) = runtime(threads).block_on(backend::run(&ports, result_bytes)) {
                eprintln!("backend: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Cmd::Proxy(p) => return p.serve(|port, up| async move { proxy::run(port, &up).await }),
        Cmd::Drive { url, tool, key, backends, target, scenario } => {
            let (t, rt) = target.into_target();
            let out = rt.block_on(async {
                let client = |conns| drive::Mcp::new(&url, key.as_deref(), &tool, conns);
                // The sessions of a load scenario are opened first, outside the measurement.
                let with_sessions = |n: usize, conns: usize| async move {
                    let mut m = client(conns);
                    m.open_sessions(n, 8).await.map(|_| Arc::new(m))
                };
                let refused = |e: common::Fail| {
                    serde_json::json!({"kind": "error", "label": t.label, "error": format!("could not open sessions: {e:?}")})
                };
                let mut v = match scenario {
                    Scenario::Serial { warmup_s, duration_s } => match with_sessions(1, 1).await {
                        Ok(m) => common::serial(&*m, &t, "serial", secs(warmup_s), secs(duration_s)).await,
                        Err(e) => refused(e),
                    },
                    Scenario::Closed { conns, duration_s } => match with_sessions(conns, conns).await {
                        Ok(m) => common::closed(m, &t, conns, secs(duration_s)).await,
                        Err(e) => refused(e),
                    },
                    Scenario::Open { rate, duration_s, sessions, max_inflight } => {
                        match with_sessions(sessions, max_inflight).await {
                            Ok(m) => {
                                common::open(m, &t, "open", rate, secs(duration_s), sessions, max_inflight)
                                    .await
                            }
                            Err(e) => refused(e),
                        }
                    }
                    Scenario::Ladder { start, factor, max, step_s, p99_bound_ms, sessions, max_inflight } => {
                        match with_sessions(sessions, max_inflight).await {
                            Ok(m) => {
                                let l = common::Ladder {
                                    start,
                                    factor,
                                    max,
                                    step: secs(step_s),
                                    bound: secs(p99_bound_ms / 1000.0),
                                    lanes: sessions,
                                    max_inflight,
                                };
                                common::ladder(m, &t, &l).await
                            }
                            Err(e) => refused(e),
                        }
                    }
                    Scenario::Setup { warmup_s, duration_s } => {
                        drive::setup(&client(1), &t, secs(warmup_s), secs(duration_s)).await
                    }
                    Scenario::Calls { count } => match with_sessions(1, 1).await {
                        Ok(m) => common::calls(&*m, &t, count).await,
                        Err(e) => refused(e),
                    },
                    Scenario::Sessions { count, conns, settle_ms } => {
                        let mut m = client(conns);
                        drive::sessions(&mut m, &t, count, conns, Duration::from_millis(settle_ms)).await
                    }
                };
                v["backends"] = backends.into();
                v
            });
            println!("{out}");
        }
        Cmd::Rss(r) => r.print(),
        Cmd::Report { file } => return common::report(&file, report::render),
    }
    std::process::ExitCode::SUCCESS
}
