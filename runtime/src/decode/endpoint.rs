//! Endpoint detection with sherpa-onnx's rules: an utterance ends after enough
//! trailing silence (where silence is "nothing decoded"), or when it gets too long.

/// One rule: it fires when the trailing silence and the utterance length both reach
/// their minimum, and (if asked) the utterance holds more than silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointRule {
    pub must_contain_nonsilence: bool,
    /// Seconds.
    pub min_trailing_silence: f32,
    /// Seconds.
    pub min_utterance_length: f32,
}

impl EndpointRule {
    fn fires(&self, trailing_silence: f32, utterance_length: f32) -> bool {
        let contains_nonsilence = utterance_length > trailing_silence;
        (contains_nonsilence || !self.must_contain_nonsilence)
            && trailing_silence >= self.min_trailing_silence
            && utterance_length >= self.min_utterance_length
    }
}

/// sherpa-onnx's defaults: 2.4 s of silence with nothing decoded, 1.2 s after
/// something was decoded, 20 s at most per utterance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    pub rules: [EndpointRule; 3],
}

impl Default for EndpointConfig {
    fn default() -> Self {
        let rule = |must, silence, length| EndpointRule {
            must_contain_nonsilence: must,
            min_trailing_silence: silence,
            min_utterance_length: length,
        };
        EndpointConfig { rules: [rule(false, 2.4, 0.0), rule(true, 1.2, 0.0), rule(false, 0.0, 20.0)] }
    }
}

impl EndpointConfig {
    /// The number (1-based) of the first rule that fires, if any.
    pub fn detect(&self, utterance_length: f32, trailing_silence: f32) -> Option<usize> {
        self.rules.iter().position(|r| r.fires(trailing_silence, utterance_length)).map(|i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sherpa_defaults() {
        let e = EndpointConfig::default();
        // Nothing decoded (silence = length): rule 1 at 2.4 s.
        assert_eq!(e.detect(2.3, 2.3), None);
        assert_eq!(e.detect(2.4, 2.4), Some(1));
        // Something decoded: rule 2 at 1.2 s of trailing silence.
        assert_eq!(e.detect(3.0, 1.1), None);
        assert_eq!(e.detect(3.0, 1.2), Some(2));
        // Too long: rule 3 at 20 s, whatever the silence.
        assert_eq!(e.detect(19.9, 0.0), None);
        assert_eq!(e.detect(20.0, 0.0), Some(3));
    }
}
