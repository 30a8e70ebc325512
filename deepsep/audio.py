"""Audio in and out, in blocks: readers (libsndfile, ffmpeg as fallback), streaming resampling,
and stem writers that write to a temporary name and rename when complete.

Arrays here are numpy ``float32`` shaped ``(channels, time)``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, DeepsepError

#: extensions that ``--input DIR`` picks up
AUDIO_EXTENSIONS = {
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf",
    ".w64", ".rf64", ".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka",
}
#: output formats: name -> (libsndfile format, {bits: subtype})
OUTPUT_FORMATS = {
    "wav": ("WAV", {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}),
    "flac": ("FLAC", {16: "PCM_16", 24: "PCM_24"}),
    "mp3": ("MP3", {16: "MPEG_LAYER_III"}),  # lossy formats: the bit depth is the default, 16, only
    "ogg": ("OGG", {16: "VORBIS"}),
    "opus": ("OGG", {16: "OPUS"}),
}
CLIP_POLICIES = ("rescale", "clamp", "none")
#: the fields of a --filename template, and the default one (Demucs' layout without the model folder)
FILENAME_FIELDS = ("model", "track", "stem", "ext")
DEFAULT_FILENAME = "{track}/{stem}.{ext}"
#: the sample rates a lossy codec stores; other input rates are resampled to the next one up (or the top one)
CODEC_RATES = {
    "MPEG_LAYER_III": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    "OPUS": (8000, 12000, 16000, 24000, 48000),
}
#: --mp3-bitrate (kbit/s, constant) -> libsndfile's compression level (measured: 0.0 gives 320, 0.15 256, ...)
MP3_LEVELS = {320: 0.0, 256: 0.15, 224: 0.3, 192: 0.4, 160: 0.5, 128: 0.65, 112: 0.7, 96: 0.75}


def codec_rate(subtype: str, rate: int) -> int:
    """The sample rate a stem is stored at: ``rate``, unless the codec cannot store it (see :data:`CODEC_RATES`)."""
    rates = CODEC_RATES.get(subtype)
    if not rates or rate in rates:
        return rate
    return next((r for r in rates if r > rate), rates[-1])


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int | None  # None when the decoder cannot tell before decoding


class AudioReader:
    """Reads a file block by block; checks that samples are finite. ``warnings``: what a user
    should know about the file that does not stop it (a truncated file, filled once its blocks are read)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise AudioError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise AudioError(f"{self.path}: is a folder, not an audio file")
        if self.path.stat().st_size == 0:
            raise AudioError(f"{self.path}: empty file")
        self._sf: sf.SoundFile | None = None
        self._ffmpeg_promised: int | None = None  # the frames ffprobe's duration promises (ffmpeg path)
        self._started = False  # whether blocks() has read from the file already
        try:
            self._sf = sf.SoundFile(sf_name(self.path))
            self.info = AudioInfo(self._sf.samplerate, self._sf.channels, self._sf.frames)
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            self.info, self._ffmpeg_promised = _ffprobe(self.path, e)
        if self.info.channels < 1 or self.info.sample_rate < 1:
            raise AudioError(f"{self.path}: no audio stream")
        if self.info.frames == 0:
            raise AudioError(f"{self.path}: the audio is empty (0 samples)")
        self.warnings: list[str] = []
        promised = wav_promised_frames(self.path)
        if promised and self.info.frames is not None and promised > self.info.frames:
            self._warn_truncated(promised, self.info.frames)

    def _warn_truncated(self, promised: int, held: int, reason: str | None = None) -> None:
        """The one warning of every truncated input (a WAV, whose header libsndfile corrects before
        reading; an MP3 or FLAC whose decoder stops short; a file ffmpeg decodes in part)."""
        sr = self.info.sample_rate
        how = f"the file holds {held / sr:.2f} s" if reason is None else f"decoding stops at {held / sr:.2f} s ({reason})"
        self.warnings.append(f"{self.path}: truncated{'' if reason is None else ' or damaged'}: its header promises "
                             f"{promised / sr:.2f} s, {how}; separating what is there")

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Yield (channels, n) float32 blocks of at most ``frames`` samples each: only samples the
        decoder returned. When it stops short of the length the header promised, the signal ends
        there, with a warning (see :meth:`_warn_truncated`), and ``info.frames`` becomes what was read."""
        source = self._sf_blocks(frames) if self._sf is not None else self._ffmpeg_checked_blocks(frames)
        position = 0
        for block in source:
            if not np.isfinite(block).all():
                bad = int(np.argmax(~np.isfinite(block).all(axis=0)))
                t = (position + bad) / self.info.sample_rate
                raise AudioError(f"{self.path}: NaN or infinite samples (first at {t:.2f} s)")
            position += block.shape[-1]
            yield block
        if position == 0:
            raise AudioError(f"{self.path}: the audio is empty (0 samples)")

    def _sf_blocks(self, frames: int) -> Iterator[np.ndarray]:
        """libsndfile's blocks, as many frames each as its reads return (``SoundFile.blocks`` yields
        whole blocks, stale buffer contents included, when a truncated MP3 decodes fewer frames than
        the header promised); reading stops at a short read or a decoder error."""
        assert self._sf is not None
        if self._started:  # each call reads the whole signal (a level pass may come before separation):
            self._sf.close()  # opened again, as a decoder that stopped at a cut may not seek back
            self._sf = sf.SoundFile(sf_name(self.path))
        self._started = True
        buffer = np.empty((frames, self.info.channels), dtype=np.float32)
        read, error = 0, None
        while error is None:
            n, error = _decode_into(self._sf, buffer)
            if n:
                yield buffer[:n].T.copy()  # a copy: the buffer is reused
            read += n
            if n < frames:
                break
        self._ended(read, error)

    def _ended(self, read: int, error: str | None) -> None:
        """After libsndfile's last read: ``read`` frames in all, ``error`` the decoder's (a truncated
        FLAC: 'lost sync' where its data ends). Nothing read and an error: the file cannot be decoded;
        fewer frames than promised: the truncated file's warning, and ``info.frames`` what was read."""
        promised = self.info.frames
        if read == 0 and (error is not None or promised):
            sr = self.info.sample_rate
            raise AudioError(f"{self.path}: cannot decode ({error or 'nothing decodes'}"
                             + (f"; its header promises {promised / sr:.2f} s)" if promised else ")"))
        if promised is not None and 0 < read < promised:
            self._warn_truncated(promised, read, error)
            self.info = replace(self.info, frames=read)

    def _ffmpeg_checked_blocks(self, frames: int) -> Iterator[np.ndarray]:
        """ffmpeg's blocks; when it reported decoding errors and stopped short of ffprobe's duration
        (a truncated m4a), the truncated file's warning."""
        read, complaint = yield from _ffmpeg_blocks(self.path, self.info, frames)
        promised = self._ffmpeg_promised
        if complaint and promised and 0 < read < FFMPEG_SHORT * promised:
            self._warn_truncated(promised, read, complaint)

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sf_name(path: str | Path) -> str | bytes:
    """``path`` as libsndfile's binding should open it: bytes on POSIX, so that a name that is not valid
    UTF-8 (whose undecodable bytes Python holds as surrogates, which the binding cannot encode) opens
    as the file system stores it; on Windows, whose names are Unicode, the string."""
    return str(path) if os.name == "nt" else os.fsencode(path)


def _decode_into(f: sf.SoundFile, out: np.ndarray) -> tuple[int, str | None]:
    """Decode up to ``len(out)`` frames of ``f`` into ``out`` (frames, channels) float32: (the frames
    decoded, libsndfile's error or None). libsndfile's own call, as ``SoundFile.read`` makes it, but
    without what ``read`` adds: it raises on a decoder error, losing the count of frames the same call
    did decode (a truncated FLAC), and seeks after every read, which fails at that point too."""
    n = int(sf._snd.sf_readf_float(f._file, sf._ffi.from_buffer("float[]", out), len(out)))
    code = sf._snd.sf_error(f._file)
    if not code:
        return n, None
    message = sf._ffi.string(sf._snd.sf_error_number(code)).decode(errors="replace")
    return max(n, 0), re.sub(r"^Error\s*:\s*", "", message).rstrip(".") or f"libsndfile error {code}"


def wav_promised_frames(path: Path) -> int | None:
    """The frames a RIFF/WAVE file's header promises (its data chunk's size over the block size),
    or None: not a RIFF/WAVE file, no data chunk before the end, or a streamed header (size 0 or 0xFFFFFFFF)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if cid == b"fmt ":
                fmt = f.read(min(size, 16))
                block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
                f.seek(size - len(fmt) + (size & 1), 1)
            elif cid == b"data":
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            else:
                f.seek(size + (size & 1), 1)


#: containers libsndfile does not read and ffmpeg does
FFMPEG_SUFFIXES = {".m4a", ".mp4", ".aac", ".alac", ".wma", ".webm", ".mkv", ".mka", ".mov", ".ac3", ".amr"}
#: ffmpeg's decoding counts as stopping short when it complained and gave less than this part of
#: ffprobe's duration (which codecs' priming and bitrate estimates make approximate)
FFMPEG_SHORT = 0.99


def _ffprobe(path: Path, sf_error: Exception) -> tuple[AudioInfo, int | None]:
    """Stream info through ffprobe, for formats libsndfile does not read (m4a, mp4, ...), and the
    frames its duration promises (None when it gives none); ``frames`` is None: not exact."""
    if shutil.which("ffprobe") is None:
        if path.suffix.lower() in FFMPEG_SUFFIXES:
            raise AudioError(f"{path}: reading {path.suffix.lower()} files needs ffmpeg, which is not installed "
                             "(e.g. apt-get install ffmpeg, brew install ffmpeg)")
        raise AudioError(f"{path}: not a readable audio file ({_first_line(sf_error)}; "
                         "ffmpeg, not installed here, would read more formats)")
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration_ts,time_base,duration", "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    streams = json.loads(proc.stdout or "{}").get("streams", []) if proc.returncode == 0 else []
    if not streams:
        raise AudioError(f"{path}: not a readable audio file (neither libsndfile nor ffmpeg can decode it)")
    s = streams[0]
    info = AudioInfo(int(s.get("sample_rate", 0)), int(s.get("channels", 0)), None)
    try:
        promised = round(float(s["duration"]) * info.sample_rate) or None
    except (KeyError, TypeError, ValueError):  # absent, or "N/A"
        promised = None
    return info, promised


def _ffmpeg_blocks(path: Path, info: AudioInfo, frames: int) -> Generator[np.ndarray, None, tuple[int, str | None]]:
    """ffmpeg's decoded blocks; returns (frames decoded, the first line of what ffmpeg complained
    of, or None). Its messages go to a temporary file, not a pipe that could fill while we read."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
           "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(info.channels), "-ar", str(info.sample_rate), "pipe:1"]
    with tempfile.TemporaryFile() as messages:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=messages)
        assert proc.stdout is not None
        step, read = frames * info.channels * 4, 0
        try:
            while True:
                data = proc.stdout.read(step)
                if not data:
                    break
                usable = len(data) - len(data) % (4 * info.channels)
                read += usable // (4 * info.channels)
                yield np.frombuffer(data[:usable], dtype="<f4").reshape(-1, info.channels).T.copy()
            returncode = proc.wait()
            messages.seek(0)
            complaint = messages.read().decode(errors="replace").strip()
            if returncode != 0:
                raise AudioError(f"{path}: ffmpeg cannot decode it ({_first_line(complaint)})")
            return read, _first_line(complaint) if complaint else None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _first_line(e: object) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class StreamResampler:
    """Resample (channels, n) blocks from ``in_rate`` to ``out_rate`` without seams (soxr, HQ)."""

    def __init__(self, in_rate: int, out_rate: int, channels: int):
        self.identity = in_rate == out_rate
        self._rs = None if self.identity else soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return block
        out = self._rs.resample_chunk(np.ascontiguousarray(block.T), last=last)
        return np.ascontiguousarray(out.T)


class Fifo:
    """First in, first out buffer of (channels, n) blocks; ``pop`` pads with zeros past the end."""

    def __init__(self, channels: int):
        self.channels = channels
        self._blocks: list[np.ndarray] = []
        self._size = 0

    def push(self, block: np.ndarray) -> None:
        if block.shape[-1]:
            self._blocks.append(block)
            self._size += block.shape[-1]

    def __len__(self) -> int:
        """Samples held."""
        return self._size

    def pop(self, n: int) -> np.ndarray:
        """The next ``n`` samples, (channels, n)."""
        out = np.zeros((self.channels, n), dtype=np.float32)
        filled = 0
        while filled < n and self._blocks:
            head = self._blocks[0]
            take = min(n - filled, head.shape[-1])
            out[:, filled : filled + take] = head[:, :take]
            filled += take
            if take == head.shape[-1]:
                self._blocks.pop(0)
            else:
                self._blocks[0] = head[:, take:]
        self._size -= filled
        return out


def resample(wav: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole (channels, time) signal (soxr, HQ)."""
    if in_rate == out_rate:
        return wav
    return np.ascontiguousarray(soxr.resample(np.ascontiguousarray(wav.T), in_rate, out_rate, quality="HQ").T)


def subtype_for(fmt: str, bits: int) -> tuple[str, str]:
    """(libsndfile format, subtype) for an output format and bit depth, or a clear error."""
    try:
        major, subtypes = OUTPUT_FORMATS[fmt]
    except KeyError:
        raise DeepsepError(f"unknown output format {fmt!r} (choose from {', '.join(OUTPUT_FORMATS)})") from None
    if bits not in subtypes:
        raise DeepsepError(f"{fmt} cannot store {bits}-bit samples (choose from {sorted(subtypes)})")
    return major, subtypes[bits]


#: the hidden files of a StemWriter: ``.<final name>.partial-<PID>[-<N>][@<HOST>][.w64]``
PARTIAL_NAME = re.compile(r"^\..+\.partial-(?P<pid>\d+)(?:-\d+)?(?:@(?P<host>[^/@]+?))?(?:\.w64)?$")

#: this machine in hidden names: a PID says whether its writer runs only on the machine that wrote it
#: (the workers of a cluster may share an output folder)
HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


_WRITER_IDS = itertools.count()


class StemWriter:
    """Write one stem in blocks to a hidden float32 file; ``convert`` writes it in the output
    format under a second hidden name, ``commit`` renames that to the final name.

    The hidden files lie in ``staging`` (default: the final name's folder, which then must exist),
    named ``.<final name>.partial-<PID>-<N>@<HOST>`` (see :data:`PARTIAL_NAME`; N counts the writers of
    the process, so that files separated at once never share one), so that a stem's folder
    need not exist before the stem is complete. Until ``commit`` nothing exists under the final
    name (an older file there stays untouched); ``discard`` removes the hidden files.
    """

    def __init__(self, final: Path, sample_rate: int, channels: int, staging: Path | None = None):
        self.final = final
        self.sample_rate = sample_rate
        self.channels = channels
        self.partial = (staging or final.parent) / f".{final.name}.partial-{os.getpid()}-{next(_WRITER_IDS)}@{HOST}"
        self.tmp = self.partial.with_name(self.partial.name + ".w64")
        self.tmp.touch()  # an unwritable folder raises OSError with its reason here, not libsndfile's "System error"
        try:
            self._f = sf.SoundFile(sf_name(self.tmp), "w", sample_rate, channels, subtype="FLOAT", format="W64")
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        self.frames = 0
        self.peak = 0.0

    def write(self, block: np.ndarray) -> None:
        """Append (channels, n) samples."""
        if block.shape[-1]:
            self._f.write(block.T)
            self.frames += block.shape[-1]
            self.peak = max(self.peak, float(np.abs(block).max()))

    def convert(self, frames: int, major: str, subtype: str, scale: float, clamp: bool, block: int = 1 << 16,
                mp3_bitrate: int = 320) -> None:
        """Write exactly ``frames`` samples (zero-padded if fewer came) times ``scale`` in the output format
        (a lossy codec that cannot store the rate gets the stem resampled, see :func:`codec_rate`)."""
        self._f.close()
        rate = codec_rate(subtype, self.sample_rate)
        resampler = StreamResampler(self.sample_rate, rate, self.channels) if rate != self.sample_rate else None
        extra = {"compression_level": MP3_LEVELS[mp3_bitrate], "bitrate_mode": "CONSTANT"} if major == "MP3" else {}
        lossy = major in ("MP3", "OGG")
        with sf.SoundFile(sf_name(self.tmp)) as src, sf.SoundFile(
            sf_name(self.partial), "w", rate, self.channels, subtype=subtype, format=major, **extra
        ) as dst:
            left = frames
            while left > 0:
                data = src.read(min(block, left), dtype="float32", always_2d=True)
                if len(data) == 0:
                    data = np.zeros((min(block, left), self.channels), dtype="float32")
                data = data * scale if scale != 1.0 else data
                if clamp or lossy or subtype.startswith("PCM"):  # integers cannot hold |x| > 1: never wrap around
                    data = np.clip(data, -1.0, 1.0 - 2.0**-23 if subtype.startswith("PCM") else 1.0)
                left -= len(data)
                if resampler is not None:
                    data = resampler(np.ascontiguousarray(data.T), last=left <= 0).T
                dst.write(data)
        self.tmp.unlink(missing_ok=True)

    def commit(self) -> Path:
        """Rename the converted stem to its final name (its folder must exist), replacing any file there."""
        os.replace(self.partial, self.final)
        return self.final

    def discard(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.tmp.unlink(missing_ok=True)
        self.partial.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts; a zombie, dead
    but not yet reaped by its parent, does not; on Windows, where signal 0 would end the process,
    every one counts)."""
    if os.name == "nt":
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (Linux ``/proc``; False where unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].startswith("Z")  # the state follows the parenthesised name


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the hidden files that StemWriters of processes no longer running left in ``folder``
    (killed before they could clean up); files of running processes, of other machines (whose
    processes cannot be seen from here) and any other file stay."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # absent, not a folder, unreadable: nothing of ours to remove
        return removed
    for entry in entries:
        m = PARTIAL_NAME.match(entry.name)
        if m and m["host"] in (None, HOST) and entry.is_file(follow_symlinks=False) and not pid_alive(int(m["pid"])):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed
