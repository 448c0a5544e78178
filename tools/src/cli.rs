//! Argument parsing and dispatch: each subcommand's arguments and body are in
//! `commands/`. Every failure ends as one line on stderr, `error: …`, and a
//! non-zero exit code.

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::commands;
pub use crate::commands::model_error;

#[derive(Parser, Debug)]
#[command(
    name = "linrt",
    version,
    about = "Run linear-attention transformers as RNNs: convert, verify, inspect, run, bench, asr, generate, info"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert an ONNX export to a .lrt file, verified against tract.
    #[command(
        after_help = "Examples:\n  linrt convert model.onnx -o model.lrt\n  linrt convert model.onnx -o model.lrt --n-heads 8 --activation gelu\n\nHyperparameters come from the exporter's linrt.* metadata (models/export_onnx.py writes them),\nthe flags below, and the graph itself; sources that disagree are an error."
    )]
    Convert(commands::convert::ConvertArgs),
    /// Compare a .lrt file with the ONNX it came from, on random inputs.
    #[command(after_help = "Example:\n  linrt verify model.lrt model.onnx --steps 64")]
    Verify(commands::verify::VerifyArgs),
    /// Show a .lrt file's config, tensors, sizes, arena bytes and provenance.
    #[command(after_help = "Example:\n  linrt inspect model.lrt --json")]
    Inspect(commands::inspect::InspectArgs),
    /// Run a model over an .npy of inputs ([T] token ids or [T, d_in] float32), one step per row.
    #[command(
        after_help = "Example:\n  linrt run model.lrt --input x.npy --output y.npy\n  linrt run model.lrt --input x.npy --output y.npy --chunk 64   # causal parallel form"
    )]
    Run(commands::run::RunArgs),
    /// Measure per-step latency against tract (same ONNX, in process) and the memory roofline.
    #[command(
        after_help = "Examples:\n  linrt bench model.lrt --onnx model.onnx\n  linrt bench model.lrt --json --kernels avx2\n  linrt bench model.lrt --prefill 512 --batch 8\n  linrt bench --paper --out-dir plots"
    )]
    Bench(commands::bench::BenchArgs),
    /// Transcribe speech, streaming: a WAV file, raw PCM on stdin, or the microphone.
    #[command(
        after_help = "Examples:\n  linrt asr                                   # the bundled sample with the bundled model\n  linrt asr speech.wav --json\n  linrt asr recording.flac                   # also .ogg (Vorbis), .mp3, .m4a (AAC)\n  arecord -f S16_LE -r 16000 -c 1 -t raw | linrt asr -\n  linrt asr --mic --device hw:1,0 --stats\n  linrt asr long.wav --realtime             # paced like live audio"
    )]
    Asr(commands::asr::AsrArgs),
    /// Generate tokens with a token model: text, a copy, or a PNG grid of images.
    #[command(
        after_help = "Examples:\n  linrt generate --model models/digits-gen/digits-gen.int8.lrt --out digits.png --seed 1\n  linrt generate --model models/copy/copy.f32.lrt --prompt '|3141592653|' --greedy\n  linrt generate --model model.lrt --tokens 1,5,9 --steps 64 --temperature 0.8 --top-p 0.9 --json"
    )]
    Generate(commands::generate::GenerateArgs),
    /// Show this build and CPU: version, format version, CPU features, kernel path.
    Info(commands::info::InfoArgs),
}

/// Entry point of the binary: parses, runs, prints errors; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // A panic is a bug; it still ends as one line and a non-zero code.
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| execute(cli.command));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            eprintln!("error: internal error (please report): {}", msg.unwrap_or_default());
            101
        }
    }
}

/// An error chain on one line, as the CLI prints it: line breaks and tabs become
/// spaces and other control characters are escaped, so that a name quoted from a
/// hostile file (an ONNX input called "T\n...") can neither split the line nor
/// drive the terminal.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in format!("{e:#}").chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

pub fn execute(command: Command) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Convert(args) => commands::convert::execute(args, &mut out),
        Command::Verify(args) => commands::verify::execute(args, &mut out),
        Command::Inspect(args) => commands::inspect::execute(args, &mut out),
        Command::Run(args) => commands::run::execute(args, &mut out),
        Command::Bench(args) => commands::bench::execute(args, &mut out),
        Command::Asr(args) => commands::asr::run(args, &mut out),
        Command::Generate(args) => commands::generate::run(args, &mut out),
        Command::Info(args) => commands::info::execute(args, &mut out),
    }
}

#[cfg(test)]
mod tests {
    /// Found by the onnx fuzz target: an input named with control characters split
    /// the error over two lines and sent backspaces to the terminal.
    #[test]
    fn errors_quoting_hostile_names_stay_one_plain_line() {
        let e = anyhow::anyhow!("input \u{8}\u{7}T\n\rx\tz has ONNX element type 0").context("converting");
        assert_eq!(super::one_line(&e), "converting: input \\u{8}\\u{7}T  x z has ONNX element type 0");
    }
}
