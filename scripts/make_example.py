"""Make input/noisy_speech.flac: synthetic speech (espeak-ng) in synthetic noise, 16 kHz mono.

Everything is generated here, so the example carries no third-party recording:
espeak-ng's output is not covered by its GPL, and the noise is computed from a fixed seed.

    apt-get install espeak-ng && python scripts/make_example.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TEXT = ("Hello, and thank you for calling. This recording was made in a noisy room, "
        "with a fan running and traffic outside. deepsep separates my voice from the noise.")
RATE = 16000


def main(out: Path = Path("input/noisy_speech.flac"), snr_db: float = 3.0, seed: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), TEXT], check=True)
        speech, rate = sf.read(str(wav), dtype="float32")
    speech = soxr.resample(speech, rate, RATE)
    rng = np.random.default_rng(seed)
    n = speech.size
    t = np.arange(n) / RATE
    pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(1, n // 2 + 2)), n)  # fan
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))  # mains hum
    rumble = np.convolve(rng.standard_normal(n), np.ones(400) / 400, mode="same") * (1 + np.sin(2 * np.pi * 0.2 * t))
    noise = pink / pink.std() + 0.3 * hum + 2.0 * rumble / rumble.std()
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    mix = speech + noise
    mix *= 0.7 / np.abs(mix).max()
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), mix.astype(np.float32), RATE, subtype="PCM_16")
    print(f"wrote {out}: {n / RATE:.1f} s at {RATE} Hz, speech-to-noise {snr_db} dB")


if __name__ == "__main__":
    main()
