//! `linrt inspect`: a .lrt file's config, tensors, sizes and provenance; the
//! text and JSON are `crate::inspect`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::open_model;
use crate::inspect;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn execute(args: InspectArgs, out: &mut dyn Write) -> Result<()> {
    let InspectArgs { model, json } = args;
    let file = open_model(&model)?;
    let m = file.model().map_err(|e| super::model_error(&model, e))?;
    if json {
        writeln!(out, "{}", inspect::json(&m))?;
    } else {
        write!(out, "{}", inspect::text(&m))?;
    }
    Ok(())
}
