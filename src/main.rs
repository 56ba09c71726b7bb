//! The `cairn` command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
        /// The server's program and arguments, after `--`.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out } => {
            let files = cairn::api::crd_files().context("rendering CRDs")?;
            if out.as_os_str() == "-" {
                for (_, yaml) in &files {
                    print!("---\n{yaml}");
                }
            } else {
                std::fs::create_dir_all(&out)
                    .with_context(|| format!("creating {}", out.display()))?;
                for (name, yaml) in &files {
                    let path = out.join(name);
                    std::fs::write(&path, yaml)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            Ok(())
        }
        Command::McpBridge { port, address, shared, max_message_bytes, command } => {
            mcp_bridge(cairn::gateway::mcp::bridge::BridgeOptions { address, port, shared, max_message_bytes, command })
        }
    }
}

/// `cairn mcp-bridge`: logs to stderr, serves until SIGINT or SIGTERM.
fn mcp_bridge(opts: cairn::gateway::mcp::bridge::BridgeOptions) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(cairn::gateway::mcp::bridge::main(opts)).map_err(anyhow::Error::msg)
}
