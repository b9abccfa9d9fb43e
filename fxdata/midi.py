"""MIDI analysis for the corpus: flatten a song, measure its channels, group them into stems.

The four MUSDB stems are made from General MIDI channels as follows (:func:`assign_stems`):

- ``drums``: MIDI channel 10 (index 9), the GM percussion channel.
- ``bass``: channels whose dominant program (the one most of its notes are played with) is a GM
  bass, programs 32-39 (0-based).
- ``vocals``: a stand-in for a sung lead, since the sources hold no voice: the most active
  *monophonic* melodic channel. A channel counts as monophonic when two or more of its notes
  overlap during less than ``MONOPHONIC_MAX_OVERLAP`` (5 %) of the time it sounds at all, it has
  at least ``VOCALS_MIN_NOTES`` notes, and its median pitch is at least ``VOCALS_MIN_PITCH`` (E3,
  within the range of a voice rather than a bass line). "Most active" is the longest total
  sounding time. A song without such a channel has a silent vocals stem.
- ``other``: every remaining channel (pads, chords, accompaniment, counter melodies).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import mido

from fxdsp.registry import STEMS

__all__ = [
    "MONOPHONIC_MAX_OVERLAP",
    "STEMS",
    "VOCALS_MIN_NOTES",
    "VOCALS_MIN_PITCH",
    "ChannelInfo",
    "Event",
    "analyze_channels",
    "assign_stems",
    "flatten",
    "read_midi",
    "stem_midi",
]

DRUM_CHANNEL = 9
BASS_PROGRAMS = range(32, 40)
MONOPHONIC_MAX_OVERLAP = 0.05
VOCALS_MIN_NOTES = 16
VOCALS_MIN_PITCH = 52

# The single tempo of the rewritten stem files: 1 tick = 0.5 s / 960 (about 0.52 ms).
_TICKS_PER_BEAT = 960
_TEMPO_US = 500_000
_TICKS_PER_SECOND = _TICKS_PER_BEAT * 1e6 / _TEMPO_US

Event = tuple[float, mido.Message]


def read_midi(source: str | Path | bytes) -> mido.MidiFile:
    """Parse a standard MIDI file from a path or from its bytes (``mido``, tolerant of junk)."""
    if isinstance(source, bytes):
        return mido.MidiFile(file=io.BytesIO(source), clip=True)
    return mido.MidiFile(str(source), clip=True)


def flatten(mid: mido.MidiFile) -> list[Event]:
    """All channel and sysex messages of a song with their absolute times in seconds.

    Tempo changes are applied by ``mido`` while merging the tracks; meta messages are dropped
    (the stem files are rewritten at one fixed tempo).

    Args:
        mid: the parsed song (type 0 or 1).

    Returns:
        ``(time_s, message)`` pairs in playing order.
    """
    events: list[Event] = []
    now = 0.0
    for msg in mid:  # yields delta times in seconds
        now += msg.time
        if not msg.is_meta:
            events.append((now, msg.copy(time=0)))
    return events


@dataclass(frozen=True)
class ChannelInfo:
    """What one MIDI channel plays.

    Attributes:
        channel: 0-based channel (9 is GM percussion).
        program: dominant GM program (0-based) over its notes.
        notes: number of notes.
        sounding_s: time with at least one of its notes sounding, in seconds.
        overlap_fraction: time with two or more notes sounding divided by ``sounding_s``.
        median_pitch: median MIDI note number.
        first_s: onset of its first note, in seconds.
        last_s: end of its last note, in seconds.
    """

    channel: int
    program: int
    notes: int
    sounding_s: float
    overlap_fraction: float
    median_pitch: float
    first_s: float
    last_s: float


def _notes(events: list[Event]) -> dict[int, list[tuple[float, float, int, int]]]:
    """Per channel, the notes as ``(start_s, end_s, pitch, program)``."""
    program = [0] * 16
    active: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes: dict[int, list[tuple[float, float, int, int]]] = {}
    end = events[-1][0] if events else 0.0
    for t, msg in events:
        if msg.type == "program_change":
            program[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            active.setdefault((msg.channel, msg.note), []).append((t, program[msg.channel]))
        elif msg.type in ("note_off", "note_on"):
            stack = active.get((msg.channel, msg.note))
            if stack:
                start, prog = stack.pop(0)
                notes.setdefault(msg.channel, []).append((start, t, msg.note, prog))
    for (channel, pitch), stack in active.items():  # never released: sound to the end
        for start, prog in stack:
            notes.setdefault(channel, []).append((start, end, pitch, prog))
    return notes


def _overlap(intervals: list[tuple[float, float]]) -> tuple[float, float]:
    """Time with at least one and with at least two intervals active (a sweep over edges)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    one = two = 0.0
    depth = 0
    prev = edges[0][0] if edges else 0.0
    for t, step in edges:
        if depth >= 1:
            one += t - prev
        if depth >= 2:
            two += t - prev
        depth += step
        prev = t
    return one, two


def analyze_channels(events: list[Event]) -> dict[int, ChannelInfo]:
    """Measure every channel that plays notes (see :class:`ChannelInfo`).

    Args:
        events: the flattened song (:func:`flatten`).

    Returns:
        ``{channel: ChannelInfo}`` for the channels with at least one note.
    """
    infos = {}
    for channel, notes in _notes(events).items():
        one, two = _overlap([(s, e) for s, e, _, _ in notes])
        pitches = sorted(p for _, _, p, _ in notes)
        infos[channel] = ChannelInfo(
            channel=channel,
            program=Counter(prog for _, _, _, prog in notes).most_common(1)[0][0],
            notes=len(notes),
            sounding_s=one,
            overlap_fraction=two / max(one, 1e-9),
            median_pitch=float(pitches[len(pitches) // 2]),
            first_s=min(s for s, _, _, _ in notes),
            last_s=max(e for _, e, _, _ in notes),
        )
    return infos


def assign_stems(infos: dict[int, ChannelInfo]) -> dict[int, str]:
    """Group channels into the MUSDB stems (rules in the module docstring).

    Args:
        infos: the measured channels (:func:`analyze_channels`).

    Returns:
        ``{channel: stem}`` with stems among :data:`STEMS`.
    """
    stems: dict[int, str] = {}
    for channel, info in infos.items():
        if channel == DRUM_CHANNEL:
            stems[channel] = "drums"
        elif info.program in BASS_PROGRAMS:
            stems[channel] = "bass"
    candidates = [
        info
        for channel, info in infos.items()
        if channel not in stems
        and info.overlap_fraction < MONOPHONIC_MAX_OVERLAP
        and info.notes >= VOCALS_MIN_NOTES
        and info.median_pitch >= VOCALS_MIN_PITCH
    ]
    if candidates:
        lead = max(candidates, key=lambda info: (info.sounding_s, -info.channel))
        stems[lead.channel] = "vocals"
    for channel in infos:
        stems.setdefault(channel, "other")
    return dict(sorted(stems.items()))


def stem_midi(
    events: list[Event],
    channels: set[int] | frozenset[int],
    end_s: float,
    *,
    programs: dict[int, int] | None = None,
) -> mido.MidiFile:
    """A type-0 MIDI file with only ``channels``' messages, ending exactly at ``end_s``.

    Sysex messages (GM/GS resets) are kept in every stem. Notes still sounding at ``end_s`` (the
    song was cut) are released there. A no-op controller (CC 3, undefined in GM) at ``end_s`` makes
    every stem of a song last exactly as long, so that the synthesizer renders release tails.

    Args:
        events: the flattened song (:func:`flatten`).
        channels: the channels to keep.
        end_s: the end of the file in seconds; later events are dropped.
        programs: optional ``{channel: program}``; every program change of those channels is
            replaced by that program (the song's instrument variation).

    Returns:
        The stem's MIDI file (tempo 120 bpm, 960 ticks per beat).
    """
    programs = programs or {}
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=_TEMPO_US, time=0))
    timed: list[tuple[int, mido.Message]] = []
    sounding: set[tuple[int, int]] = set()
    for t, msg in events:
        if t > end_s:
            break
        if msg.type == "sysex":
            timed.append((round(t * _TICKS_PER_SECOND), msg))
            continue
        if getattr(msg, "channel", None) not in channels:
            continue
        if msg.type == "program_change" and msg.channel in programs:
            msg = msg.copy(program=programs[msg.channel])
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_off", "note_on"):
            sounding.discard((msg.channel, msg.note))
        timed.append((round(t * _TICKS_PER_SECOND), msg))
    end_tick = round(end_s * _TICKS_PER_SECOND)
    for channel, note in sorted(sounding):
        timed.append((end_tick, mido.Message("note_off", channel=channel, note=note)))
    for channel in sorted(channels, reverse=True):  # also for a channel that never set one
        if channel in programs and channel != DRUM_CHANNEL:
            change = mido.Message("program_change", channel=channel, program=programs[channel])
            timed.insert(0, (0, change))
    timed.append((end_tick, mido.Message("control_change", channel=0, control=3, value=0)))
    timed.sort(key=lambda item: item[0])  # stable: keeps the order of simultaneous messages
    now = 0
    for tick, msg in timed:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    out = mido.MidiFile(type=0, ticks_per_beat=_TICKS_PER_BEAT)
    out.tracks.append(track)
    return out
