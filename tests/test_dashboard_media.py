"""The dashboard's audio choice, subtitle pickers and video info cards (issue 18, item 6), in
headless Chromium like tests/test_dashboard.py (whose browser and page object are reused).

YouTube is a yt-dlp-shaped info dict (tests/youtube_fakes.py) whose format is the local 10-minute
MP4 and whose subtitle tracks are WebVTT files written as YouTube serves them (``Kind:`` and
``Language:`` header lines), served from a temporary folder over HTTP. What the user gets is
checked as bytes: ffprobe of the downloaded clip, the text of the downloaded .vtt.
"""
from __future__ import annotations

import subprocess
import threading
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from werkzeug.serving import make_server

from scripts.local_source import SourceServer
from src.media.ffmpeg import ffprobe
from tests import test_dashboard as dashboard
from tests.test_dashboard import api, email, needs_browser, save_clip
from tests.youtube_fakes import VIDEO_ID, video_page, wait_for, watch_url

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

driver, page = dashboard.driver, dashboard.page
THUMB_PATH = "/test-thumbnail.png"
HOSTILE = '<img src=x onerror=alert(1)>'
PLAYLIST = "https://www.youtube.com/playlist?list=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf"

#: WebVTT as YouTube's timedtext answers ``fmt=vtt``: a header with Kind and Language, cues.
VTT = {
    "en": "WEBVTT\nKind: captions\nLanguage: en\n\n"
          "00:00:02.000 --> 00:00:04.000\nlong before the clip\n\n"
          "00:05:02.000 --> 00:05:05.500\nThe bunny wakes up\n\n"
          "00:05:20.000 --> 00:05:23.000\nand stretches\n",
    "de": "WEBVTT\nKind: captions\nLanguage: de\n\n"
          "00:05:02.000 --> 00:05:05.500\nDer Hase wacht auf\n",
}


@pytest.fixture
def live_app(make_app, tmp_path):
    """``(base_url, app)``: the app served for real (as tests/test_dashboard.py does), plus one
    PNG at :data:`THUMB_PATH` made by plain ffmpeg — a thumbnail on the page's own origin, the
    only kind the page's Content-Security-Policy lets load offline."""
    png = tmp_path / "thumb.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180",
                    "-frames:v", "1", str(png)], check=True)
    app = make_app()
    image = png.read_bytes()

    def wsgi(environ, start_response):
        if environ.get("PATH_INFO") == THUMB_PATH:
            start_response("200 OK", [("Content-Type", "image/png"),
                                      ("Content-Length", str(len(image)))])
            return [image]
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def captions(tmp_path):
    """A :class:`SourceServer` over the :data:`VTT` files (``en.vtt``, ``de.vtt``)."""
    folder = tmp_path / "captions"
    folder.mkdir()
    for lang, text in VTT.items():
        (folder / f"{lang}.vtt").write_text(text, encoding="utf-8")
    with SourceServer(folder) as server:
        yield server


def youtube_page(source_server, captions=None, video_id=VIDEO_ID, **fields) -> dict:
    """A YouTube VOD of 10 min whose one format is the local MP4; with ``captions``, manual
    English and German subtitles and automatic French (and English) captions, as yt-dlp's
    YouTube extractor lists them (``subtitles`` / ``automatic_captions``: lang → tracks); the
    French file is missing on the server (404), as a caption YouTube withdrew."""
    page_dict = video_page(f"{source_server.mp4_url}?expire={int(time.time()) + 6 * 3600}",
                           video_id=video_id)
    if captions:
        track = lambda lang: [{"ext": "vtt", "url": captions.url(f"{lang}.vtt")}]  # noqa: E731
        page_dict["subtitles"] = {"en": track("en"), "de": track("de")}
        page_dict["automatic_captions"] = {"fr": track("fr-gone"), "en": track("en")}
    page_dict.update(fields)
    return page_dict


def saved_with_info(base, user, url, start, end):
    """Save a clip; wait until its status carries ``video_info`` (the background look-up)."""
    video_id = save_clip(base, user, url, start, end)
    wait_for(lambda: api(base, "GET", f"/api/video/status/{video_id}",
                         token=user["token"])[1].get("video_info"), 30)
    return video_id


def show_clips(page, count=1):
    """Reload the list; wait until ``count`` cards have their status and formats."""
    page.el("#clips-refresh").click()
    page.wait(lambda: len(page.drv.find_elements(
        By.CSS_SELECTOR, "li.clip[data-loaded][data-formats=loaded]")) == count, 30,
        "the clips with their formats")


#: Visible form controls without a label (as tests/test_dashboard.py checks every view).
UNLABELLED = """
    return [...document.querySelectorAll('input, select, textarea, progress')]
      .filter((el) => el.offsetParent !== null)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
      .map((el) => el.outerHTML)"""


def card_css(video_id):
    return f'li.clip[data-id="{video_id}"]'


@needs_browser
def test_mp3_at_128_kbits(page, live_app, fake_youtube, source_server):
    base, _ = live_app
    user = page.register(email())
    fake_youtube.set(watch_url(), youtube_page(source_server))
    video_id = saved_with_info(base, user, watch_url(), 300, 330)
    show_clips(page)
    card = card_css(video_id)
    formats = Select(page.el(f"{card} select[data-role=format]"))
    audio = page.el(f'{card} select[data-role=format] optgroup[label="Audio"]')
    assert [o.get_attribute("value") for o in audio.find_elements(By.TAG_NAME, "option")] == \
        ["mp3", "m4a", "opus"]
    assert not page.drv.find_elements(By.CSS_SELECTOR, f"{card} select[data-role=audio-bitrate]")
    assert page.el(f"{card} select[data-role=resolution]").is_displayed()

    formats.select_by_value("mp3")
    bitrate = Select(page.visible(f"{card} select[data-role=audio-bitrate]"))
    assert bitrate.first_selected_option.get_attribute("value") == "192"  # MP3's default
    assert not page.el(f"{card} select[data-role=resolution]").is_displayed()
    bitrate.select_by_value("128")
    page.el(f"{card} button[data-role=download]").click()
    path = page.wait_download(f"clip_{video_id}.mp3", timeout=120)

    probe = ffprobe(str(path))
    assert probe["format"]["format_name"] == "mp3"
    assert [s["codec_type"] for s in probe["streams"]] == ["audio"]  # no picture, no video
    audio_stream = probe["streams"][0]
    assert audio_stream["codec_name"] == "mp3"
    assert abs(int(audio_stream["bit_rate"]) - 128_000) <= 8_000
    assert abs(float(probe["format"]["duration"]) - 30) < 1.5
    page.wait(lambda: page.el(card).get_attribute("data-status") == "completed", 20, "done")
    assert page.console_errors() == []


@needs_browser
def test_a_video_without_audio_offers_no_audio_format(page, live_app, fake_youtube,
                                                      source_server):
    base, _ = live_app
    user = page.register(email())
    silent = youtube_page(source_server)
    silent["formats"][0]["acodec"] = "none"
    fake_youtube.set(watch_url(), silent)
    video_id = saved_with_info(base, user, watch_url(), 300, 330)
    show_clips(page)
    card = card_css(video_id)
    assert page.drv.find_elements(
        By.CSS_SELECTOR, f'{card} select[data-role=format] optgroup[label="Audio"]') == []
    assert page.text(f"{card} [data-role=no-audio]") == "No audio track"
    assert page.console_errors() == []


@needs_browser
def test_subtitles_picker_and_sidecar_file(page, live_app, fake_youtube, source_server,
                                           captions):
    base, _ = live_app
    user = page.register(email())
    fake_youtube.set(watch_url(), youtube_page(source_server, captions))
    video_id = saved_with_info(base, user, watch_url(), 300, 330)
    show_clips(page)
    card = card_css(video_id)
    page.el(f"{card} details.subs summary").click()
    boxes = page.drv.find_elements(By.CSS_SELECTOR, f"{card} input[data-role=subtitle]")
    labels = {b.get_attribute("value"): b.find_element(By.XPATH, "..").text for b in boxes}
    assert sorted(labels) == ["de", "en", "fr"]  # English once: the manual track
    assert labels["fr"].endswith("(auto)") and "(fr)" in labels["fr"]
    assert not labels["en"].endswith("(auto)") and not labels["de"].endswith("(auto)")

    # An audio format takes subtitles as separate files only.
    Select(page.el(f"{card} select[data-role=format]")).select_by_value("m4a")
    mode = page.el(f"{card} select[data-role=subtitles-mode]")
    assert not mode.is_enabled()
    assert Select(mode).first_selected_option.get_attribute("value") == "sidecar"
    Select(page.el(f"{card} select[data-role=format]")).select_by_value("mp4")
    mode = page.el(f"{card} select[data-role=subtitles-mode]")
    assert mode.is_enabled()
    assert Select(mode).first_selected_option.get_attribute("value") == "embed"

    Select(mode).select_by_value("sidecar")
    page.el(f'{card} input[data-role=subtitle][value="en"]').click()
    assert "en" in page.text(f"{card} [data-role=subtitles-summary]")
    page.el(f"{card} button[data-role=download]").click()
    clip = page.wait_download(f"_{video_id}.mp4", timeout=120)
    probe = ffprobe(str(clip))
    assert sorted(s["codec_type"] for s in probe["streams"]) == ["audio", "video"]  # sidecar

    link = page.visible(f'{card} button[data-role=subtitle-file][data-lang="en"]', 30)
    assert link.text == "Subtitles (en)"
    link.click()
    vtt = page.wait_download(".vtt")
    text = vtt.read_text(encoding="utf-8")
    assert text.startswith("WEBVTT")
    assert "The bunny wakes up" in text and "and stretches" in text
    assert "Der Hase" not in text and "long before the clip" not in text

    # Embedded (the default of a video format): the file carries the German track; French
    # cannot be fetched and is left out, with its reason on the card.
    clip.unlink()
    page.el(f'{card} input[data-role=subtitle][value="en"]').click()
    page.el(f'{card} input[data-role=subtitle][value="de"]').click()
    page.el(f'{card} input[data-role=subtitle][value="fr"]').click()
    Select(page.el(f"{card} select[data-role=subtitles-mode]")).select_by_value("embed")
    page.el(f"{card} button[data-role=download]").click()
    clip = page.wait_download(f"_{video_id}.mp4", timeout=120)
    tracks = [s for s in ffprobe(str(clip))["streams"] if s["codec_type"] == "subtitle"]
    assert len(tracks) == 1 and tracks[0]["codec_name"] == "mov_text"
    assert tracks[0]["tags"].get("language") in ("de", "deu", "ger")
    left_out = page.visible(f'{card} [data-role=subtitle-error][data-lang="fr"]', 20)
    assert left_out.text.startswith("Subtitles (fr) left out: ")
    assert page.console_errors() == []


@needs_browser
def test_info_card_shows_hostile_text_as_text(page, live_app, fake_youtube, source_server,
                                               captions):
    base, _ = live_app
    user = page.register(email())
    fake_youtube.set(watch_url(), youtube_page(
        source_server, captions, title=HOSTILE, channel=f"</dd>{HOSTILE}" * 3, uploader="x",
        thumbnail=base + THUMB_PATH))
    other = "aaaaaaaaaaa"
    fake_youtube.set(watch_url(other), youtube_page(
        source_server, video_id=other, title="Second", thumbnail="javascript:alert(1)"))
    hostile = saved_with_info(base, user, watch_url(), 300, 330)
    second = saved_with_info(base, user, watch_url(other), 10, 20)
    show_clips(page, 2)

    card = card_css(hostile)
    assert page.text(f"{card} [data-role=info] [data-role=title]") == HOSTILE
    assert page.text(f"{card} [data-role=info] [data-role=channel]") == f"</dd>{HOSTILE}" * 3
    assert page.text(f"{card} [data-role=info] [data-role=duration]") == "0:10:00"
    images = page.drv.find_elements(By.CSS_SELECTOR, f"{card} img")
    assert [i.get_attribute("src") for i in images] == [base + THUMB_PATH]  # not "x"
    page.wait(lambda: page.drv.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", images[0]) == 320, 10,
        "the thumbnail to load")
    assert page.drv.find_elements(By.CSS_SELECTOR, f"{card_css(second)} img") == []
    assert page.text(f"{card_css(second)} [data-role=info] [data-role=title]") == "Second"
    assert page.drv.execute_script("return document.querySelectorAll('[onerror]').length") == 0

    # At phone width the cards (long titles, thumbnail, subtitle choices open) fit, labelled.
    page.drv.set_window_size(390, 844)
    page.el(f"{card} details.subs summary").click()
    page.visible(f"{card} input[data-role=subtitle]")
    assert page.drv.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    assert page.drv.execute_script(UNLABELLED) == []
    assert page.console_errors() == []


@needs_browser
def test_save_form_looks_up_a_video_and_a_playlist(page, live_app, fake_youtube, source_server,
                                                   captions):
    base, _ = live_app
    user = page.register(email())
    fake_youtube.set(watch_url(), youtube_page(source_server, captions, title="A talk",
                                               channel="Speaker"))
    entries = [{"_type": "url", "ie_key": "Youtube", "id": f"vid{i:08d}",
                "url": watch_url(f"vid{i:08d}"), "title": f"Stream {i}", "duration": 60.0 + i}
               for i in range(3)]
    fake_youtube.set(PLAYLIST, {
        "_type": "playlist", "id": "PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf", "title": HOSTILE,
        "uploader": "Owl", "extractor": "youtube:tab", "extractor_key": "YoutubeTab",
        "webpage_url": PLAYLIST, "playlist_count": 3, "entries": entries})
    fake_youtube.set(watch_url("vid00000001"), youtube_page(
        source_server, video_id="vid00000001", title="Stream 1", duration=61))
    page.go("save")

    page.fill("#save-url", "https://example.org/watch?v=1")
    page.el("#save-lookup").click()
    assert "not accepted" in page.visible("#save-info [data-role=lookup-error]").text

    page.fill("#save-url", watch_url())
    assert page.el("#save-info").get_attribute("data-state") == "none"  # edited: card gone
    page.el("#save-lookup").click()
    info = page.visible("#save-info [data-role=info]")
    assert page.text("#save-info [data-role=title]") == "A talk"
    assert page.text("#save-info [data-role=channel]") == "Speaker"
    assert page.text("#save-info [data-role=duration]") == "0:10:00"
    subtitles = page.text("#save-info [data-role=subtitles]")
    assert "(de)" in subtitles and "(en)" in subtitles and "(fr) (auto)" in subtitles
    assert info.get_attribute("aria-label") == "Video: A talk"

    page.fill("#save-url", PLAYLIST)
    page.el("#save-lookup").click()
    page.visible("#save-info [data-role=playlist]")
    assert page.text("#save-info [data-role=playlist] [data-role=title]") == HOSTILE
    buttons = page.drv.find_elements(By.CSS_SELECTOR, "#save-info button[data-role=entry]")
    assert [b.text for b in buttons] == ["Stream 0 0:01:00", "Stream 1 0:01:01",
                                         "Stream 2 0:01:02"]
    buttons[1].click()
    assert page.el("#save-url").get_attribute("value") == watch_url("vid00000001")
    page.wait(lambda: page.text("#save-info [data-role=info] [data-role=title]") == "Stream 1",
              20, "the entry's card")
    assert page.text("#save-info [data-role=duration]") == "0:01:01"

    page.fill("#save-start", "10")
    page.fill("#save-end", "20")
    page.el("#save-form button[type=submit]").click()
    page.visible("#view-clips")
    videos = api(base, "GET", "/api/video/list", token=user["token"])[1]["videos"]
    assert [v["youtube_video_id"] for v in videos] == ["vid00000001"]
    page.go("save")
    assert page.el("#save-info").get_attribute("data-state") == "none"  # reset with the form
    assert page.console_errors(allowed=("400",)) == []
