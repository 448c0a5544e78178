//! `linrt info`: this build and this CPU.

use std::io::Write;

use anyhow::Result;

use crate::cpu;

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    #[arg(long)]
    pub json: bool,
    /// Kernel path to report as chosen (default: LINRT_KERNELS, else the fastest).
    #[arg(long)]
    pub kernels: Option<String>,
}

pub fn execute(args: InfoArgs, out: &mut dyn Write) -> Result<()> {
    let InfoArgs { json, kernels } = args;
    // The newest format this build reads and writes (1.2: the feature maps).
    let (major, minor) = (linrt::format::VERSION_MAJOR, linrt::format::VERSION_MINOR_FEATURE_MAPS);
    let onnx = cfg!(feature = "onnx");
    let chosen = cpu::chosen(cpu::requested(kernels.as_deref())?)?.path().name();
    let available: Vec<&str> =
        linrt::kernels::ALL_PATHS.iter().filter(|p| p.is_supported()).map(|p| p.name()).collect();
    let features = cpu::features();
    let (cuda_lines, cuda_json) = crate::device::cuda_report();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "format_version": format!("{major}.{minor}"),
                               "arch": std::env::consts::ARCH, "cpu_features": features,
                               "kernel_paths": available, "kernels": chosen, "onnx_import": onnx, "cuda": cuda_json})
        )?;
    } else {
        writeln!(out, "linrt {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(out, "format       .lrt {major}.{minor}")?;
        writeln!(out, "cpu          {} with {}", std::env::consts::ARCH, features.join(" "))?;
        writeln!(out, "kernels      {chosen} (this CPU runs: {})", available.join(", "))?;
        writeln!(
            out,
            "onnx import  {}",
            if onnx { "yes (tract-onnx)" } else { "no (built without the onnx feature)" }
        )?;
        for line in cuda_lines {
            writeln!(out, "cuda         {line}")?;
        }
    }
    Ok(())
}
