//! AI gateway benchmark: a fast mock OpenAI upstream, a bare hyper reverse proxy (the ceiling), an
//! open-loop load driver and the report. Not a test: `harness = false`, never run by `cargo test`.
//! benches/run.sh drives it (builds in release, starts every target, runs every scenario, prints
//! the markdown tables); see docs/benchmarks.md.
//!
//! ```text
//! ai_gateway mock  --port P [--chunks 16 --chunk-interval-us 1000]
//! ai_gateway proxy --port P --upstream http://127.0.0.1:M
//! ai_gateway drive --label L --url http://127.0.0.1:P [--key K] [--pid PID...] SCENARIO ...
//!                  (serial, open, closed, ladder; calls: a fixed count for instruction counts)
//! ai_gateway rss   --label L --phase idle|after --pid PID...
//! ai_gateway report results.jsonl
//! ```

#[path = "../common/mod.rs"]
mod common;
mod drive;
mod mock;
mod proxy;
mod report;

use clap::{Parser, Subcommand};
use common::runtime;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Cairn AI gateway benchmark pieces (see benches/run.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The mock OpenAI upstream.
    Mock {
        #[arg(long)]
        port: u16,
        /// Content chunks per stream.
        #[arg(long, default_value_t = 16)]
        chunks: usize,
        /// Pause between stream chunks after the first, microseconds.
        #[arg(long, default_value_t = 1000)]
        chunk_interval_us: u64,
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
        /// Base URL (the driver posts to {url}/v1/chat/completions).
        #[arg(long)]
        url: String,
        /// Bearer key.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value = "gpt-4o-mini")]
        model: String,
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
    /// One connection, sequential requests.
    Serial {
        #[arg(long, default_value_t = 1.0)]
        warmup_s: f64,
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
        #[arg(long)]
        stream: bool,
    },
    /// Open loop at a fixed rate.
    Open {
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
        #[arg(long)]
        stream: bool,
        #[arg(long, default_value_t = 512)]
        max_inflight: usize,
    },
    /// Closed loop, N connections.
    Closed {
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
    },
    /// `count` sequential requests on one connection, untimed (for instruction counts).
    Calls {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        stream: bool,
    },
    /// Rising open-loop rates until p99 exceeds the bound.
    Ladder {
        #[arg(long, default_value_t = 1000.0)]
        start: f64,
        #[arg(long, default_value_t = 1.4)]
        factor: f64,
        #[arg(long, default_value_t = 200_000.0)]
        max: f64,
        #[arg(long, default_value_t = 3.0)]
        step_s: f64,
        #[arg(long, default_value_t = 10.0)]
        p99_bound_ms: f64,
        #[arg(long, default_value_t = 512)]
        max_inflight: usize,
    },
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Mock { port, chunks, chunk_interval_us, threads } => {
            let o = mock::MockOpts { port, chunks, interval: Duration::from_micros(chunk_interval_us) };
            if let Err(e) = runtime(threads).block_on(mock::run(o)) {
                eprintln!("mock: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Cmd::Proxy(p) => return p.serve(|port, up| async move { proxy::run(port, &up).await }),
        Cmd::Drive { url, key, model, target, scenario } => {
            let (t, rt) = target.into_target();
            let chat = |stream, conns| Arc::new(drive::Chat::new(&url, key.clone(), &model, stream, conns));
            let out = rt.block_on(async {
                match scenario {
                    Scenario::Serial { warmup_s, duration_s, stream } => {
                        let name = if stream { "serial_stream" } else { "serial" };
                        common::serial(&*chat(stream, 1), &t, name, secs(warmup_s), secs(duration_s)).await
                    }
                    Scenario::Open { rate, duration_s, stream, max_inflight } => {
                        let name = if stream { "open_stream" } else { "open" };
                        let l = chat(stream, max_inflight);
                        common::open(l, &t, name, rate, secs(duration_s), 1, max_inflight).await
                    }
                    Scenario::Calls { count, stream } => common::calls(&*chat(stream, 1), &t, count).await,
                    Scenario::Closed { conns, duration_s } => {
                        common::closed(chat(false, conns), &t, conns, secs(duration_s)).await
                    }
                    Scenario::Ladder { start, factor, max, step_s, p99_bound_ms, max_inflight } => {
                        let l = common::Ladder {
                            start,
                            factor,
                            max,
                            step: secs(step_s),
                            bound: secs(p99_bound_ms / 1000.0),
                            lanes: 1,
                            max_inflight,
                        };
                        common::ladder(chat(false, max_inflight), &t, &l).await
                    }
                }
            });
            println!("{out}");
        }
        Cmd::Rss(r) => r.print(),
        Cmd::Report { file } => return common::report(&file, report::render),
    }
    std::process::ExitCode::SUCCESS
}
