//! The speech model and sample that `linrt asr` and the Python package carry, so
//! that recognition works anywhere without a file.

pub static MODEL: &[u8] = include_bytes!("../../models/asr-commands/asr-commands.int8.lrt");
pub static SAMPLE: &[u8] = include_bytes!("../../models/asr-commands/sample.wav");
pub const MODEL_NAME: &str = "models/asr-commands/asr-commands.int8.lrt (built in)";
pub const SAMPLE_NAME: &str = "models/asr-commands/sample.wav (built in)";
