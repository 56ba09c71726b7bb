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
    }
}
