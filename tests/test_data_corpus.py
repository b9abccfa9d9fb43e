"""The corpus renderer: a MIDI song written here, rendered with the real fluidsynth and SoundFont.

The song (13 s with the 2 s tail) plays each stem alone in its own time slot, so the test can
measure that every stem sounds where its notes are and is silent elsewhere:

    drums  (channel 10)         0-2 s   kick and snare
    bass   (program 33)         3-5 s
    vocals (flute, monophonic)  6-8 s   16 notes
    other  (pad, 3-note chords) 9-11 s
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from fxdata.corpus import RenderOptions, build_corpus, find_fluidsynth, song_split
from fxdata.midi import STEMS, analyze_channels, assign_stems, flatten

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
SR = 44100
# stem -> (first note s, last note end s)
SLOTS = {"drums": (0.0, 2.0), "bass": (3.0, 5.0), "vocals": (6.0, 8.0), "other": (9.0, 11.0)}


def _require_renderer() -> None:
    """Fail (not skip) with the fix when the system packages are missing: ./run installs them."""
    if shutil.which("fluidsynth") is None:
        pytest.fail(
            "the 'fluidsynth' program is missing: run ./run test as root (it installs it) or "
            "'apt-get install fluidsynth timgm6mb-soundfont'"
        )
    if not SOUNDFONT.is_file():
        pytest.fail(f"the SoundFont {SOUNDFONT} is missing: 'apt-get install timgm6mb-soundfont'")


def _write_song(path: Path) -> None:
    """A type-1 MIDI file at 120 bpm (480 ticks per beat: 960 ticks per second)."""
    tps = 960
    events: list[tuple[float, mido.Message]] = []

    def note(channel: int, pitch: int, start: float, end: float, velocity: int = 100) -> None:
        events.append(
            (start, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity))
        )
        events.append((end, mido.Message("note_off", channel=channel, note=pitch)))

    for i in range(8):  # drums: kick and snare every 0.25 s over 0-2 s
        note(9, 36 if i % 2 == 0 else 38, 0.25 * i, 0.25 * i + 0.1)
    events.append((0.0, mido.Message("program_change", channel=1, program=33)))
    for i, pitch in enumerate([40, 43, 45, 47]):
        note(1, pitch, 3.0 + 0.5 * i, 3.0 + 0.5 * (i + 1))
    events.append((0.0, mido.Message("program_change", channel=2, program=73)))
    for i in range(16):
        note(2, 72 + (i % 5), 6.0 + 0.125 * i, 6.0 + 0.125 * (i + 1))
    events.append((0.0, mido.Message("program_change", channel=3, program=89)))
    for pitch in (60, 64, 67):
        note(3, pitch, 9.0, 11.0, velocity=90)
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    mid.tracks.append(meta)
    track = mido.MidiTrack()
    now = 0
    for t, msg in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        tick = round(t * tps)
        track.append(msg.copy(time=tick - now))
        now = tick
    mid.tracks.append(track)
    mid.save(str(path))


def _window_db(x: np.ndarray, start: float, end: float, window: float = 0.25) -> np.ndarray:
    """RMS in dBFS of ``window``-second windows between ``start`` and ``end`` s (float64)."""
    w = round(window * SR)
    seg = x[round(start * SR) : round(end * SR)].astype(np.float64)
    n = seg.shape[0] // w
    frames = seg[: n * w].reshape(n, w, -1)
    return 10 * np.log10(np.mean(frames**2, axis=(1, 2)) + 1e-20)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    _require_renderer()
    base = tmp_path_factory.mktemp("corpus")
    (base / "midi").mkdir()
    _write_song(base / "midi" / "tiny.mid")
    summary = build_corpus(
        base / "out",
        sources=[],
        midi_dirs=[base / "midi"],
        soundfonts=[SOUNDFONT],
        options=RenderOptions(vary_programs=False, min_seconds=5.0),
        workers=1,
        progress=False,
    )
    return base, summary


def test_fluidsynth_is_found() -> None:
    _require_renderer()
    assert Path(find_fluidsynth()).name == "fluidsynth"


def test_corpus_json_describes_the_song(corpus: tuple[Path, dict]) -> None:
    base, summary = corpus
    on_disk = json.loads((base / "out" / "corpus.json").read_text())
    assert on_disk["songs_total"] == summary["songs_total"] == 1
    (entry,) = on_disk["songs"]
    assert entry["song"] == "local__tiny"
    assert entry["source"] == "local" and entry["licence"] == "unknown"
    assert entry["source_file"] == str(base / "midi" / "tiny.mid")
    assert entry["soundfont"] == "TimGM6mb.sf2"
    assert entry["soundfont_package"] in ("timgm6mb-soundfont", "local")
    stems = {int(c): info["stem"] for c, info in entry["channels"].items()}
    assert stems == {9: "drums", 1: "bass", 2: "vocals", 3: "other"}
    assert entry["channels"]["3"]["overlap_fraction"] == pytest.approx(1.0)
    assert entry["channels"]["2"]["overlap_fraction"] == 0.0
    assert entry["duration"] == pytest.approx(13.0, abs=1e-3)  # 11 s of notes + 2 s tail
    assert on_disk["hours"] == pytest.approx(13.0 / 3600, abs=1e-4)
    assert entry["split"] == song_split("local__tiny")
    assert (base / "out" / entry["split"] / "local__tiny" / "song.json").is_file()


def test_stems_sound_only_where_their_notes_are(corpus: tuple[Path, dict]) -> None:
    base, summary = corpus
    folder = base / "out" / summary["songs"][0]["split"] / "local__tiny"
    audio = {}
    for name in (*STEMS, "mixture"):
        data, sr = sf.read(folder / f"{name}.flac", dtype="float64", always_2d=True)
        assert sr == SR and data.shape == (13 * SR, 2), (name, sr, data.shape)
        audio[name] = data
    for stem, (start, end) in SLOTS.items():
        x = audio[stem]
        loud = _window_db(x, start, end)  # one drum hit or melody note per 0.25 s window
        assert loud.min() > -45.0, f"{stem}: quietest window {loud.min():.1f} dBFS during notes"
        before = _window_db(x, 0.0, start) if start > 0 else np.array([-200.0])
        assert before.max() < -90.0, f"{stem}: {before.max():.1f} dBFS before its notes"
        after = _window_db(x, min(end + 1.0, 12.9), 13.0)
        if stem != "other":  # the pad's release may outlast the song's 2 s tail
            assert after.max() < -90.0, f"{stem}: {after.max():.1f} dBFS after its notes"
    total = sum(audio[s] for s in STEMS)
    assert np.abs(total - audio["mixture"]).max() <= 3.0 / 32768.0
    assert np.abs(audio["mixture"]).max() <= 10 ** (-1 / 20) + 1e-4  # -1 dBFS peak


def test_rerun_skips_finished_songs(corpus: tuple[Path, dict]) -> None:
    base, summary = corpus
    marker = base / "out" / summary["songs"][0]["split"] / "local__tiny" / "song.json"
    mtime = marker.stat().st_mtime_ns
    again = build_corpus(
        base / "out",
        sources=[],
        midi_dirs=[base / "midi"],
        soundfonts=[SOUNDFONT],
        options=RenderOptions(vary_programs=False, min_seconds=5.0),
        workers=1,
        progress=False,
    )
    assert again["rendered_this_run"] == 0
    assert again["songs_total"] == 1
    assert marker.stat().st_mtime_ns == mtime
    leftovers = [p.name for p in marker.parent.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_channel_measures_and_stem_rules(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mid"
    _write_song(path)
    infos = analyze_channels(flatten(mido.MidiFile(str(path))))
    assert infos[2].notes == 16 and infos[2].overlap_fraction == 0.0
    assert infos[2].sounding_s == pytest.approx(2.0, abs=2e-3)
    assert infos[3].overlap_fraction == pytest.approx(1.0)
    assert infos[1].program == 33 and infos[2].median_pitch >= 72
    # A polyphonic lead is not the vocals stand-in; a lower-pitched monophonic line is not either.
    assert "vocals" not in assign_stems({c: i for c, i in infos.items() if c != 2}).values()


def test_unreadable_midi_is_skipped_with_a_reason(tmp_path: Path) -> None:
    _require_renderer()
    (tmp_path / "midi").mkdir()
    (tmp_path / "midi" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.warns(UserWarning, match="local__broken"):
        summary = build_corpus(
            tmp_path / "out",
            sources=[],
            midi_dirs=[tmp_path / "midi"],
            soundfonts=[SOUNDFONT],
            workers=1,
            progress=False,
        )
    assert summary["songs_total"] == 0
    assert "local__broken" in summary["skipped"]


def test_cli_corpus_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mixfx.cli import main

    assert main(["corpus", "build", "--help"]) == 0
    help_text = capsys.readouterr().out
    for option in ("--out", "--source", "--midi-dir", "--soundfont", "--max-seconds", "--workers"):
        assert option in help_text
    _require_renderer()
    (tmp_path / "midi").mkdir()
    _write_song(tmp_path / "midi" / "tiny.mid")
    argv = ["corpus", "build", "--out", str(tmp_path / "out"), "--midi-dir",
            str(tmp_path / "midi"), "--soundfont", str(SOUNDFONT), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 songs, 0.00 hours" in out and "1 rendered" in out
    summary = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert summary["songs"][0]["duration"] == pytest.approx(13.0, abs=1e-3)
    assert main(["corpus", "build", "--out", str(tmp_path / "x"), "--source", "nope"]) == 1
    assert "unknown MIDI source 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("valid", "test"), [(0.1, 0.1), (0.25, 0.05)])
def test_song_split_shares_over_many_ids(valid: float, test: float) -> None:
    """The shares of 20000 ids lie within 4σ of (1 − valid − test, valid, test)."""
    n = 20000
    counts = {"train": 0, "valid": 0, "test": 0}
    for i in range(n):
        counts[song_split(f"package__song{i}", valid=valid, test=test)] += 1
    for split, share in (("train", 1 - valid - test), ("valid", valid), ("test", test)):
        sigma = (share * (1 - share) / n) ** 0.5
        assert abs(counts[split] / n - share) <= 4 * sigma, (split, counts)
    # The split of an id depends on the id alone: the same answer every time.
    assert [song_split(f"package__song{i}") for i in range(50)] == [
        song_split(f"package__song{i}") for i in range(50)
    ]
