//! `linrt asr`: transcribe an audio file (WAV, FLAC, Ogg Vorbis, MP3, M4A), a stream
//! on stdin or the microphone, live.
//!
//! The audio is read in chunks (10 ms by default, as a sound card delivers it),
//! resampled to the model's rate, fed to the [`Recognizer`], and every event is
//! printed as it comes: on a terminal a partial line rewritten in place and one line
//! per utterance; with `--json` one object per line. Whatever was decoded before a
//! failure (truncated file, lost device) is printed before the error.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use linrt::decode::EndpointConfig;
use linrt::{AlignedBytes, ModelFile};
use serde_json::json;

use crate::asr::decoding::{with_recognizer, DecodeOptions, DecoderKind, DEFAULT_HOTWORD_WEIGHT};
use crate::asr::latency::Latencies;
use crate::asr::{AsrInfo, Event, Recognizer, Utterance};
use crate::audio::compressed::{is_compressed_stream, CompressedReader};
use crate::audio::pcm::{PcmEncoding, PcmReader};
use crate::audio::resample::Resampler;
use crate::audio::wav::WavReader;
use crate::audio::AudioSource;
use crate::{bundled, cpu};

#[derive(clap::Args, Debug)]
pub struct AsrArgs {
    /// An audio file (WAV, FLAC, Ogg Vorbis, MP3, AAC in MP4/M4A), or - for stdin (raw
    /// PCM as --format/--rate/--channels say, or a WAV, FLAC, Ogg or MP3 stream).
    /// Without it (and without --mic): the bundled sample.
    pub input: Option<String>,
    /// The speech model (.lrt with app.task asr-ctc). Default: the bundled int8 model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Listen to the microphone (ALSA) until interrupted.
    #[arg(long, conflicts_with = "input")]
    pub mic: bool,
    /// Capture device name for --mic (see --list-devices).
    #[arg(long, default_value = "default")]
    pub device: String,
    /// List the capture devices and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Raw PCM on stdin: sample encoding (arecord's names: S16_LE, S24_3LE, S32_LE, FLOAT_LE, U8).
    #[arg(long, default_value = "S16_LE")]
    pub format: String,
    /// Raw PCM on stdin: samples per second.
    #[arg(long, default_value_t = 16000)]
    pub rate: u32,
    /// Raw PCM on stdin: interleaved channels (averaged to mono).
    #[arg(long, default_value_t = 1)]
    pub channels: u16,
    /// Print one JSON object per line: partials, finals (with word times) and, with --stats, the figures.
    #[arg(long)]
    pub json: bool,
    /// Print the real-time factor, per-chunk latency, endpoint delay and peak memory at the end.
    #[arg(long)]
    pub stats: bool,
    /// Pace a file as if it were live audio, to watch the partials come.
    #[arg(long)]
    pub realtime: bool,
    /// Stop after this many seconds of audio (a microphone otherwise runs until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Audio per chunk fed to the recognizer, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub chunk_ms: u32,
    /// Endpoint: seconds of silence that end an utterance in which nothing was decoded.
    #[arg(long, default_value_t = 2.4)]
    pub silence_empty: f32,
    /// Endpoint: seconds of silence that end an utterance after something was decoded.
    #[arg(long, default_value_t = 1.2)]
    pub silence_after_speech: f32,
    /// Endpoint: longest utterance in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub max_utterance: f32,
    /// Force a kernel path (default: LINRT_KERNELS, else the fastest).
    #[arg(long)]
    pub kernels: Option<String>,
    /// Decoder: beam (prefix beam search over a lexicon; the default when the model
    /// lists its words in app.words, or with --words/--grammar) or greedy (the best
    /// symbol per step, any spelling).
    #[arg(long, value_enum)]
    pub decoder: Option<DecoderKind>,
    /// Beam decoder: hypotheses kept per step [default: 16].
    #[arg(long)]
    pub beam: Option<usize>,
    /// Beam decoder: the words it may say, whitespace-separated (# comments),
    /// instead of the model's app.words.
    #[arg(long)]
    pub words: Option<PathBuf>,
    /// Beam decoder: the phrases it may say, one per line, with slots
    /// (`<digit> = one | two` then `set timer for <digit>+ minutes`; ? + * after a
    /// word or slot). An utterance that is no whole phrase gives no final.
    #[arg(long)]
    pub grammar: Option<PathBuf>,
    /// Beam decoder: words or phrases to favour, one per line, each optionally
    /// ending in ` :weight` (log-probability bonus; default --hotword-weight).
    #[arg(long)]
    pub hotwords: Option<PathBuf>,
    /// Beam decoder: the bonus of a hotword without its own weight.
    #[arg(long, default_value_t = DEFAULT_HOTWORD_WEIGHT)]
    pub hotword_weight: f32,
    /// Beam decoder: the log-probability cost of ending a word where the model
    /// emitted no separator (a letter that cannot continue a whole word starts the
    /// next one); `inf`: only the separator ends a word.
    #[arg(long)]
    pub boundary_penalty: Option<f32>,
    /// Beam decoder: leave out the model's word prior (app.word_prior: how likely
    /// each of its words is after each other, which tells "to" from "two"). A
    /// --words list replaces the model's words and so its prior too.
    #[arg(long)]
    pub no_word_prior: bool,
}

pub fn run(args: AsrArgs, out: &mut dyn Write) -> Result<()> {
    if args.list_devices {
        return list_devices(out);
    }
    if !(1..=1000).contains(&args.chunk_ms) {
        bail!("--chunk-ms must be between 1 and 1000, not {}", args.chunk_ms);
    }
    let endpoint = endpoint_config(&args)?;
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration must be a positive number of seconds, not {d}");
        }
    }
    // Ctrl-C ends the stream like the end of a file: what was heard is decoded and printed.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second handler (tests run several commands in one process) is not an error worth failing for.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let kernels = cpu::requested(args.kernels.as_deref())?;

    // The model: a file (memory-mapped) or the bundled bytes (copied once to align them).
    let (file, built_in);
    let (model, model_name) = match &args.model {
        Some(path) => {
            file = ModelFile::open(path).map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
            (file.model().map_err(|e| super::model_error(path, e))?, path.display().to_string())
        }
        None => {
            built_in = AlignedBytes::from_slice(bundled::MODEL);
            (built_in.model().map_err(|e| anyhow!("the bundled model: {e}"))?, bundled::MODEL_NAME.to_string())
        }
    };
    let info = AsrInfo::from_model(&model).with_context(|| model_name.clone())?;
    if !args.hotword_weight.is_finite() {
        bail!("--hotword-weight must be a finite number, not {}", args.hotword_weight);
    }
    let options = DecodeOptions {
        kind: args.decoder,
        beam: args.beam,
        words: args.words.clone(),
        grammar: args.grammar.clone(),
        hotwords: args.hotwords.clone(),
        hotword_weight: args.hotword_weight,
        boundary_penalty: args.boundary_penalty,
        no_word_prior: args.no_word_prior,
    };
    let (source, source_name) = open_source(&args)?;
    let names = (source_name.as_str(), model_name.as_str());
    with_recognizer(&model, info, &options, endpoint, kernels, |recognizer| {
        stream(recognizer, source, names, &args, &interrupted, out)
    })
}

/// Feeds the source to the recognizer chunk by chunk and prints what it decodes.
fn stream(
    recognizer: &mut Recognizer,
    mut source: Box<dyn AudioSource>,
    (source_name, model_name): (&str, &str),
    args: &AsrArgs,
    interrupted: &AtomicBool,
    out: &mut dyn Write,
) -> Result<()> {
    let limit = args.duration;
    let model_rate = recognizer.info().sample_rate;
    let tty = !args.json && std::io::stdout().is_terminal();
    if !args.json {
        eprintln!("linrt asr: {source_name} → {model_name}");
    }
    let mut printer = Printer { json: args.json, tty, last_partial: String::new() };
    let mut stats = Stats::default();

    let rate = source.sample_rate();
    let mut resampler = Resampler::new(rate, model_rate);
    let chunk = ((rate as u64 * args.chunk_ms as u64) / 1000).max(1) as usize;
    let (mut input, mut resampled) = (Vec::with_capacity(chunk), Vec::new());
    let started = Instant::now();
    let mut read_samples = 0u64;
    let failure = loop {
        if interrupted.load(Ordering::SeqCst) || limit.is_some_and(|l| read_samples as f64 >= l * rate as f64) {
            break None;
        }
        input.clear();
        match source.read(&mut input, chunk) {
            Ok(0) => break None,
            Ok(n) => read_samples += n as u64,
            Err(e) => break Some(e),
        }
        if args.realtime {
            let due = Duration::from_secs_f64(read_samples as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let t0 = Instant::now();
        resampled.clear();
        resampler.process(&input, &mut resampled);
        if let Err(e) = recognizer.accept(&resampled) {
            break Some(e);
        }
        let events = recognizer.events();
        stats.chunk(t0.elapsed(), &events);
        printer.print(out, &events)?;
    };
    // End of input (or a failure after which nothing more can come): decode what is
    // left; if that fails too, what was decoded still becomes a final.
    let t0 = Instant::now();
    resampled.clear();
    resampler.finish(&mut resampled);
    let seconds = recognizer.seconds() + resampled.len() as f64 / model_rate as f64;
    let mut failure = failure;
    if let Err(e) = recognizer.accept(&resampled).and_then(|_| recognizer.finish()) {
        recognizer.abandon();
        failure = failure.or(Some(e));
    }
    let events = recognizer.events();
    stats.chunk(t0.elapsed(), &events);
    printer.print(out, &events)?;
    printer.clear_partial(out)?;
    if args.stats {
        stats.report(out, seconds, chunk as f64 / rate as f64, args.json)?;
    }
    if let Some(e) = failure {
        return Err(e.context(format!("{source_name}: stopped after {seconds:.2} s of audio")));
    }
    if !args.json && args.input.is_none() && !args.mic {
        eprintln!(
            "\nNext: `linrt asr speech.wav` for a file (any rate, channels, 8/16/24/32-bit or float), \
             `arecord -f S16_LE -r 16000 -c 1 -t raw | linrt asr -` for stdin, \
             `linrt asr --mic` for the microphone (--list-devices, --device NAME); --json, --stats."
        );
    }
    Ok(())
}

fn endpoint_config(args: &AsrArgs) -> Result<EndpointConfig> {
    crate::asr::decoding::endpoint_config(
        [args.silence_empty, args.silence_after_speech, args.max_utterance],
        ["--silence-empty", "--silence-after-speech", "--max-utterance"],
    )
}

/// The audio source the arguments name, with a name for messages.
fn open_source(args: &AsrArgs) -> Result<(Box<dyn AudioSource>, String)> {
    if args.mic {
        return open_mic(&args.device);
    }
    match args.input.as_deref() {
        None => Ok((Box::new(WavReader::new(bundled::SAMPLE)?), bundled::SAMPLE_NAME.to_string())),
        Some("-") => {
            let mut stdin = BufReader::with_capacity(1 << 16, std::io::stdin());
            // A WAV stream (arecord -t wav, sox … -t wav -) or a compressed one describes
            // itself; raw PCM does not.
            let head = stdin.fill_buf().context("cannot read stdin")?;
            if head.starts_with(b"RIFF") {
                let wav = WavReader::new(stdin).context("stdin")?;
                let name = format!("stdin ({}, {} Hz, {} ch)", wav.encoding_name(), wav.sample_rate(), wav.channels());
                return Ok((Box::new(wav), name));
            }
            if is_compressed_stream(head) {
                let reader = CompressedReader::from_pipe(stdin).context("stdin")?;
                let name = format!("stdin ({}, {} Hz)", reader.codec(), reader.sample_rate());
                return Ok((Box::new(reader), name));
            }
            let encoding: PcmEncoding = args.format.parse()?;
            let name = format!("stdin ({encoding}, {} Hz, {} ch)", args.rate, args.channels);
            Ok((Box::new(PcmReader::new(stdin, encoding, args.rate, args.channels)?), name))
        }
        Some(path) => crate::audio::open_file(Path::new(path)),
    }
}

#[cfg(feature = "mic")]
fn open_mic(device: &str) -> Result<(Box<dyn AudioSource>, String)> {
    let mic = crate::audio::mic::Microphone::open(device, 16000)?;
    let name = format!("microphone {device} ({} Hz)", mic.sample_rate());
    Ok((Box::new(mic), name))
}

#[cfg(not(feature = "mic"))]
fn open_mic(_device: &str) -> Result<(Box<dyn AudioSource>, String)> {
    bail!("this linrt was built without microphone support: rebuild with `--features mic` (needs libasound2-dev)")
}

#[cfg(feature = "mic")]
fn list_devices(out: &mut dyn Write) -> Result<()> {
    let devices = crate::audio::mic::list_devices()?;
    if devices.is_empty() {
        writeln!(out, "no capture devices found")?;
    }
    for (name, description) in devices {
        writeln!(out, "{name}\n    {}", description.replace('\n', "\n    "))?;
    }
    Ok(())
}

#[cfg(not(feature = "mic"))]
fn list_devices(_out: &mut dyn Write) -> Result<()> {
    bail!("this linrt was built without microphone support: rebuild with `--features mic` (needs libasound2-dev)")
}

/// Prints events as text (a live partial line on a terminal) or JSON lines.
struct Printer {
    json: bool,
    tty: bool,
    last_partial: String,
}

impl Printer {
    fn print(&mut self, out: &mut dyn Write, events: &[Event]) -> Result<()> {
        for event in events {
            match event {
                Event::Partial(u) => {
                    // A word separator alone changes nothing the reader sees.
                    if u.text == self.last_partial {
                        continue;
                    }
                    self.last_partial = u.text.clone();
                    if self.json {
                        writeln!(
                            out,
                            "{}",
                            json!({"type": "partial", "text": u.text, "start": round(u.start), "end": round(u.end)})
                        )?;
                    } else if self.tty {
                        write!(out, "\r\x1b[K{}", u.text)?;
                    }
                }
                Event::Final(u) => {
                    self.last_partial.clear();
                    if self.json {
                        writeln!(out, "{}", final_json(u))?;
                    } else {
                        let clear = if self.tty { "\r\x1b[K" } else { "" };
                        writeln!(out, "{clear}[{:>8.2} – {:>8.2}] {}", u.start, u.end, u.text)?;
                    }
                }
            }
        }
        out.flush()?;
        Ok(())
    }

    fn clear_partial(&mut self, out: &mut dyn Write) -> Result<()> {
        if self.tty && !self.last_partial.is_empty() {
            write!(out, "\r\x1b[K")?;
        }
        Ok(())
    }
}

fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn final_json(u: &Utterance) -> serde_json::Value {
    let words: Vec<_> = u
        .words
        .iter()
        .map(|w| {
            let mut o = json!({"word": w.text, "start": round(w.start), "end": round(w.end)});
            if let Some(c) = w.confidence {
                o["confidence"] = json!((c as f64 * 1000.0).round() / 1000.0);
            }
            o
        })
        .collect();
    json!({"type": "final", "text": u.text, "start": round(u.start), "end": round(u.end), "words": words})
}

/// What `--stats` reports, in memory that does not grow with the stream.
#[derive(Default)]
struct Stats {
    chunk_seconds: Latencies,
    /// Per final: audio seconds from the end of its last word to the endpoint.
    delay_sum: f64,
    delay_max: f64,
    finals: u64,
}

impl Stats {
    fn chunk(&mut self, took: Duration, events: &[Event]) {
        self.chunk_seconds.add(took.as_secs_f64());
        for e in events {
            if let Event::Final(u) = e {
                let delay = (u.decided_at - u.end).max(0.0);
                self.delay_sum += delay;
                self.delay_max = self.delay_max.max(delay);
                self.finals += 1;
            }
        }
    }

    fn report(&self, out: &mut dyn Write, audio_seconds: f64, chunk_seconds: f64, json: bool) -> Result<()> {
        let latencies = &self.chunk_seconds;
        let compute = latencies.sum();
        let rtf = if audio_seconds > 0.0 { compute / audio_seconds } else { 0.0 };
        let (p50, p95, max) = (latencies.quantile(0.5), latencies.quantile(0.95), latencies.max());
        let chunks = latencies.count();
        let finals = self.finals;
        let mean_delay = if finals == 0 { 0.0 } else { self.delay_sum / finals as f64 };
        let max_delay = self.delay_max;
        let peak = peak_memory_bytes();
        if json {
            writeln!(
                out,
                "{}",
                json!({"type": "stats", "audio_s": round(audio_seconds), "compute_s": compute, "rtf": rtf,
                       "chunk_ms": chunk_seconds * 1e3, "chunks": chunks,
                       "chunk_latency_ms": {"p50": p50 * 1e3, "p95": p95 * 1e3, "max": max * 1e3},
                       "final_delay_s": {"mean": mean_delay, "max": max_delay, "finals": finals},
                       "peak_memory_bytes": peak})
            )?;
        } else {
            let mut e = std::io::stderr().lock();
            writeln!(e, "\naudio            {audio_seconds:.2} s in {compute:.3} s: real-time factor {rtf:.5} ({:.0}× faster than real time)", 1.0 / rtf.max(1e-12))?;
            writeln!(
                e,
                "chunk latency    {:.0} ms chunks ({}): p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms",
                chunk_seconds * 1e3,
                chunks,
                p50 * 1e3,
                p95 * 1e3,
                max * 1e3
            )?;
            writeln!(
                e,
                "end of speech → final  {mean_delay:.2} s mean, {max_delay:.2} s max over {} finals (the endpoint rule's silence, in audio time), plus one chunk's latency",
                finals
            )?;
            match peak {
                Some(b) => writeln!(e, "peak memory      {:.1} MB resident", b as f64 / 1e6)?,
                None => writeln!(e, "peak memory      unknown on this system")?,
            }
        }
        Ok(())
    }
}

/// The process's peak resident set (VmHWM), where /proc tells it.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
