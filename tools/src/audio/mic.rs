//! Microphone capture through ALSA (cargo feature `mic`).
//!
//! [`Microphone`] opens a PCM for capture, takes the first sample format it can read
//! (S16, then S32, then float), asks for one channel (averaging several when the device
//! insists), and reports the rate the device actually runs at; the caller resamples.
//! Device names are ALSA's: `default`, `hw:1,0`, `plughw:1`, `plug:dsnoop`, ….

use std::ffi::CString;
use std::io;

use alsa::device_name::HintIter;
use alsa::pcm::{Access, Format, HwParams, IoFormat, PCM};
use alsa::{Direction, Output, ValueOr};
use anyhow::{anyhow, bail, Result};

use super::AudioSource;

/// ~16 ms periods: `read` returns at least this often, and the wakeups stay cheap.
const PERIOD_US: u32 = 16_000;
/// ~0.5 s of device buffer, so a slow model step is absorbed instead of overrunning.
const BUFFER_US: u32 = 500_000;
/// Back-to-back failed reads after which recovering is pointless (each retry would fail alike).
const MAX_RECOVERIES: u32 = 100;

/// Capture-capable PCM names with their descriptions, as ALSA's name hints list them
/// (`arecord -L`); playback-only devices are left out. Multi-line descriptions are
/// joined with ", ". An empty list is not an error: see [`format_device_list`].
pub fn list_devices() -> Result<Vec<(String, String)>> {
    quiet_alsa_errors();
    let hints = HintIter::new_str(None, "pcm").map_err(|e| anyhow!("cannot list ALSA devices: {}", describe(e)))?;
    Ok(hints
        .filter(|hint| hint.direction != Some(Direction::Playback))
        .filter_map(|hint| {
            let description = hint.desc.unwrap_or_default();
            let description: Vec<&str> = description.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            Some((hint.name?, description.join(", ")))
        })
        .collect())
}

/// The listing `linrt asr --list-devices` prints: one device a line, or a note saying
/// why the list may be empty.
pub fn format_device_list(devices: &[(String, String)]) -> String {
    if devices.is_empty() {
        return "no ALSA capture devices found: no sound card, or none this user may open \
                (check `arecord -l`, /dev/snd and membership of the `audio` group)\n"
            .to_string();
    }
    let width = devices.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    devices.iter().map(|(name, description)| format!("{name:width$}  {description}\n")).collect()
}

/// The sample formats we read, in order of preference. All native-endian, as ALSA's
/// `io_*` accessors require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleKind {
    S16,
    S32,
    F32,
}

impl SampleKind {
    const ALL: [SampleKind; 3] = [SampleKind::S16, SampleKind::S32, SampleKind::F32];

    fn format(self) -> Format {
        match self {
            SampleKind::S16 => Format::s16(),
            SampleKind::S32 => Format::s32(),
            SampleKind::F32 => Format::float(),
        }
    }
}

/// The last block read from the device, in the negotiated format.
enum Buffer {
    S16(Vec<i16>),
    S32(Vec<i32>),
    F32(Vec<f32>),
}

/// One sample as f32 in [-1, 1].
trait ToF32: IoFormat + Default {
    fn to_f32(self) -> f32;
}

impl ToF32 for i16 {
    fn to_f32(self) -> f32 {
        f32::from(self) / 32768.0
    }
}

impl ToF32 for i32 {
    fn to_f32(self) -> f32 {
        (f64::from(self) / 2_147_483_648.0) as f32
    }
}

impl ToF32 for f32 {
    fn to_f32(self) -> f32 {
        // A driver bug must not hand the model a NaN or a sample outside the contract.
        if self.is_finite() {
            self.clamp(-1.0, 1.0)
        } else {
            0.0
        }
    }
}

/// An open ALSA capture stream, read as mono f32 through [`AudioSource`].
pub struct Microphone {
    pcm: PCM,
    device: String,
    kind: SampleKind,
    /// The device's channel count; frames are averaged down to mono.
    channels: usize,
    sample_rate: u32,
    /// Frames per device period: the most one `read` asks ALSA for, so it returns promptly.
    period: usize,
    buffer: Buffer,
    overruns: u64,
    /// Set once the device is gone; every later `read` repeats the message.
    failed: Option<String>,
}

impl Microphone {
    /// Opens `device` for capture at (or as near as the device allows to) `sample_rate`.
    /// Capture starts with the first `read`.
    pub fn open(device: &str, sample_rate: u32) -> Result<Microphone> {
        let name = CString::new(device).map_err(|_| anyhow!("capture device name {device:?} contains a NUL byte"))?;
        quiet_alsa_errors();
        let pcm = PCM::open(&name, Direction::Capture, false).map_err(|e| open_error(device, e))?;
        let (kind, channels, rate, period) = configure(&pcm, device, sample_rate)?;
        let buffer = match kind {
            SampleKind::S16 => Buffer::S16(Vec::new()),
            SampleKind::S32 => Buffer::S32(Vec::new()),
            SampleKind::F32 => Buffer::F32(Vec::new()),
        };
        Ok(Microphone {
            pcm,
            device: device.to_string(),
            kind,
            channels,
            sample_rate: rate,
            period,
            buffer,
            overruns: 0,
            failed: None,
        })
    }

    /// How many times the device overran (samples arrived faster than they were read and
    /// some were lost) since `open`; each was recovered from.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The ALSA name it was opened with.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The negotiated setup, for a verbose log line: "S16_LE, 1 channel, 16000 Hz, 256-frame periods".
    pub fn describe(&self) -> String {
        let channels = match self.channels {
            1 => "1 channel".to_string(),
            n => format!("{n} channels averaged to mono"),
        };
        format!("{}, {channels}, {} Hz, {}-frame periods", self.kind.format(), self.sample_rate, self.period)
    }

    /// Blocks until `frames` frames are in `self.buffer`; returns how many arrived.
    fn read_frames(&mut self, frames: usize) -> alsa::Result<usize> {
        let len = frames * self.channels;
        match &mut self.buffer {
            Buffer::S16(buf) => read_into(&self.pcm, buf, len),
            Buffer::S32(buf) => read_into(&self.pcm, buf, len),
            Buffer::F32(buf) => read_into(&self.pcm, buf, len),
        }
    }

    /// Appends the first `frames` frames of `self.buffer` to `out` as mono.
    fn mix(&self, frames: usize, out: &mut Vec<f32>) {
        let len = frames * self.channels;
        match &self.buffer {
            Buffer::S16(buf) => mix_into(&buf[..len], self.channels, out),
            Buffer::S32(buf) => mix_into(&buf[..len], self.channels, out),
            Buffer::F32(buf) => mix_into(&buf[..len], self.channels, out),
        }
    }
}

impl AudioSource for Microphone {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Never returns 0 unless `max` is 0: a microphone does not end. A device that stops
    /// delivering because it is gone is an error, repeated by every later call.
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize> {
        if let Some(message) = &self.failed {
            bail!("{message}");
        }
        if max == 0 {
            return Ok(0);
        }
        let frames = max.min(self.period);
        let mut recoveries = 0;
        loop {
            match self.read_frames(frames) {
                Ok(0) => {
                    // A blocking read should not come back empty; wait rather than spin.
                    let _ = self.pcm.wait(Some(PERIOD_US / 1000 + 1));
                }
                Ok(got) => {
                    self.mix(got, out);
                    return Ok(got);
                }
                Err(e) => {
                    let overrun = io::Error::from_raw_os_error(e.errno()).kind() == io::ErrorKind::BrokenPipe;
                    if overrun {
                        self.overruns += 1;
                    }
                    recoveries += 1;
                    // snd_pcm_recover re-prepares after an overrun (EPIPE), resumes after a
                    // suspend (ESTRPIPE) and retries after a signal (EINTR); anything else,
                    // chiefly ENODEV / EBADFD after an unplug, it hands back.
                    let recovered = match self.pcm.try_recover(e, true) {
                        Ok(()) if recoveries < MAX_RECOVERIES => Ok(()),
                        Ok(()) => Err(e),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = recovered {
                        let message = format!("capture device {} disappeared: {}", self.device, describe(e));
                        self.failed = Some(message.clone());
                        bail!(message);
                    }
                }
            }
        }
    }
}

/// Negotiates format, channels, rate and period; returns them with the period in frames.
fn configure(pcm: &PCM, device: &str, sample_rate: u32) -> Result<(SampleKind, usize, u32, usize)> {
    let setup = |what: &str, e: alsa::Error| anyhow!("capture device {device} refused {what}: {}", describe(e));
    let hw = HwParams::any(pcm).map_err(|e| setup("its hardware parameters", e))?;
    hw.set_access(Access::RWInterleaved)
        .map_err(|_| anyhow!("capture device {device} does not offer interleaved reads; try plug:{device}"))?;
    let kind = SampleKind::ALL.into_iter().find(|kind| hw.test_format(kind.format()).is_ok()).ok_or_else(|| {
        anyhow!("capture device {device} offers none of the sample formats linrt reads (S16, S32, FLOAT); try plug:{device}")
    })?;
    hw.set_format(kind.format()).map_err(|e| setup("its own sample format", e))?;
    let channels = hw.set_channels_near(1).map_err(|e| setup("a channel count", e))?;
    let rate = hw.set_rate_near(sample_rate, ValueOr::Nearest).map_err(|e| setup("a sample rate", e))?;
    hw.set_period_time_near(PERIOD_US, ValueOr::Nearest).map_err(|e| setup("a period time", e))?;
    hw.set_buffer_time_near(BUFFER_US, ValueOr::Nearest).map_err(|e| setup("a buffer time", e))?;
    pcm.hw_params(&hw).map_err(|e| setup("the negotiated setup", e))?;
    let period = hw.get_period_size().map_err(|e| setup("to report its period", e))?;
    let channels = usize::try_from(channels).unwrap_or(0);
    let period = usize::try_from(period).unwrap_or(0);
    if channels == 0 || period == 0 || rate == 0 {
        bail!("capture device {device} negotiated an unusable setup ({channels} channels, {rate} Hz, {period}-frame periods)");
    }
    Ok((kind, channels, rate, period))
}

/// One blocking `readi` of `len` interleaved samples into `buf`; returns frames read.
fn read_into<S: ToF32>(pcm: &PCM, buf: &mut Vec<S>, len: usize) -> alsa::Result<usize> {
    // Zeroed on every call: ALSA's `file` plugin (the CI test device) leaves the caller's
    // buffer untouched once its input file ends, which would replay stale samples forever.
    buf.clear();
    buf.resize(len, S::default());
    pcm.io_checked::<S>()?.readi(buf)
}

/// Averages interleaved frames of `channels` samples into mono f32.
fn mix_into<S: ToF32>(samples: &[S], channels: usize, out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend(samples.iter().map(|&s| s.to_f32()));
    } else {
        let scale = 1.0 / channels as f32;
        out.extend(samples.chunks_exact(channels).map(|frame| frame.iter().map(|&s| s.to_f32()).sum::<f32>() * scale));
    }
}

/// The one-line message for a failed `snd_pcm_open`.
fn open_error(device: &str, e: alsa::Error) -> anyhow::Error {
    match io::Error::from_raw_os_error(e.errno()).kind() {
        io::ErrorKind::NotFound => anyhow!("no capture device named {device}; see `linrt asr --list-devices`"),
        io::ErrorKind::ResourceBusy => anyhow!(
            "capture device {device} is busy: another program is recording from it \
             (close that program, or use a shared device such as `default` or `dsnoop`)"
        ),
        io::ErrorKind::PermissionDenied => {
            anyhow!("no permission to open capture device {device} (is this user in the `audio` group?)")
        }
        _ => anyhow!("cannot open capture device {device}: {}", describe(e)),
    }
}

/// An ALSA error as the OS describes its errno, e.g. "No such device (os error 19)".
fn describe(e: alsa::Error) -> String {
    format!("{} in {}", io::Error::from_raw_os_error(e.errno()), e.func())
}

/// alsa-lib prints its own diagnostics to stderr ("ALSA lib pcm.c:2666:(...) Unknown PCM x")
/// before returning the error code we turn into one clear line. This sends the calling
/// thread's copies to an in-memory buffer instead, from now on; each call replaces the
/// buffer, so it holds only what alsa-lib said since the last open or listing.
fn quiet_alsa_errors() {
    // Failing to install the handler only leaves alsa-lib's messages on stderr.
    let _ = Output::local_error_handler();
}

#[cfg(test)]
mod tests {
    //! These run against virtual devices built from ALSA's `file` plugin (capture data
    //! comes from a raw file) over the `null` plugin, so they need libasound but no sound
    //! card. `ALSA_CONFIG_PATH` points alsa-lib at a config written here; it replaces
    //! the system's alsa.conf, so only the devices below exist for this test process.

    use std::f64::consts::PI;
    use std::path::Path;
    use std::sync::OnceLock;

    use super::*;

    const RATE: u32 = 16_000;

    /// 1 s at 16 kHz sweeping from 200 Hz to 2 kHz: no stretch of it repeats, so a
    /// dropped, doubled or shifted block of samples cannot go unnoticed.
    fn sweep() -> Vec<i16> {
        (0..RATE)
            .map(|i| {
                let t = f64::from(i) / f64::from(RATE);
                (12_000.0 * (2.0 * PI * (200.0 * t + 900.0 * t * t)).sin()).round() as i16
            })
            .collect()
    }

    /// 1 s of stereo: the sweep left, a 1 kHz tone right.
    fn stereo() -> Vec<[i16; 2]> {
        let tone =
            (0..RATE).map(|i| (8_000.0 * (2.0 * PI * 1000.0 * f64::from(i) / f64::from(RATE)).sin()).round() as i16);
        sweep().into_iter().zip(tone).map(|(l, r)| [l, r]).collect()
    }

    /// The sweep as `Microphone` should deliver it.
    fn expected() -> Vec<f32> {
        sweep().into_iter().map(|s| f32::from(s) / 32768.0).collect()
    }

    fn write_raw(path: &Path, samples: impl IntoIterator<Item = i16>) {
        // Native-endian, as the device hands the bytes over in the negotiated (native) format.
        let bytes: Vec<u8> = samples.into_iter().flat_map(i16::to_ne_bytes).collect();
        write_whole(path, &bytes);
    }

    /// Writes through a file of this process's own and a rename, so that a test process
    /// running at the same time never reads a half-written file from the shared folder.
    fn write_whole(path: &Path, bytes: &[u8]) {
        let part = path.with_extension(format!("part-{}", std::process::id()));
        std::fs::write(&part, bytes).unwrap();
        std::fs::rename(&part, path).unwrap();
    }

    /// The test devices. ALSA's `file` plugin must be the top of each chain: its `infile`
    /// is read correctly only through `readi`. A converting plugin above it (`plug`
    /// resampling, `lfloat`, ...) reads it through mmap, where alsa-lib 1.2.8 reads as much
    /// of the file as the buffer offers on each `mmap_begin` while the plugin commits only
    /// a period of it, so the rest is skipped and the stream is scrambled. Restrictions go below
    /// it instead, on the `null` slave, and the file holds samples in the format the
    /// device ends up offering.
    /// - `linrt_test`: the sweep, S16_LE 16 kHz mono. It accepts any format, rate and
    ///   channel count and hands over the file's bytes as whatever was negotiated;
    /// - `linrt_test_stereo`: a stereo file on a `null` slave bound by `multi` to exactly
    ///   two channels, so it refuses mono;
    /// - `linrt_test_float`: the sweep as 32-bit floats, on an `lfloat` slave, which
    ///   offers only float formats;
    /// - `linrt_test_out`: a playback-only hint that `list_devices` must leave out
    ///   (name hints carry the direction as a `|IOIDOutput` suffix of the description).
    fn config(dir: &Path) -> String {
        let file = |name: &str| dir.join(name).display().to_string();
        format!(
            r#"
pcm.linrt_test {{
    type file
    slave.pcm {{ type null }}
    file "/dev/null"
    infile "{sweep}"
    format "raw"
    hint {{ show on description "linrt test capture: a 1 s sweep, S16_LE 16 kHz mono" }}
}}
pcm.linrt_test_stereo {{
    type file
    slave.pcm {{
        type multi
        slaves.a {{ pcm {{ type null }} channels 2 }}
        bindings.0 {{ slave a channel 0 }}
        bindings.1 {{ slave a channel 1 }}
    }}
    file "/dev/null"
    infile "{stereo}"
    format "raw"
}}
pcm.linrt_test_float {{
    type file
    slave.pcm {{ type lfloat slave {{ pcm {{ type null }} format S16_LE }} }}
    file "/dev/null"
    infile "{float}"
    format "raw"
}}
pcm.linrt_test_out {{
    type null
    hint {{ show on description "linrt test playback only|IOIDOutput" }}
}}
"#,
            sweep = file("sweep.raw"),
            stereo = file("stereo.raw"),
            float = file("float.raw"),
        )
    }

    /// Writes the files and the config once per test process and points alsa-lib at it,
    /// before any test here makes its first ALSA call (each calls this first).
    fn setup() {
        static DONE: OnceLock<()> = OnceLock::new();
        DONE.get_or_init(|| {
            // One folder for every run (the files are the same each time), so that runs
            // leave nothing behind but it.
            let dir = std::env::temp_dir().join("linrt-mic-test");
            std::fs::create_dir_all(&dir).unwrap();
            write_raw(&dir.join("sweep.raw"), sweep());
            write_raw(&dir.join("stereo.raw"), stereo().into_iter().flatten());
            let float: Vec<u8> = expected().into_iter().flat_map(f32::to_ne_bytes).collect();
            write_whole(&dir.join("float.raw"), &float);
            let path = dir.join("asound.conf");
            write_whole(&path, config(&dir).as_bytes());
            // alsa-lib reads this on its first configuration lookup. Only these tests use
            // ALSA in this binary, and they all come through here first.
            std::env::set_var("ALSA_CONFIG_PATH", &path);
        });
    }

    fn capture(mic: &mut Microphone, count: usize, block: usize) -> Vec<f32> {
        let mut out = Vec::new();
        while out.len() < count {
            let want = block.min(count - out.len());
            let got = mic.read(&mut out, want).unwrap();
            assert!(got > 0 && got <= want, "read returned {got} for max {want}");
        }
        assert_eq!(out.len(), count);
        out
    }

    #[test]
    fn captures_the_file_sample_for_sample_then_silence() {
        setup();
        let mut mic = Microphone::open("linrt_test", RATE).unwrap();
        assert_eq!(mic.sample_rate(), RATE);
        assert_eq!(mic.describe(), format!("S16_LE, 1 channel, 16000 Hz, {}-frame periods", mic.period));
        // 700 is no multiple of the period, so reads come back short and long.
        let got = capture(&mut mic, RATE as usize, 700);
        let first_diff = got.iter().zip(&expected()).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "no leading offset or conversion expected");
        // The file plugin cannot signal the end of its file: it keeps delivering, and
        // what it delivers past the end is the zeroed buffer, i.e. silence.
        let after = capture(&mut mic, 1000, 700);
        assert!(after.iter().all(|&s| s == 0.0), "past the end of the file: {:?}", &after[..10]);
        assert_eq!(mic.overruns(), 0);
        assert_eq!(mic.read(&mut Vec::new(), 0).unwrap(), 0);
    }

    #[test]
    fn averages_a_device_that_insists_on_stereo() {
        setup();
        let mut mic = Microphone::open("linrt_test_stereo", RATE).unwrap();
        assert_eq!(mic.channels, 2);
        let got = capture(&mut mic, RATE as usize, 512);
        for (i, (&g, [l, r])) in got.iter().zip(stereo()).enumerate() {
            let want = (f32::from(l) / 32768.0 + f32::from(r) / 32768.0) * 0.5;
            assert!((g - want).abs() < 1e-6, "sample {i}: {g} != {want}");
        }
    }

    #[test]
    fn falls_back_to_float_when_the_device_offers_no_integers() {
        setup();
        let mut mic = Microphone::open("linrt_test_float", RATE).unwrap();
        assert_eq!(mic.kind, SampleKind::F32);
        let got = capture(&mut mic, RATE as usize, 1000);
        assert_eq!(got.iter().zip(&expected()).position(|(a, b)| a != b), None);
    }

    #[test]
    fn raw_file_device_takes_any_rate_without_converting() {
        setup();
        // The file device negotiates whatever is asked and does not resample: at 8 kHz it
        // plays the same samples, at half speed. The reported rate is the negotiated one.
        let mut mic = Microphone::open("linrt_test", 8_000).unwrap();
        assert_eq!(mic.sample_rate(), 8_000);
        let got = capture(&mut mic, 1000, 1000);
        assert_eq!(got, expected()[..1000]);
    }

    #[test]
    fn unknown_device_is_one_clear_line() {
        setup();
        let e = Microphone::open("linrt_no_such_device", RATE).err().unwrap();
        assert_eq!(e.to_string(), "no capture device named linrt_no_such_device; see `linrt asr --list-devices`");
        let e = Microphone::open("bad\0name", RATE).err().unwrap();
        assert_eq!(e.to_string(), "capture device name \"bad\\0name\" contains a NUL byte");
    }

    #[test]
    fn lists_capture_devices_only() {
        setup();
        let devices = list_devices().unwrap();
        let names: Vec<&str> = devices.iter().map(|(name, _)| name.as_str()).collect();
        assert!(devices
            .contains(&("linrt_test".to_string(), "linrt test capture: a 1 s sweep, S16_LE 16 kHz mono".to_string())));
        assert!(!names.contains(&"linrt_test_out"), "{names:?}");
        let text = format_device_list(&devices);
        assert!(text.contains("linrt_test  linrt test capture"), "{text}");
        assert!(format_device_list(&[]).starts_with("no ALSA capture devices found"));
    }
}
