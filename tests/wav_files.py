"""WAV files as a client might send them, written with Python's wave module."""

import io
import wave

import numpy as np


def wav_bytes(frames, width: int = 2, rate: int = 16_000, channels: int = 1) -> bytes:
    """A WAV file of `frames`: raw bytes, or integer samples [N] / [N, channels] packed
    little-endian `width` bytes each (unsigned for 8-bit, as WAV has it)."""
    if not isinstance(frames, bytes):
        samples = np.asarray(frames, np.int64).ravel()
        frames = samples.astype("<i2").tobytes() if width == 2 else \
            b"".join(int(v).to_bytes(width, "little", signed=width > 1) for v in samples)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(frames)
    return buffer.getvalue()
