"""Type stubs of linrt's native module (the docstrings are the Rust code's)."""
import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, os.PathLike]

class LinrtError(Exception):
    """An error from linrt, with the message the command line prints."""

def convert(
    onnx_path: _Path,
    out_path: _Path,
    dtype: Literal["f32", "f16", "int8"] = "int8",
    *,
    int8_block: int = 0,
    verify: bool = True,
    steps: int = 16,
    tolerance: Optional[float] = None,
    min_cosine: Optional[float] = None,
    n_heads: Optional[int] = None,
    activation: Optional[Literal["relu", "gelu"]] = None,
    norm: Optional[Literal["post", "pre"]] = None,
    prefix: Optional[str] = None,
    ignore_metadata: bool = False,
) -> Dict[str, Any]:
    """Converts an ONNX model to a .lrt file, verified against tract first, as
    `linrt convert` does; returns its report (`linrt convert --json`'s object)."""

def load_audio(path: _Path) -> Tuple[int, npt.NDArray[np.float32]]:
    """Reads a whole audio file (WAV, FLAC, Ogg Vorbis, MP3, AAC in MP4/M4A) as mono
    float32 samples: (sample_rate, samples)."""

class Model:
    """A linear-attention model read from a .lrt file (memory-mapped, validated once)."""

    def __init__(self, path: _Path) -> None: ...
    @staticmethod
    def bundled() -> "Model":
        """The speech model the package carries (int8, 66 command words)."""
    @property
    def config(self) -> Dict[str, Any]:
        """The hyperparameters, as `linrt inspect --json` gives them."""
    @property
    def metadata(self) -> Dict[str, str]:
        """The file's metadata (app.*, provenance), as strings."""
    def arena_bytes(self, max_chunk: int = 1) -> int:
        """Bytes a session's arena takes (state and workspace) for chunks of up to max_chunk."""
    def session(self, max_chunk: int = 1) -> "Session":
        """A new stream of this model (see Session)."""

class Session:
    """One stream of a model: its state, stepped one position at a time or a chunk of
    positions at once (the causal parallel form), saved and restored as bytes."""

    def __init__(self, model: Model, max_chunk: int = 1) -> None: ...
    def step(self, x: Union[int, npt.NDArray[np.floating]]) -> npt.NDArray[np.float32]:
        """One position: a token id for a token model, else input_dim floats.
        Returns the outputs, shape (output_dim,)."""
    def step_chunk(self, xs: Union[Sequence[int], npt.NDArray[Any]]) -> npt.NDArray[np.float32]:
        """Several positions in one causal pass: token ids, or (positions, input_dim)
        floats. Returns the outputs, shape (positions, output_dim)."""
    def reset(self) -> None:
        """Back to the state of a fresh stream."""
    @property
    def position(self) -> int:
        """Positions stepped since the start (or the last reset)."""
    def save_state(self) -> bytes:
        """The stream's state as bytes, for restore_state."""
    def restore_state(self, state: bytes) -> None:
        """Continues from a state save_state wrote."""

class Recognizer:
    """A streaming speech recognizer: audio in (accept_waveform), text out
    (partial, finals, events)."""

    def __init__(
        self,
        model: Union[Model, _Path, None] = None,
        *,
        decoder: Optional[Literal["beam", "greedy"]] = None,
        beam: Optional[int] = None,
        words: Optional[Sequence[str]] = None,
        grammar: Optional[str] = None,
        hotwords: Optional[str] = None,
        hotword_weight: float = 1.5,
        boundary_penalty: Optional[float] = None,
        silence_empty: float = 2.4,
        silence_after_speech: float = 1.2,
        max_utterance: float = 20.0,
    ) -> None: ...
    def accept_waveform(self, sample_rate: int, samples: npt.NDArray[Any]) -> None:
        """Feeds mono audio (float32/float64 in [-1, 1], or int16) at any rate."""
    def input_finished(self) -> None:
        """The end of the stream: the last final, then a fresh stream."""
    def reset(self) -> None:
        """Drops the stream's audio so far without a final."""
    def partial(self) -> str:
        """The text of the utterance being heard ("" between utterances)."""
    def finals(self) -> List[Dict[str, Any]]:
        """Every final so far: text, start, end, decided_at, words."""
    def events(self) -> List[Dict[str, Any]]:
        """The partial and final events since the last call, oldest first."""
    @property
    def sample_rate(self) -> int:
        """The sample rate of the model's input."""
