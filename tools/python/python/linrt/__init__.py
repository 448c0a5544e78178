"""linrt: linear-attention transformers ("Transformers are RNNs") in their recurrent
form, from Python.

    import linrt
    report = linrt.convert("model.onnx", "model.lrt", dtype="int8")   # verified against tract
    session = linrt.Model("model.lrt").session()
    y = session.step(x)                                              # one position, fixed-size state

    recognizer = linrt.Recognizer()            # the bundled speech model, beam over its words
    rate, samples = linrt.load_audio("speech.flac")
    recognizer.accept_waveform(rate, samples)
    recognizer.input_finished()
    print([f["text"] for f in recognizer.finals()])

Everything runs in the Rust runtime the `linrt` command line uses, with the GIL
released while it computes.
"""
from ._linrt import LinrtError, Model, Recognizer, Session, convert, load_audio

__all__ = ["LinrtError", "Model", "Recognizer", "Session", "convert", "load_audio"]
