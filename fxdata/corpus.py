"""The offline corpus: multitrack songs rendered from Debian-packaged MIDI files with fluidsynth.

Every song is split into the four MUSDB stems (:mod:`fxdata.midi` documents the channel rules and
the ``vocals`` stand-in), each stem is rendered alone with the ``fluidsynth`` command line and a
General MIDI SoundFont (reverb and chorus off: dry stems), all stems are cut to the same length,
scaled by one common gain (peak of every stem and of the mixture at most -1 dBFS), quantized to
16 bits, and the mixture is their sum. The output is the MUSDB layout::

    OUT/corpus.json
    OUT/{train,valid,test}/<song>/{drums,bass,other,vocals,mixture}.flac
    OUT/{train,valid,test}/<song>/song.json     (the marker of a finished song)

A song is written to a temporary folder and renamed into place when complete, so an interrupted
build leaves no half-written song; re-running skips every song that has its ``song.json``. The
split is a deterministic hash of the song's id (80 % train, 10 % valid, 10 % test). The SoundFont
and some instrument choices vary per song, also drawn from a hash of its id.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fxdata.midi import (
    DRUM_CHANNEL,
    STEMS,
    ChannelInfo,
    analyze_channels,
    assign_stems,
    flatten,
    read_midi,
    stem_midi,
)
from fxdsp.io import atomic_write_text

__all__ = [
    "CORPUS_FORMAT",
    "DEBIAN_SOURCES",
    "SOUNDFONT_DIRS",
    "MidiSong",
    "RenderOptions",
    "SoundFont",
    "build_corpus",
    "find_fluidsynth",
    "find_songs",
    "find_soundfonts",
    "render_song",
    "song_split",
]

CORPUS_FORMAT = "mixfx-corpus-1"
SAMPLE_RATE = 44100
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3")
PEAK = 10 ** (-1.0 / 20.0)  # -1 dBFS
# Licences of the Debian packages used (their debian/copyright), for corpus.json.
KNOWN_LICENCES = {
    "openttd-openmsx": "GPL-2.0",
    "planetblupi-music-midi": "GPL-3.0-or-later",
    "freedoom": "BSD-3-Clause (freedoom-license)",
    "mma": "GPL-2.0-or-later",
    "fluid-soundfont-gm": "MIT",
    "fluidr3mono-gm-soundfont": "MIT",
    "musescore-general-soundfont-small": "MIT",
    "musescore-general-soundfont": "MIT",
    "timgm6mb-soundfont": "GPL-2.0",
}
# name -> (Debian package, glob of MIDI files or of WAD files whose D_* lumps are MIDI music)
DEBIAN_SOURCES: dict[str, tuple[str, str]] = {
    "openmsx": ("openttd-openmsx", "/usr/share/games/openttd/baseset/openmsx/*.mid"),
    "planetblupi": ("planetblupi-music-midi", "/usr/share/planetblupi/music/*.mid"),
    "freedoom": ("freedoom", "/usr/share/games/doom/freedoom*.wad"),
    "mma": ("mma", "/usr/share/doc/mma/examples/**/*.mid"),
}
# Instrument variation: the vocal stand-in may be played by one of these GM programs (0-based:
# choir aahs, voice oohs, synth voice, lead 6 "voice", soprano/alto sax, flute, clarinet).
VOCAL_PROGRAMS = (52, 53, 54, 85, 64, 65, 73, 71)


def _licence(package: str) -> str:
    """The licence of a Debian package: the known table, else debian/copyright's first one."""
    if package in KNOWN_LICENCES:
        return KNOWN_LICENCES[package]
    copyright_file = Path("/usr/share/doc") / package / "copyright"
    try:
        for line in copyright_file.read_text(errors="replace").splitlines():
            if line.startswith("License:") and line.split(":", 1)[1].strip():
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _package_of(path: Path) -> str:
    """The Debian package that owns ``path`` (``dpkg -S``), or ``"local"``."""
    try:
        proc = subprocess.run(
            ["dpkg", "-S", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "local"
    if proc.returncode != 0 or ":" not in proc.stdout:
        return "local"
    return proc.stdout.split(":", 1)[0].strip()


@dataclass(frozen=True)
class SoundFont:
    """A General MIDI SoundFont file with its origin.

    Attributes:
        path: the .sf2/.sf3 file.
        package: the Debian package that ships it (or ``"local"``).
        licence: its licence.
    """

    path: str
    package: str
    licence: str

    @property
    def name(self) -> str:
        """The file name without folder."""
        return Path(self.path).name


def find_soundfonts(paths: Iterable[str | Path] | None = None) -> list[SoundFont]:
    """The SoundFonts to render with: ``paths``, or every .sf2/.sf3 in :data:`SOUNDFONT_DIRS`.

    Symlinks to the same file (``default-GM.sf2``) count once.

    Args:
        paths: explicit SoundFont files (default: search the Debian folders).

    Returns:
        The SoundFonts, sorted by file name.
    """
    if paths is None:
        found: list[Path] = []
        for folder in SOUNDFONT_DIRS:
            found += sorted(Path(folder).glob("*.sf[23]"))
    else:
        found = [Path(p) for p in paths]
    fonts: dict[str, SoundFont] = {}
    for path in found:
        real = path.resolve()
        if not real.is_file():
            if paths is not None:
                raise FileNotFoundError(f"no SoundFont at {path}")
            continue
        if str(real) not in fonts:
            package = _package_of(real)
            fonts[str(real)] = SoundFont(str(real), package, _licence(package))
    return sorted(fonts.values(), key=lambda f: f.name)


def find_fluidsynth() -> str:
    """The path of the ``fluidsynth`` program, or a clear ``RuntimeError`` naming the fix."""
    path = shutil.which("fluidsynth")
    if path is None:
        raise RuntimeError(
            "the 'fluidsynth' program is not installed: it renders the corpus. Install it with "
            "'apt-get install fluidsynth timgm6mb-soundfont' (./run test and ./run corpus do this "
            "when run as root)"
        )
    return path


@dataclass(frozen=True)
class MidiSong:
    """One MIDI song to render.

    Attributes:
        song_id: unique folder name, ``<source>__<name>``.
        source: the source's name (e.g. ``openmsx``).
        package: the Debian package (or ``"local"``).
        licence: the licence of the music.
        path: the .mid file, or the .wad file holding it.
        lump: for a WAD, ``(name, offset, size)`` of the MIDI lump.
    """

    song_id: str
    source: str
    package: str
    licence: str
    path: str
    lump: tuple[str, int, int] | None = None

    @property
    def origin(self) -> str:
        """Where the MIDI data comes from, e.g. ``/path/freedoom2.wad:D_RUNNIN``."""
        return f"{self.path}:{self.lump[0]}" if self.lump else self.path

    def read(self) -> bytes:
        """The MIDI file's bytes."""
        with open(self.path, "rb") as fh:
            if self.lump is None:
                return fh.read()
            fh.seek(self.lump[1])
            return fh.read(self.lump[2])


def _wad_midi_lumps(path: Path) -> list[tuple[str, int, int]]:
    """The ``D_*`` music lumps of a Doom WAD that are standard MIDI files (``MThd``)."""
    with open(path, "rb") as fh:
        data = fh.read()
    ident, count, directory = struct.unpack_from("<4sii", data, 0)
    if ident not in (b"IWAD", b"PWAD"):
        return []
    lumps = []
    for i in range(count):
        offset, size, raw = struct.unpack_from("<ii8s", data, directory + 16 * i)
        name = raw.rstrip(b"\0").decode("ascii", "replace")
        if name.startswith("D_") and data[offset : offset + 4] == b"MThd":
            lumps.append((name, offset, size))
    return lumps


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text).strip("_")


def find_songs(
    sources: Sequence[str] | None = None,
    midi_dirs: Sequence[str | Path] = (),
) -> list[MidiSong]:
    """Every MIDI song of the installed Debian sources and of ``midi_dirs``.

    Songs with identical MIDI data (the two Freedoom WADs share some) count once.

    Args:
        sources: names among :data:`DEBIAN_SOURCES` (default: all); a missing package is skipped.
        midi_dirs: extra folders of .mid files (source ``local``, licence ``unknown``).

    Returns:
        The songs, sorted by id.
    """
    names = list(DEBIAN_SOURCES) if sources is None else list(sources)
    songs: dict[str, MidiSong] = {}
    seen: set[str] = set()

    def add(song: MidiSong) -> None:
        digest = hashlib.sha1(song.read()).hexdigest()
        if digest not in seen and song.song_id not in songs:
            seen.add(digest)
            songs[song.song_id] = song

    for name in names:
        if name not in DEBIAN_SOURCES:
            raise ValueError(f"unknown MIDI source {name!r}; known: {sorted(DEBIAN_SOURCES)}")
        package, pattern = DEBIAN_SOURCES[name]
        root = Path(pattern.split("*", 1)[0]).parent
        files = sorted(root.glob(pattern[len(str(root)) + 1 :])) if root.is_dir() else []
        licence = _licence(package)
        for path in files:
            if path.suffix.lower() == ".wad":
                for lump in _wad_midi_lumps(path):
                    song_id = f"{name}__{lump[0].lower()}"
                    add(MidiSong(song_id, name, package, licence, str(path), lump))
            else:
                add(MidiSong(f"{name}__{_slug(path.stem)}", name, package, licence, str(path)))
    for folder in midi_dirs:
        for path in sorted(Path(folder).rglob("*.mid")) + sorted(Path(folder).rglob("*.midi")):
            add(MidiSong(f"local__{_slug(path.stem)}", "local", "local", "unknown", str(path)))
    return [songs[k] for k in sorted(songs)]


def _unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (sha1, not Python's salted ``hash``)."""
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def song_split(song_id: str, valid: float = 0.1, test: float = 0.1) -> str:
    """The split of a song, from a hash of its id: ``"train"``, ``"valid"`` or ``"test"``."""
    u = _unit_hash("split", song_id)
    return "test" if u < test else "valid" if u < test + valid else "train"


@dataclass
class RenderOptions:
    """How songs are rendered (see :func:`render_song`).

    Attributes:
        sample_rate: output rate in Hz.
        max_seconds: songs are cut here (the long Planet Blupi loops), in seconds.
        min_seconds: shorter songs are skipped, in seconds.
        tail_seconds: rendered time after the last note (release tails), in seconds.
        gain: fluidsynth's master gain (the output is rescaled to -1 dBFS peak anyway).
        vary_programs: draw per-song instrument changes (see ``_vary_programs``).
        seed: seed of the per-song SoundFont and instrument draws.
        fluidsynth: the fluidsynth program.
        extra: further fluidsynth settings, passed as ``-o key=value``.
    """

    sample_rate: int = SAMPLE_RATE
    max_seconds: float = 240.0
    min_seconds: float = 10.0
    tail_seconds: float = 2.0
    gain: float = 0.5
    vary_programs: bool = True
    seed: int = 0
    fluidsynth: str = "fluidsynth"
    extra: dict[str, str] = field(default_factory=dict)


def _vary_programs(
    infos: dict[int, ChannelInfo], stem_map: dict[int, str], rng: random.Random
) -> dict[int, int]:
    """Per-song instrument choices: new programs for some channels, within the GM family."""
    programs: dict[int, int] = {}
    for channel, stem in stem_map.items():
        if channel == DRUM_CHANNEL:
            continue
        program = infos[channel].program
        if stem == "vocals" and rng.random() < 0.6:
            programs[channel] = rng.choice(VOCAL_PROGRAMS)
        elif stem == "bass" and rng.random() < 0.5:
            programs[channel] = rng.randrange(32, 40)
        elif stem == "other" and rng.random() < 0.3:
            programs[channel] = 8 * (program // 8) + rng.randrange(8)  # same GM family
    return programs


def _render(
    fluidsynth: str, soundfont: str, midi_path: Path, wav_path: Path, opts: RenderOptions
) -> None:
    """Render one stem file to a float32 stereo WAV, dry (reverb and chorus off)."""
    cmd = [
        fluidsynth, "-n", "-i", "-q", "-R", "0", "-C", "0",
        "-g", str(opts.gain), "-r", str(opts.sample_rate),
        "-T", "wav", "-O", "float", "-F", str(wav_path),
    ]  # fmt: skip
    for key, value in opts.extra.items():
        cmd += ["-o", f"{key}={value}"]
    cmd += [soundfont, str(midi_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0 or not wav_path.is_file():
        raise RuntimeError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def render_song(
    midi: bytes | str | Path,
    out_dir: str | Path,
    soundfont: SoundFont | str | Path,
    *,
    song_id: str = "song",
    options: RenderOptions | None = None,
    metadata: dict | None = None,
) -> dict:
    """Render one MIDI song into a finished MUSDB-layout folder ``out_dir``.

    The folder is built next to ``out_dir`` under a temporary name and renamed into place only
    when every file (the stems, ``mixture.flac``, then ``song.json``) is written.

    Args:
        midi: the MIDI file's bytes or path.
        out_dir: the song's folder (must not exist yet).
        soundfont: the SoundFont to render with.
        song_id: the song's id, for the entry and the instrument variation.
        options: rendering options (default :class:`RenderOptions`).
        metadata: extra fields for the entry (source, package, licence, ...).

    Returns:
        The song's entry (also written to ``out_dir/song.json``): stems, channel map, programs,
        SoundFont, duration in seconds, and per stem whether it has notes.

    Raises:
        ValueError: the song is unreadable, too short, or plays no notes.
        RuntimeError: fluidsynth is missing or failed.
    """
    import soundfile as sf

    opts = options or RenderOptions()
    if not isinstance(soundfont, SoundFont):
        real = Path(soundfont).resolve()
        package = _package_of(real)
        soundfont = SoundFont(str(real), package, _licence(package))
    fluidsynth = shutil.which(opts.fluidsynth) or find_fluidsynth()
    out_dir = Path(out_dir)
    try:
        events = flatten(read_midi(midi if isinstance(midi, bytes) else Path(midi)))
    except Exception as err:
        raise ValueError(f"unreadable MIDI song {song_id}: {err}") from err
    infos = analyze_channels(events)
    if not infos:
        raise ValueError(f"MIDI song {song_id} plays no notes")
    last = max(info.last_s for info in infos.values())
    end_s = min(last, opts.max_seconds)
    if end_s < opts.min_seconds:
        raise ValueError(f"MIDI song {song_id} lasts {last:.1f} s < {opts.min_seconds} s")
    stem_map = assign_stems(infos)
    rng = random.Random(f"{opts.seed}/{song_id}")
    programs = _vary_programs(infos, stem_map, rng) if opts.vary_programs else {}
    n = round((end_s + opts.tail_seconds) * opts.sample_rate)
    audio = np.zeros((len(STEMS), n, 2), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        for s, stem in enumerate(STEMS):
            channels = {c for c, name in stem_map.items() if name == stem}
            if not any(infos[c].first_s < end_s for c in channels):
                continue
            mid_path, wav_path = Path(tmp) / f"{stem}.mid", Path(tmp) / f"{stem}.wav"
            stem_midi(events, channels, end_s + opts.tail_seconds, programs=programs).save(mid_path)
            _render(fluidsynth, soundfont.path, mid_path, wav_path, opts)
            data, sr = sf.read(str(wav_path), dtype="float32", always_2d=True)
            if sr != opts.sample_rate or data.shape[1] != 2:
                raise RuntimeError(f"fluidsynth wrote {data.shape[1]} channels at {sr} Hz")
            m = min(n, data.shape[0])
            audio[s, :m] = data[:m]
    peak = float(max(np.abs(audio).max(), np.abs(audio.sum(axis=0, dtype=np.float64)).max()))
    if peak <= 1e-6:
        raise ValueError(f"MIDI song {song_id} rendered to silence with {soundfont.name}")
    audio *= np.float32(PEAK / peak * 32767.0)
    quantized = np.round(audio, out=audio)  # integers: the 16-bit grid, in place
    mixture = quantized.sum(axis=0, dtype=np.float64) / 32767.0
    quantized /= np.float32(32767.0)
    entry = {
        "song": song_id,
        **(metadata or {}),
        "soundfont": soundfont.name,
        "soundfont_package": soundfont.package,
        "soundfont_licence": soundfont.licence,
        "channels": {
            str(c): {
                "stem": stem,
                "program": infos[c].program,
                "rendered_program": programs.get(c, infos[c].program),
                "notes": infos[c].notes,
                "overlap_fraction": round(infos[c].overlap_fraction, 4),
            }
            for c, stem in stem_map.items()
        },
        "stems_with_notes": sorted({stem_map[c] for c in infos if infos[c].first_s < end_s}),
        "duration": n / opts.sample_rate,
        "sample_rate": opts.sample_rate,
        "midi_seconds": round(last, 3),
        "gain_db": round(20 * np.log10(PEAK / peak), 2),
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for s, stem in enumerate(STEMS):
            sf.write(tmp_dir / f"{stem}.flac", quantized[s], opts.sample_rate, subtype="PCM_16")
        sf.write(tmp_dir / "mixture.flac", mixture, opts.sample_rate, subtype="PCM_16")
        (tmp_dir / "song.json").write_text(json.dumps(entry, indent=1))
        os.replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return entry


def _job(args: tuple[MidiSong, str, SoundFont, RenderOptions]) -> tuple[str, dict | None, str]:
    """Worker: render one song; returns ``(song_id, entry or None, error message)``."""
    song, out_dir, soundfont, opts = args
    metadata = {
        "source": song.source,
        "package": song.package,
        "licence": song.licence,
        "source_file": song.origin,
        "split": Path(out_dir).parent.name,
    }
    try:
        entry = render_song(
            song.read(), out_dir, soundfont, song_id=song.song_id, options=opts, metadata=metadata
        )
    except (ValueError, RuntimeError, OSError) as err:
        return song.song_id, None, str(err)
    return song.song_id, entry, ""


def _write_json_atomic(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


def build_corpus(
    out: str | Path,
    *,
    sources: Sequence[str] | None = None,
    midi_dirs: Sequence[str | Path] = (),
    soundfonts: Sequence[str | Path] | None = None,
    options: RenderOptions | None = None,
    workers: int = 2,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Render every available MIDI song into a corpus at ``out`` (see the module docstring).

    Args:
        out: the corpus folder.
        sources: Debian sources to use (names of :data:`DEBIAN_SOURCES`; default: all installed).
        midi_dirs: extra folders of .mid files.
        soundfonts: SoundFont files (default: all installed in :data:`SOUNDFONT_DIRS`).
        options: rendering options.
        workers: parallel rendering processes.
        limit: render at most this many songs (the first ones by id), for quick runs.
        progress: show a tqdm progress bar.

    Returns:
        The summary written to ``out/corpus.json`` (its ``songs`` list holds every song entry):
        total seconds and hours, songs per source and split, skipped songs with reasons, and the
        build time of this run in seconds.
    """
    opts = options or RenderOptions()
    opts.fluidsynth = find_fluidsynth()
    fonts = find_soundfonts(soundfonts)
    if not fonts:
        raise RuntimeError(
            "no SoundFont found in /usr/share/sounds/sf2 or sf3: install one, e.g. "
            "'apt-get install timgm6mb-soundfont fluid-soundfont-gm'"
        )
    songs = find_songs(sources, midi_dirs)
    if limit is not None:
        songs = songs[:limit]
    if not songs:
        raise RuntimeError(
            "no MIDI songs found: install a source package, e.g. 'apt-get install "
            "openttd-openmsx planetblupi-music-midi freedoom', or pass a folder of .mid files"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*/.*"):  # temporary song folders of an interrupted build
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    started = time.perf_counter()
    entries: dict[str, dict] = {}
    jobs = []
    for song in songs:
        folder = out / song_split(song.song_id) / song.song_id
        marker = folder / "song.json"
        if marker.is_file():
            entries[song.song_id] = json.loads(marker.read_text())
            continue
        if folder.exists():  # an incomplete folder from an older layout: render it again
            shutil.rmtree(folder)
        font = fonts[int(_unit_hash("soundfont", opts.seed, song.song_id) * len(fonts))]
        jobs.append((song, str(folder), font, opts))
    skipped: dict[str, str] = {}

    def summary() -> dict:
        ordered = [entries[k] for k in sorted(entries)]
        seconds = float(sum(e["duration"] for e in ordered))

        def count(key: str) -> dict[str, int]:
            return dict(sorted(Counter(str(e.get(key)) for e in ordered).items()))

        return {
            "format": CORPUS_FORMAT,
            "stems": list(STEMS),
            "sample_rate": opts.sample_rate,
            "songs_total": len(ordered),
            "seconds": round(seconds, 3),
            "hours": round(seconds / 3600.0, 4),
            "per_source": count("source"),
            "per_split": count("split"),
            "per_soundfont": count("soundfont"),
            "skipped": skipped,
            "build_seconds": round(time.perf_counter() - started, 2),
            "rendered_this_run": len(entries) - already,
            "options": {k: v for k, v in asdict(opts).items() if k != "fluidsynth"},
            "songs": ordered,
        }

    already = len(entries)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(songs), initial=already, unit="song", desc="corpus")
    try:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                results: Iterable = pool.imap_unordered(_job, jobs)
                for song_id, entry, error in results:
                    _collect(song_id, entry, error, entries, skipped, bar, out, summary)
        else:
            for job in jobs:
                _collect(*_job(job), entries, skipped, bar, out, summary)
    finally:
        if bar is not None:
            bar.close()
    result = summary()
    _write_json_atomic(out / "corpus.json", result)
    return result


def _collect(
    song_id: str,
    entry: dict | None,
    error: str,
    entries: dict[str, dict],
    skipped: dict[str, str],
    bar: Any,
    out: Path,
    summary: Callable[[], dict],
) -> None:
    """Record one finished job, rewrite corpus.json and advance the progress bar."""
    if entry is None:
        skipped[song_id] = error
        warnings.warn(f"corpus: skipped {song_id}: {error}", stacklevel=2)
    else:
        entries[song_id] = entry
        _write_json_atomic(out / "corpus.json", summary())
    if bar is not None:
        hours = sum(e["duration"] for e in entries.values()) / 3600.0
        bar.set_postfix(hours=f"{hours:.2f}")
        bar.update(1)
