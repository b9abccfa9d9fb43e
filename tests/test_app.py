"""``mixfx app``: the engine's checks and files, and the page end to end in a real headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium) against the real
server started as ``python -m mixfx app`` on a free localhost port.

The browser test uploads the bundled example's stems (input and reference), runs the parametric
method, waits for it, and checks the output player's length against the input's, the plots, the
A/B switch's kept position, a preset edit (a gain change comes out as exactly that gain on the
stem), and a bad upload's message; the finished page is saved as
``out/test-artifacts/app.png`` (or under ``$MIXFX_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixfx.app.engine import AppError, Engine, Settings, read_song_files

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "mixfx" / "demo_data"
STEMS = ("drums", "bass", "other", "vocals")


def _stem_files(folder: Path) -> list[tuple[str, Path]]:
    return [(f"{s}.flac", folder / f"{s}.flac") for s in STEMS]


def _wav(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.1 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([x] * channels, 1), rate)
    return path


# ------------------------------------------------------------------------------------------------
# The engine, without a browser
# ------------------------------------------------------------------------------------------------
def test_uploads_are_checked_with_messages_that_name_the_problem(tmp_path: Path) -> None:
    kind, stems, rate = read_song_files(_stem_files(DEMO / "input"), "the input", 600)
    assert kind == "stems" and set(stems) == set(STEMS) and rate == 44100
    kind, mix, rate = read_song_files([("a.wav", _wav(tmp_path / "a.wav", 2.0))], "the input", 60)
    assert kind == "mix" and mix.shape == (2, 88200)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    cases = [
        ([], "no file uploaded"),
        ([("empty.wav", empty)], r"empty \(0 bytes\)"),
        ([("notes.wav", text)], "not an audio file"),
        ([("a.wav", _wav(tmp_path / "long.wav", 5.0))], r"5.0 s long; at most 4 s are accepted"),
        ([("a.wav", _wav(tmp_path / "short.wav", 0.5))], "too short"),
        ([("a.wav", _wav(tmp_path / "six.wav", 2.0, channels=6))], "6 channels"),
        (_stem_files(DEMO / "input")[:3], r"has no stem\(s\) vocals \(four are needed"),
        ([*_stem_files(DEMO / "input")[:3], ("song.wav", tmp_path / "a.wav")], "not a stem file"),
        (
            [*_stem_files(DEMO / "input"), ("drums.wav", tmp_path / "a.wav")],
            r"more than one file for the drums \(drums.flac, drums.wav\)",
        ),
    ]
    for files, match in cases:
        with pytest.raises(AppError, match=match):
            read_song_files(files, "the input", 4.0)
    odd = [(f"{s}.wav", _wav(tmp_path / f"{s}.wav", 2.0, rate=48000 if s == "bass" else 44100))
           for s in STEMS]  # fmt: skip
    with pytest.raises(AppError, match=r"different sample rates.*bass 48000 Hz"):
        read_song_files(odd, "the input", 60)
    for bad, match in [({"method": "magic"}, "unknown method"), ({"refine": 0}, "refinement"),
                       ({"blend": 1.5}, "blend")]:  # fmt: skip
        with pytest.raises(AppError, match=match):
            Settings(**bad)


def _wait(engine: Engine, job_id: str, timeout: float = 300.0) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        status = engine.status(job_id)
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_engine_transfer_files_measures_rerender_and_cleanup(tmp_path: Path) -> None:
    pyln = pytest.importorskip("pyloudnorm")
    engine = Engine(root=tmp_path)
    try:
        # A mix needs Demucs weights; none are here: refused at once, nothing kept.
        job_id, folder = engine.new_folder()
        with pytest.raises(AppError, match=r"needs Demucs separation weights.*four stems"):
            engine.submit(job_id, folder, Settings(method="params"),
                          [("mix.wav", _wav(tmp_path / "mix.wav", 2.0))],
                          _stem_files(DEMO / "reference"))  # fmt: skip
        engine.discard(job_id, folder)
        assert not folder.exists()

        job_id, folder = engine.new_folder()
        engine.submit(job_id, folder, Settings(method="params"), _stem_files(DEMO / "input"),
                      _stem_files(DEMO / "reference"))  # fmt: skip
        status = _wait(engine, job_id)
        assert status["state"] == "done", status["error"]
        files = status["files"]
        out, rate = sf.read(folder / files["output"], always_2d=True)
        inp, _ = sf.read(DEMO / "input" / "drums.flac", always_2d=True)
        assert rate == 44100 and out.shape == (inp.shape[0], 2)
        stems = [sf.read(folder / files[f"output_{s}"], always_2d=True)[0] for s in STEMS]
        np.testing.assert_allclose(sum(stems), out, atol=1e-5)  # the mix is the stems' sum
        # Integrated loudness of each mix against pyloudnorm (ITU-R BS.1770-4).
        for name in ("input", "reference", "output"):
            x, fs = sf.read(folder / files[name], always_2d=True)
            want = pyln.Meter(fs).integrated_loudness(x)
            assert abs(status["figures"][name]["lufs"] - want) < 0.05, name
        for plot in ("spectrum", "loudness", "width"):
            assert (folder / files[plot]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        preset = json.loads((folder / files["preset"]).read_text())
        assert preset == status["preset"] and set(preset["stems"]) == set(STEMS)

        # Re-render with the vocals' gain stage on at +4 dB more: that stem, times 10^(4/20).
        chain = preset["stems"]["vocals"]["chain"]
        gain = next(e for e in chain if e["effect"] == "gain")
        assert chain[-1] is gain  # last: no RMS match after it
        before = stems[STEMS.index("vocals")]
        old = gain["params"]["gain_db"]["value"] if gain["on"] else 0.0
        gain["on"] = True
        gain["params"]["gain_db"]["value"] = old + 4.0
        engine.rerender(job_id, preset)
        status = _wait(engine, job_id)
        assert status["state"] == "done" and status["version"] == 2
        after, _ = sf.read(folder / files["output_vocals"], always_2d=True)
        np.testing.assert_allclose(after, before * 10 ** (4 / 20), rtol=1e-4, atol=1e-6)
        drums, _ = sf.read(folder / files["output_drums"], always_2d=True)
        np.testing.assert_allclose(drums, stems[0], atol=1e-6)  # the other stems unchanged
        # A value outside its range is named, and the job keeps its last output.
        gain["params"]["gain_db"]["value"] = 1000.0
        with pytest.raises(AppError, match="gain_db"):
            engine.rerender(job_id, preset)
        assert engine.status(job_id)["state"] == "done"
    finally:
        engine.close()
    assert not engine.root.exists()


# ------------------------------------------------------------------------------------------------
# The page, in a real browser
# ------------------------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _artifacts() -> Path:
    folder = Path(os.environ.get("MIXFX_TEST_ARTIFACTS", ROOT / "out" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """``python -m mixfx app --port 0`` (a free port), its URL and its temporary folder."""
    env = {**os.environ, "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path_factory.mktemp("apptmp"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixfx", "app", "--port", "0", "--max-seconds", "30"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "serving http://127.0.0.1:" in line, line
    url = line.split("serving ")[1].split()[0]
    folder = Path(line.split("files in ")[1].rstrip(")\n"))
    assert folder.is_dir()
    yield url, folder
    proc.terminate()
    rest, _ = proc.communicate(timeout=60)
    assert "Traceback" not in rest, rest
    assert not folder.exists(), "the app left its temporary folder behind"


def test_page_in_headless_chromium(server, tmp_path: Path) -> None:
    if CHROMIUM is None or DRIVER is None:
        pytest.fail(
            "the browser test needs Debian's chromium and chromium-driver (./run test installs "
            "them as root: apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, folder = server
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2400", "--autoplay-policy=no-user-gesture-required",
                "--mute-audio"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    try:
        driver.get(url)
        state = lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")  # noqa: E731
        assert state() == "idle"

        # A bad upload: a message on the page, no job.
        notes = tmp_path / "notes.wav"
        notes.write_text("this is not audio")
        driver.find_element(By.ID, "input").send_keys(str(notes))
        driver.find_element(By.ID, "reference").send_keys(
            "\n".join(str(DEMO / "reference" / f"{s}.flac") for s in STEMS)
        )
        driver.find_element(By.ID, "run").click()
        WebDriverWait(driver, 60).until(lambda d: state() == "failed")
        message = driver.find_element(By.ID, "message")
        assert message.is_displayed() and "not an audio file" in message.text
        assert "Traceback" not in driver.page_source

        # The real run: four input stems, four reference stems, the parametric method.
        driver.find_element(By.ID, "input").clear()
        driver.find_element(By.ID, "input").send_keys(
            "\n".join(str(DEMO / "input" / f"{s}.flac") for s in STEMS)
        )
        driver.find_element(By.CSS_SELECTOR, "input[name=method][value=params]").click()
        driver.find_element(By.ID, "run").click()
        WebDriverWait(driver, 600).until(lambda d: state() in ("done", "failed"))
        assert state() == "done", driver.find_element(By.ID, "message").text
        assert not driver.find_element(By.ID, "message").is_displayed()

        duration = """
            const a = document.getElementById(arguments[0]), done = arguments[arguments.length - 1];
            if (a.readyState >= 1) done(a.duration);
            else a.addEventListener("loadedmetadata", () => done(a.duration), {once: true});
        """
        driver.set_script_timeout(60)
        want = sf.info(str(DEMO / "input" / "drums.flac")).duration
        for player in ("audio-input", "audio-output"):
            assert abs(driver.execute_async_script(duration, player) - want) < 0.01, player
        loaded = (
            "return ['spectrum','loudness','width'].every(p => { const i = "
            "document.getElementById('plot-' + p); return i.complete && i.naturalWidth > 0; })"
        )
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(loaded))
        plots = driver.execute_script(
            "return ['spectrum','loudness','width'].map(p => "
            "document.getElementById('plot-' + p).naturalWidth)"
        )
        assert all(w > 300 for w in plots), plots

        # A/B keeps the position: the output at 2.5 s, switched to the input.
        driver.execute_script("document.getElementById('audio-output').currentTime = 2.5")
        driver.find_element(By.CSS_SELECTOR, "[data-ab=input]").click()
        at = driver.execute_script("return document.getElementById('audio-input').currentTime")
        assert abs(at - 2.5) < 0.05
        # Matched loudness: the louder sources turned down by their LUFS difference.
        driver.find_element(By.ID, "matched").click()
        volumes = driver.execute_script(
            "return ['input','reference','output'].map(s => "
            "document.getElementById('audio-' + s).volume)"
        )
        job = driver.execute_script("return job")
        status = json.loads(urllib.request.urlopen(f"{url}api/jobs/{job}").read())
        lufs = [status["figures"][s]["lufs"] for s in ("input", "reference", "output")]
        want_volumes = [10 ** ((min(lufs) - x) / 20) for x in lufs]
        np.testing.assert_allclose(volumes, want_volumes, rtol=1e-6)

        # Edit the preset on the page: the vocals' gain on, +4 dB more; re-render.
        before = _download(f"{url}api/jobs/{job}/files/output_vocals.wav", tmp_path / "b.wav")
        gain = driver.find_element(By.CSS_SELECTOR, "input[data-param='vocals.gain.gain_db']")
        old = float(gain.get_attribute("value"))
        row_on = driver.find_elements(
            By.CSS_SELECTOR,
            f"input.preset-on[data-stem=vocals][data-index='{_gain_index(status)}']",
        )
        if not row_on[0].is_selected():
            row_on[0].click()
            old = 0.0
        gain.clear()
        gain.send_keys(f"{old + 4.0:.6f}")
        driver.find_element(By.ID, "rerender").click()
        WebDriverWait(driver, 300).until(
            lambda d: (
                d.find_element(By.ID, "results").get_attribute("data-version") == "2"
                and state() == "done"
            )
        )
        after = _download(f"{url}api/jobs/{job}/files/output_vocals.wav", tmp_path / "a.wav")
        # The table is rebuilt from the server's new preset: it shows the edited value.
        gain = driver.find_element(By.CSS_SELECTOR, "input[data-param='vocals.gain.gain_db']")
        shown = float(gain.get_attribute("value"))
        np.testing.assert_allclose(after, before * 10 ** ((shown - old) / 20), rtol=1e-4,
                                   atol=1e-6)  # fmt: skip
        assert abs(shown - old - 4.0) < 1e-3
        src = driver.execute_script("return document.getElementById('audio-output').src")
        assert src.endswith("v=2")
        # The download links: the mix, a ZIP of the four stems, a preset fxdsp loads.
        import io
        import zipfile

        from cloner.presets import Preset

        links = {k: driver.find_element(By.ID, f"dl-{k}").get_attribute("href")
                 for k in ("output", "stems", "preset")}  # fmt: skip
        mix = _download(links["output"], tmp_path / "mix.wav")
        with zipfile.ZipFile(io.BytesIO(urllib.request.urlopen(links["stems"]).read())) as z:
            assert sorted(z.namelist()) == sorted(f"{s}.wav" for s in STEMS)
            parts = [sf.read(io.BytesIO(z.read(f"{s}.wav")), always_2d=True)[0] for s in STEMS]
        np.testing.assert_allclose(sum(parts), mix, atol=1e-5)
        np.testing.assert_array_equal(parts[STEMS.index("vocals")], after)
        (tmp_path / "preset.json").write_bytes(urllib.request.urlopen(links["preset"]).read())
        loaded = Preset.load(tmp_path / "preset.json")
        assert abs(loaded.stems["vocals"].values["gain.gain_db"] - shown) < 1e-4
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, height + 40)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(_artifacts() / "app.png"))
        # Leaving the page closes the job: its folder goes.
        job_folder = folder / job
        assert job_folder.is_dir()
        driver.get("about:blank")
        deadline = time.monotonic() + 30
        while job_folder.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not job_folder.exists()
    finally:
        driver.quit()


def _gain_index(status: dict) -> int:
    chain = status["preset"]["stems"]["vocals"]["chain"]
    return next(k for k, e in enumerate(chain) if e["effect"] == "gain")


def _download(url: str, path: Path) -> np.ndarray:
    path.write_bytes(urllib.request.urlopen(url).read())
    return sf.read(path, always_2d=True)[0]


def test_the_server_answers_while_a_transfer_runs(server) -> None:
    """A slow transfer (the cloner) runs off the event loop: polls answer while it runs."""
    import http.client
    import uuid

    url, _ = server
    boundary = uuid.uuid4().hex
    parts = []
    for field, folder in (("input", DEMO / "input"), ("reference", DEMO / "reference")):
        for s in STEMS:
            head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                    f'filename="{s}.flac"\r\nContent-Type: audio/flac\r\n\r\n')  # fmt: skip
            parts.append(head.encode() + (folder / f"{s}.flac").read_bytes() + b"\r\n")
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="method"\r\n\r\n'
                 f"cloner\r\n--{boundary}--\r\n".encode())  # fmt: skip
    conn = http.client.HTTPConnection(url.split("//")[1].rstrip("/"), timeout=60)
    conn.request("POST", "/api/jobs", b"".join(parts),
                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    res = conn.getresponse()
    assert res.status == 200, res.read()
    job = json.loads(res.read())["id"]
    seen = set()
    for _ in range(3000):
        status = json.loads(urllib.request.urlopen(f"{url}api/jobs/{job}", timeout=30).read())
        seen.add(status["state"])
        config = json.loads(urllib.request.urlopen(f"{url}api/config", timeout=30).read())
        assert config["methods"] == ["cloner", "params", "params+refine"]
        if status["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert status["state"] == "done", status["error"]
    assert "running" in seen  # answered while the transfer ran
    assert status["preset"] is None and "preset" not in status["files"]


def test_command_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from mixfx.cli import main

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        assert main(["app", "--port", str(port)]) == 1
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["app", "--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err


def test_blend_weights_the_first_reference(tmp_path: Path) -> None:
    """Blend 1 is the first reference alone, blend 0 the second alone (parametric method)."""
    engine = Engine(root=tmp_path)
    first, second = _stem_files(DEMO / "reference"), _stem_files(DEMO / "input")
    try:

        def run(settings: Settings, refs_b: list) -> np.ndarray:
            job_id, folder = engine.new_folder()
            engine.submit(job_id, folder, settings, _stem_files(DEMO / "input"),
                          refs_b[0] if refs_b else first, refs_b[1] if refs_b else ())  # fmt: skip
            status = _wait(engine, job_id)
            assert status["state"] == "done", status["error"]
            return sf.read(folder / "output.wav")[0]

        only_first = run(Settings(method="params"), [])
        only_second = run(Settings(method="params"), [second, ()])
        np.testing.assert_allclose(run(Settings(method="params", blend=1.0), [first, second]),
                                   only_first, atol=1e-6)  # fmt: skip
        np.testing.assert_allclose(run(Settings(method="params", blend=0.0), [first, second]),
                                   only_second, atol=1e-6)  # fmt: skip
        assert np.abs(only_first - only_second).max() > 1e-2
        job_id, folder = engine.new_folder()
        with pytest.raises(AppError, match="needs a blend weight"):
            engine.submit(job_id, folder, Settings(method="params"),
                          _stem_files(DEMO / "input"), first, second)  # fmt: skip
    finally:
        engine.close()


def test_fxnorm_setting_normalizes_the_input_first(tmp_path: Path) -> None:
    import torch

    from cloner.inference import fx_normalize_stems

    engine = Engine(root=tmp_path)
    try:
        job_id, folder = engine.new_folder()
        engine.submit(job_id, folder, Settings(method="params", fxnorm=True),
                      _stem_files(DEMO / "input"), _stem_files(DEMO / "reference"))  # fmt: skip
        status = _wait(engine, job_id)
        assert status["state"] == "done", status["error"]
        stems = {}
        for s in STEMS:
            data = sf.read(DEMO / "input" / f"{s}.flac", dtype="float32", always_2d=True)[0]
            stems[s] = torch.from_numpy(data.T.copy())
        want = sum(fx_normalize_stems(stems, 44100).values())
        got = sf.read(folder / "input.wav", always_2d=True)[0].T
        np.testing.assert_allclose(got, want.numpy(), atol=1e-6)
        assert not np.allclose(got, sum(stems.values()).numpy(), atol=1e-3)
    finally:
        engine.close()


def test_an_upload_over_the_byte_limit_is_refused_as_it_arrives(tmp_path: Path) -> None:
    import io
    from types import SimpleNamespace

    from mixfx.app.server import _save

    small = SimpleNamespace(filename="drums.wav", file=io.BytesIO(b"x" * 1000))
    empty_field = SimpleNamespace(filename="", file=io.BytesIO(b""))
    saved = _save([small, empty_field], tmp_path / "ok", limit=1000)
    assert [(n, p.read_bytes()) for n, p in saved] == [("drums.wav", b"x" * 1000)]
    big = SimpleNamespace(filename="../../song.wav", file=io.BytesIO(b"x" * (3 << 20)))
    with pytest.raises(AppError, match=r"song\.wav is larger than 2 MB"):
        _save([big], tmp_path / "big", limit=2 << 20)
    written = list((tmp_path / "big").iterdir())
    assert len(written) == 1 and written[0].stat().st_size <= 2 << 20  # stopped at the limit
    assert written[0].parent == tmp_path / "big"  # the uploaded name's folders are dropped


def test_refined_method_runs_the_refinement(tmp_path: Path) -> None:
    engine = Engine(root=tmp_path)
    try:
        outs = {}
        for settings in (Settings(method="params"), Settings(method="params+refine", refine=2)):
            job_id, folder = engine.new_folder()
            engine.submit(job_id, folder, settings, _stem_files(DEMO / "input"),
                          _stem_files(DEMO / "reference"))  # fmt: skip
            status = _wait(engine, job_id)
            assert status["state"] == "done", status["error"]
            outs[settings.method] = (status["preset"], sf.read(folder / "output.wav")[0])
        preset, refined = outs["params+refine"]
        assert preset["source"].endswith("2 refinement steps")
        assert np.abs(refined - outs["params"][1]).max() > 1e-4  # the steps moved the chain
        assert preset != outs["params"][0]
    finally:
        engine.close()
