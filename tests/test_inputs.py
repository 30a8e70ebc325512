"""The files of a batch (deepsep/inputs.py): folders expanded, inputs given twice once, the output
folder left out, and track names that stay with their file when the batch changes (resumes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepsep import inputs
from deepsep.audio import FFMPEG_SUFFIXES
from deepsep.cli import main
from deepsep.errors import DeepsepError
from deepsep.inputs import collect_inputs, input_files, plan_inputs, unique_tracks
from deepsep.options import OutputOptions


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_a_name_is_bare_only_when_no_other_input_shares_it(tmp_path):
    wav, mp3 = tmp_path / "lib" / "talk.wav", tmp_path / "lib" / "talk.mp3"
    assert unique_tracks([wav]) == ["talk"]
    # every file of a shared name gets a name of its own, whatever the order: never the bare one,
    # which an earlier run may have written for one of them
    assert unique_tracks([wav, mp3]) == ["talk_wav", "talk_mp3"]
    assert unique_tracks([mp3, wav]) == ["talk_mp3", "talk_wav"]
    a, b = tmp_path / "a" / "call.wav", tmp_path / "b" / "call.wav"
    assert unique_tracks([a, b]) == ["call_wav_a", "call_wav_b"]
    assert unique_tracks([b, a]) == ["call_wav_b", "call_wav_a"]
    c = tmp_path / "b" / "call.flac"
    assert unique_tracks([a, b, c]) == ["call_wav_a", "call_wav_b", "call_flac"]
    # the same folder name twice: a name from the file's whole path
    x, y = tmp_path / "1" / "x" / "call.wav", tmp_path / "2" / "x" / "call.wav"
    names = unique_tracks([x, y])
    assert len(set(names)) == 2 and all(n.startswith("call_wav_x_") for n in names)
    assert unique_tracks([y, x]) == names[::-1]
    # a file named like another one's qualified name does not take it
    names = unique_tracks([wav, mp3, tmp_path / "lib" / "talk_wav.flac"])
    assert len(set(names)) == 3 and names[:2] == ["talk_wav_lib", "talk_mp3"]
    # MUSDB's .stem.mp4 beside a plain .mp4
    assert unique_tracks([tmp_path / "s.stem.mp4", tmp_path / "s.mp4"]) == ["s_stem_mp4", "s_mp4"]
    # --suffix: only files of the same folder share outputs
    assert unique_tracks([a, b, c], per_folder=True) == ["call", "call_wav", "call_flac"]


def test_resume_after_a_file_of_the_same_name_is_added(tmp_path, write_audio, monkeypatch):
    """The user audit's case: talk.wav separated, talk.mp3 added, the same --skip-existing command
    again: talk.mp3 is separated, not skipped for talk.wav's stems."""
    monkeypatch.chdir(tmp_path)
    write_audio("lib/talk.wav")
    args = ("separate", "--input", "lib", "-m", "tiny-test", "-o", "out", "--skip-existing", "--threads", "1")
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["talk"]
    write_audio("lib/talk.mp3", format="MP3")
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "skipped" not in res.output and "2 of 2 separated" in res.output, res.output
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.wav")) == [
        "talk/noise.wav", "talk/voice.wav", "talk_mp3/noise.wav", "talk_mp3/voice.wav",
        "talk_wav/noise.wav", "talk_wav/voice.wav"]
    res = run(*args)  # and now both are done
    assert res.exit_code == 0 and "2 skipped" in res.output, res.output


def test_an_input_given_twice_is_separated_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, other = touch(tmp_path / "call.wav"), touch(tmp_path / "lib" / "other.wav")
    assert collect_inputs(["call.wav", "./call.wav", str(call), "lib", "lib/other.wav", "lib/../call.wav"]) == [
        Path("call.wav"), Path("lib/other.wav")]  # the first of each, as given
    link = tmp_path / "link.wav"
    link.symlink_to(call)
    assert collect_inputs([link, call]) == [link]
    assert other.is_file()


def test_the_same_file_twice_on_the_command_line(tmp_path, write_audio, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_audio("call.wav")
    res = run("separate", "call.wav", "./call.wav", "-m", "tiny-test", "-o", "out", "--threads", "1")
    assert res.exit_code == 0 and "1 of 1 separated" in res.output, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["call"]


def test_a_folder_leaves_out_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call = touch(tmp_path / "call.wav")
    for stem in ("voice", "noise"):
        touch(tmp_path / "outputs" / "call" / f"{stem}.wav")
        touch(tmp_path / "cleaned" / "call" / f"{stem}.wav")
    assert input_files(["."], out_dir=Path("outputs")) == [
        Path("call.wav"), Path("cleaned/call/noise.wav"), Path("cleaned/call/voice.wav")]
    assert input_files([tmp_path], out_dir=Path("cleaned")) == [call, *sorted((tmp_path / "outputs").rglob("*.wav"))]
    assert input_files([], str(tmp_path), out_dir=tmp_path / "cleaned")[0] == call  # --input DIR too
    # an output folder given another way (absolute, ./, a link) is the same folder
    assert input_files(["."], out_dir=tmp_path / "outputs") == input_files(["./"], out_dir=Path("./outputs/")) == [
        Path("call.wav"), Path("cleaned/call/noise.wav"), Path("cleaned/call/voice.wav")]
    (tmp_path / "o").symlink_to(tmp_path / "outputs")
    assert Path("outputs/call/voice.wav") not in input_files(["."], out_dir=Path("o"))
    # a file given by name is separated, wherever it is
    assert input_files(["outputs/call/voice.wav"], out_dir=Path("outputs")) == [Path("outputs/call/voice.wav")]
    # an output folder that holds the input folder leaves it as it is (-o .)
    assert len(input_files(["."], out_dir=Path("."))) == 5
    with pytest.raises(DeepsepError, match="no audio files in outputs"):
        input_files(["outputs"], out_dir=Path("outputs/call"))


def test_a_folder_run_again_does_not_separate_its_outputs(tmp_path, write_audio, monkeypatch):
    """The user audit's case: `deepsep separate -m voice .` twice (the second --skip-existing)."""
    monkeypatch.chdir(tmp_path)
    write_audio("call.wav")
    assert run("separate", "-m", "tiny-test", ".", "--threads", "1", "-q").exit_code == 0
    res = run("separate", "-m", "tiny-test", ".", "--threads", "1", "--skip-existing")
    assert res.exit_code == 0 and "0 of 1 separated" in res.output and "1 skipped" in res.output, res.output
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["call"]


def test_input_custom_prefers_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeepsepError, match=r"input folder not found: custom \(.*\./input.*\)"):
        input_files([], "custom")
    touch(tmp_path / "input" / "example.flac")
    assert input_files([], "custom") == [Path("input/example.flac")]  # the README's quick start
    touch(tmp_path / "custom" / "mine.wav")
    assert input_files([], "custom") == [Path("custom/mine.wav")]  # the folder named wins
    with pytest.raises(DeepsepError, match="input folder not found: nope$"):
        input_files([], "nope")
    with pytest.raises(DeepsepError, match="not a folder"):
        input_files([], "custom/mine.wav")


def test_input_custom_on_the_command_line(tmp_path, write_audio, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_audio("custom/mine.wav")
    res = run("separate", "--input", "custom", "-m", "tiny-test", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "outputs" / "mine" / "voice.wav").is_file()


def test_a_folder_takes_every_suffix_the_reader_reads(tmp_path):
    assert FFMPEG_SUFFIXES <= inputs.INPUT_SUFFIXES and {".mkv", ".mov", ".wav", ".mp3"} <= inputs.INPUT_SUFFIXES
    for name in ("a.mkv", "b.MOV", "c.wav", "d.txt", ".e.mkv"):
        touch(tmp_path / name)
    assert [p.name for p in collect_inputs([tmp_path])] == ["a.mkv", "b.MOV", "c.wav"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_a_folder_separates_mkv_and_mov(tmp_path, write_audio):
    src = write_audio("src.wav")
    (tmp_path / "lib").mkdir()
    for ext in ("mkv", "mov"):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-c:a", "pcm_s16le",
                        str(tmp_path / "lib" / f"clip.{ext}")], check=True)
    res = run("separate", "--input", str(tmp_path / "lib"), "-m", "tiny-test", "-o", str(tmp_path / "out"), "--threads", "1")
    assert res.exit_code == 0 and "2 of 2 separated" in res.output, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_mkv", "clip_mov"]


def test_suffix_outputs_of_qualified_names_are_not_inputs(tmp_path):
    """--suffix: a rerun on the folder does not take call_wav_clean.wav (call.wav's output beside
    call.flac) for an input."""
    folder = tmp_path / "in"
    files = [touch(folder / n) for n in ("call.flac", "call.wav", "call_flac_clean.wav", "call_wav_clean.wav",
                                         "call_clean.wav", "talk_clean.wav")]
    batch, dropped = plan_inputs(collect_inputs([folder]), OutputOptions(suffix="_clean"))
    assert [(p.name, t) for p, t in batch] == [("call.flac", "call_flac"), ("call.wav", "call_wav"),
                                              ("talk_clean.wav", "talk_clean")]
    assert sorted(p.name for p in dropped) == ["call_clean.wav", "call_flac_clean.wav", "call_wav_clean.wav"]
    assert len(files) == 6


def test_a_folder_input_leaves_hidden_folders_out(tmp_path, write_audio):
    write_audio("lib/talk.wav")
    write_audio("lib/.Trash/old.wav")
    write_audio("lib/.cache/x/clip.wav")
    assert input_files([str(tmp_path / "lib")]) == [tmp_path / "lib" / "talk.wav"]
