"""A playlist page in the look-ups (issue 18, item 5): its entries are listed so a client can
choose, and none of them is extracted — one yt-dlp call for the page, run by yt-dlp's own
playlist processing (``extract_flat``), at most 200 entries. A save of a playlist page is still
refused: a clip is of one video."""
from __future__ import annotations

from tests.youtube_fakes import stream_info, watch_url

LIST_ID = "PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf"
PLAYLIST = f"https://www.youtube.com/playlist?list={LIST_ID}"


def _playlist(n: int) -> dict:
    """A raw playlist info as yt-dlp's YouTube tab extractor returns it with flat entries."""
    return {"_type": "playlist", "id": LIST_ID, "title": "Best streams", "uploader": "Owl",
            "extractor": "youtube:tab", "extractor_key": "YoutubeTab", "webpage_url": PLAYLIST,
            "playlist_count": n, "entries": [
                {"_type": "url", "ie_key": "Youtube", "id": f"vid{i:08d}",
                 "url": watch_url(f"vid{i:08d}"), "title": f"Stream {i}", "duration": 60.0 + i}
                for i in range(n)]}


def test_resolutions_and_info_list_a_playlists_entries_without_extracting_them(
        client, fake_youtube):
    fake_youtube.set(PLAYLIST, _playlist(3))
    r = client.post("/api/video/resolutions", json={"url": PLAYLIST})
    assert r.status_code == 200, r.json
    assert (r.json["video_id"], r.json["resolutions"]) == (None, [])
    playlist = r.json["playlist"]
    assert (playlist["id"], playlist["title"], playlist["count"], playlist["truncated"]) == \
        (LIST_ID, "Best streams", 3, False)
    assert playlist["entries"][1] == {"video_id": "vid00000001", "title": "Stream 1",
                                      "duration": 61.0, "url": watch_url("vid00000001")}
    info = client.get("/api/video/info", query_string={"url": PLAYLIST})
    assert info.status_code == 200 and info.json["playlist"] == playlist
    assert [url for url, _thread in fake_youtube.calls] == [PLAYLIST, PLAYLIST]  # no entry


def test_at_most_200_entries_are_listed(client, fake_youtube):
    fake_youtube.set(PLAYLIST, _playlist(250))
    playlist = client.post("/api/video/resolutions", json={"url": PLAYLIST}).json["playlist"]
    assert (playlist["count"], playlist["truncated"], len(playlist["entries"])) == (200, True, 200)


def test_a_watch_url_in_a_list_is_the_video_and_a_playlist_cannot_be_saved(client, auth):
    user = auth.user()
    r = client.post("/api/video/save", headers=auth.public_headers(user),
                    json={"url": PLAYLIST, "start_time": 0, "end_time": 5})
    assert r.status_code == 400 and r.json["code"] == "INVALID_URL"
    video_id = auth.save_clip(user, watch_url() + f"&list={LIST_ID}", 0, 5)
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["status"] == "pending"


def test_a_page_that_is_not_a_playlist(client, fake_youtube):
    """A /playlist URL whose page yt-dlp reads as a single video is not listed as one."""
    fake_youtube.set(PLAYLIST, stream_info("not_live", None, duration=60))
    r = client.post("/api/video/resolutions", json={"url": PLAYLIST})
    assert r.status_code == 422 and r.json["code"] == "VIDEO_UNAVAILABLE"
