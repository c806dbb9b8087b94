"""Video endpoints (spec: Video Endpoints 1-7)."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, g, request

from .. import schemas
from ..media.audio import MIMETYPES as AUDIO_MIMETYPES
from ..middleware.auth import private_token_required, public_token_in_path, public_token_required
from ..services import (
    clip_views,
    download_service,
    live_capture,
    playback,
    stream_service,
    video_service,
)
from ..utils.files import send_media  # X-Accel-Redirect when enabled
from . import (
    NIGHTBOT_HEADERS,
    NONE,
    PRIVATE,
    PRIVATE_401,
    PUBLIC,
    PUBLIC_401,
    RESPONSE_URL_HEADER,
    Blueprint,
    chat_doc,
    wants_text,
)

blp = Blueprint("video", __name__, url_prefix="/api/video", description="Clips")

MIMETYPES = {"mp4": "video/mp4", "webm": "video/webm", **AUDIO_MIMETYPES}
VIDEO_ID = [{"in": "path", "name": "video_id", "description": "the clip's id (from the save)",
             "schema": {"type": "string", "pattern": schemas.OBJECT_ID}}]
#: The media layer's codes (src/media/errors.py): 422 about the video asked for, 500 ours.
MEDIA_422 = ", ".join(sorted(video_service.USER_SIDE_CODES))
MEDIA_500 = "SOURCE_HTTP_ERROR, FFMPEG_FAILED, JS_RUNTIME_MISSING, BOT_CHECK, UNKNOWN_ERROR"
SAVE_ERRORS = {400: "VALIDATION_ERROR (time range, unknown user_id), INVALID_URL",
               403: "TOKEN_USER_MISMATCH (a bound token saving for another user), "
                    "ACCOUNT_DISABLED",
               429: "RATE_LIMITED, PENDING_CLIPS_LIMIT", 413: "REQUEST_TOO_LARGE"}
#: A youtube.com/clip/ URL is read at save time (issue 13, item 9): its media errors too.
CLIP_SAVE_ERRORS = {422: MEDIA_422 + " (a youtube.com/clip/ URL)",
                    500: MEDIA_500 + " (a youtube.com/clip/ URL)"}
#: YouTube rate-limiting this server (issue 13, item 6), with Retry-After.
MEDIA_429 = "RATE_LIMITED (the video source rate-limits this server; retry after Retry-After)"
#: The clip file: Content-Disposition names it ``video_{id}.{ext}`` (an audio clip
#: ``clip_{id}.{ext}``, issue 18).
FILE_200 = {**schemas.STORED_FILE_ANSWERS, "200": {
    "description": "The clip's file (`?link=true` with files in the bucket: its URL)",
    "content": {**{mimetype: schemas.BINARY for mimetype in MIMETYPES.values()},
                **schemas.LINK_JSON}, "headers": {
    "Content-Disposition": {"description": 'attachment; filename="video_{video_id}.mp4" '
                                           '(audio: "clip_{video_id}.mp3")',
                            "schema": {"type": "string"}}}}}

#: The play URL's file (issue 17, item 4): whole (200) or the asked range (206).
RANGE_HEADER = {"in": "header", "name": "Range", "required": False,
                "schema": {"type": "string"}, "description": "`bytes=first-last` (RFC 9110 "
                "§14.2): answered 206 with that part"}
_PLAY_HEADERS = {name: {"description": text, "schema": {"type": "string"}} for name, text in (
    ("Content-Disposition", 'inline; filename="video_{video_id}.mp4"'),
    ("Cache-Control", "private, max-age={seconds until the URL expires}"),
    ("Accept-Ranges", "bytes"))}
PLAY_FILE_ANSWERS = {
    "200": {"description": "The whole file", "headers": _PLAY_HEADERS,
            "content": {mimetype: schemas.BINARY for mimetype in MIMETYPES.values()}},
    "206": {"description": "The part the Range header asks for (Content-Range says which)",
            "headers": {**_PLAY_HEADERS, "Content-Range": {
                "description": "bytes first-last/size", "schema": {"type": "string"}}},
            "content": {mimetype: schemas.BINARY for mimetype in MIMETYPES.values()}}}


@blp.post("/save")
@public_token_required
@blp.arguments(schemas.SaveVideoSchema)
@blp.response(201, schemas.SavedResponse)
@blp.errors({401: PUBLIC_401, **SAVE_ERRORS, **CLIP_SAVE_ERRORS})
@blp.doc(security=PUBLIC)
def save(body):
    """Save a clip request (public token); a youtube.com/clip/ URL is saved with its section."""
    video_id = video_service.save_clip(body, g.public_token)
    return {"message": "Video info saved successfully", "video_id": video_id}


@blp.post("/save/live")
@public_token_required
@blp.arguments(schemas.SaveLiveSchema)
@blp.response(201, schemas.SavedResponse)
@blp.errors({401: PUBLIC_401, 400: "VALIDATION_ERROR (duration, unknown user_id), INVALID_URL, "
                                   "NOT_LIVE, SOURCE_NOT_ALLOWED",
             403: SAVE_ERRORS[403], 413: "REQUEST_TOO_LARGE",
             429: "RATE_LIMITED, PENDING_CLIPS_LIMIT, TOO_MANY_JOBS, " + MEDIA_429,
             422: MEDIA_422, 500: MEDIA_500, 507: "INSUFFICIENT_STORAGE"})
@blp.doc(security=PUBLIC)
def save_live(body):
    """Clip the last seconds of a live source now (public token): recorded while it is live."""
    video_id = live_capture.save_live(body, g.public_token)
    return {"message": "Live clip saved; it is being recorded", "video_id": video_id}


def _stream_doc() -> dict:
    """The stream save's answers: JSON, or plain text for chat (Nightbot headers or
    ``?format=text``), errors included — every status in both content types."""
    return chat_doc(201, "SavedResponse", "Saved (plain text for chat: one line under 400 "
                                          "characters)", {
        401: PUBLIC_401, 400: SAVE_ERRORS[400] + ", CHANNEL_REQUIRED ('live' without a "
        "channel)", 403: SAVE_ERRORS[403] + ", CLIP_NOT_ALLOWED (the Nightbot user's level is "
        "below the channel's minimum)", 429: SAVE_ERRORS[429], 413: SAVE_ERRORS[413]})


@blp.route("/save/stream/<token>/<youtube_id>", methods=["GET", "POST"], parameters=[
    {"in": "path", "name": "token", "description": "a public token (Nightbot cannot send "
     "headers); refused with 401 like a bearer token", "schema": {"type": "string"}},
    {"in": "path", "name": "youtube_id", "description": "an 11-character YouTube video id, or "
     "`live` for the channel's current stream (needs `channel` or Nightbot-Channel)",
     "schema": {"type": "string", "pattern": r"^([A-Za-z0-9_-]{11}|live)$"}},
    *NIGHTBOT_HEADERS, RESPONSE_URL_HEADER])
@public_token_in_path
@blp.arguments(schemas.SaveStreamQuery, location="query")
@blp.response(201, schemas.SavedResponse)
@blp.doc(**_stream_doc())
def save_stream(query, token, youtube_id):
    """Save a clip of a live stream at this moment (Nightbot; `live` = the channel's stream)."""
    saved = stream_service.save_stream_clip(
        youtube_id, query, datetime.now(timezone.utc), g.public_token,
        stream_service.parse_identity(request.headers.get("Nightbot-User")),
        stream_service.parse_identity(request.headers.get("Nightbot-Channel")),
        request.headers.get("Nightbot-Response-Url") if query["followup"] else None)
    if wants_text():
        return Response(stream_service.text_reply(saved), 201,
                        mimetype="text/plain")
    return {"message": "Video clip saved successfully", "video_id": saved["video_id"],
            "youtube_video_id": saved["youtube_video_id"]}


@blp.after_app_request
def _text_errors(response):
    """Errors of the stream save reach a chat as one short line with the same status code."""
    if request.endpoint == "video.save_stream" and response.status_code >= 400 \
            and response.is_json and wants_text():
        body = response.get_json(silent=True) or {}
        response.set_data(stream_service.error_text(body.get("error", "error"),
                                                    body.get("code", "ERROR")))
        response.mimetype = "text/plain"
    return response


@blp.post("/download/<video_id>", parameters=VIDEO_ID)
@private_token_required
@blp.arguments(schemas.DownloadSchema(), required=False)
@blp.arguments(schemas.DownloadLinkQuery, location="query")
@blp.alt_response(202, schema=schemas.ProcessingResponse, description="Still processing",
                  success=True)
@blp.errors({401: PRIVATE_401, 403: "FORBIDDEN (not your clip)", 404: "NOT_FOUND",
             410: "FILE_EXPIRED (ask again: a new job starts)", 413: "REQUEST_TOO_LARGE",
             400: "VALIDATION_ERROR, SOURCE_NOT_ALLOWED, FORMAT_ID_UNAVAILABLE (the body's "
                  "format_id is not offered or not fetchable)",
             409: "a live clip whose recording failed: its recorded code (final)",
             422: MEDIA_422,
             429: "TOO_MANY_JOBS, " + MEDIA_429, 500: MEDIA_500 + ", JOB_INTERRUPTED",
             507: "INSUFFICIENT_STORAGE"})
@blp.doc(security=PRIVATE, responses=FILE_200)
def download(prefs, query, video_id):
    """Download the clip's file; starts or joins the job and waits a little (else 202)."""
    result = download_service.request_download(video_id, g.current_user["user_id"], prefs or {})
    if result.get("processing"):
        return {"message": "Video is currently being processed", "status": "processing"}, 202
    return send_media(result["file"], mimetype=MIMETYPES[result["ext"]], link=query["link"],
                      disposition=f'attachment; filename="{_file_name(video_id, result["ext"])}"')


def _file_name(video_id: str, ext: str) -> str:
    """``video_{id}.{ext}``, an audio clip ``clip_{id}.{ext}`` (issue 18)."""
    return f'{"clip" if ext in AUDIO_MIMETYPES else "video"}_{video_id}.{ext}'


@blp.get("/download/<video_id>/subtitles/<lang>.vtt", parameters=[*VIDEO_ID, {
    "in": "path", "name": "lang", "description": "a language of the status' `subtitles`",
    "schema": {"type": "string", "pattern": schemas.LANGUAGE}}])
@private_token_required
@blp.arguments(schemas.DownloadLinkQuery, location="query")
@blp.errors({401: PRIVATE_401, 403: "FORBIDDEN (not your clip)",
             404: "NOT_FOUND (no such clip, or its file has no subtitles in that language)",
             410: "FILE_EXPIRED (the file expired just now: download the clip again)"})
@blp.doc(security=PRIVATE, responses={**schemas.STORED_FILE_ANSWERS, "200": {
    "description": "WebVTT (`?link=true` with files in the bucket: its URL)", "content": {
        "text/vtt": {"schema": {"type": "string"}}, **schemas.LINK_JSON}}})
def subtitles(query, video_id, lang):
    """The WebVTT subtitles of the clip's finished file in one language (issue 18)."""
    path = clip_views.subtitle_file(video_id, g.current_user["user_id"], lang)
    return send_media(path, mimetype="text/vtt", link=query["link"],
                      disposition=f'attachment; filename="clip_{video_id}.{lang}.vtt"')


@blp.get("/status/<video_id>", parameters=VIDEO_ID)
@private_token_required
@blp.alt_response(200, schema=schemas.VideoStatusSchema, description="The clip's status",
                  success=True)
@blp.errors({401: PRIVATE_401, 403: "FORBIDDEN (not your clip)", 404: "NOT_FOUND"})
@blp.doc(security=PRIVATE)
def status(video_id):
    """Status, progress and file facts of a clip (polled: answered without a schema dump)."""
    doc = video_service.get_owned(video_id, g.current_user["user_id"])
    return clip_views.status_view(download_service.reap_if_dead(doc))


@blp.get("/list")
@private_token_required
@blp.arguments(schemas.VideoListQuery, location="query")
@blp.response(200, schemas.VideoListSchema)
@blp.errors({401: PRIVATE_401, 400: "VALIDATION_ERROR",
             403: "FORBIDDEN (?owner= names an account whose clips you do not moderate)"})
@blp.doc(security=PRIVATE)
def list_videos(query):
    """The user's clips, newest first: all of them (the spec's answer), or searched,
    filtered, paged and grouped by stream through the query parameters."""
    return clip_views.list_clips(g.current_user["user_id"], query)


@blp.post("/play/<video_id>", parameters=VIDEO_ID)
@private_token_required
@blp.response(200, schemas.PlayResponse)
@blp.errors({401: PRIVATE_401, 403: "FORBIDDEN (not your clip)", 404: "NOT_FOUND",
             409: "FILE_NOT_READY (no finished file: download the clip first)"})
@blp.doc(security=PRIVATE)
def play(video_id):
    """A short-lived signed URL that plays the finished clip (a <video> sends no token)."""
    return playback.play_url(video_id, g.current_user["user_id"])


@blp.get("/play/<video_id>/file", parameters=[*VIDEO_ID, RANGE_HEADER])
@blp.arguments(schemas.PlayFileQuery, location="query")
@blp.errors({403: "INVALID_SIGNATURE, URL_EXPIRED (ask POST /api/video/play/{id} again)",
             404: "NOT_FOUND (the clip or its file is gone)", 410: "FILE_EXPIRED",
             416: "ERROR (the Range is outside the file)"})
@blp.doc(security=NONE, responses=PLAY_FILE_ANSWERS)
def play_file(query, video_id):
    """The clip's file inline for a <video> element, by a signed URL; honours HTTP Range."""
    path, ext, seconds_left = playback.signed_file(video_id, query["exp"], query["sig"])
    return send_media(path, mimetype=MIMETYPES[ext], private_max_age=seconds_left,
                      disposition=f'inline; filename="{_file_name(video_id, ext)}"')


@blp.get("/thumbnail/<video_id>.jpg", parameters=VIDEO_ID)
@blp.arguments(schemas.PlayFileQuery, location="query")
@blp.errors({403: "INVALID_SIGNATURE, URL_EXPIRED (refresh the clip list for a new URL)",
             404: "NOT_FOUND (the clip has no thumbnail: audio, not finished, expired)",
             410: "FILE_EXPIRED"})
@blp.doc(security=NONE, responses={"200": {
    "description": "The JPEG of the clip's moment", "content": {"image/jpeg": schemas.BINARY},
    "headers": {"Cache-Control": {"description": "private, max-age={seconds until the URL "
                                                 "expires}", "schema": {"type": "string"}}}}})
def thumbnail(query, video_id):
    """The thumbnail of a clip's moment for an <img>, by the signed `thumbnail_url` of the
    clip list (an <img> sends no token)."""
    path, seconds_left = playback.signed_thumbnail(video_id, query["exp"], query["sig"])
    return send_media(path, mimetype="image/jpeg", private_max_age=seconds_left)


@blp.get("/formats/<video_id>", parameters=[
    {"in": "path", "name": "video_id", "description": "a clip's id or an 11-character YouTube "
     "video id", "schema": {"type": "string", "pattern": r"^([0-9a-f]{24}|[A-Za-z0-9_-]{11})$"}}])
@private_token_required
@blp.arguments(schemas.FormatsQuery, location="query")
@blp.response(200, schemas.FormatsResponse)
@blp.errors({401: PRIVATE_401, 403: "FORBIDDEN (not your clip)", 404: "NOT_FOUND",
             400: "INVALID_ID, SOURCE_NOT_ALLOWED, VALIDATION_ERROR", 422: MEDIA_422,
             429: MEDIA_429, 500: MEDIA_500})
@blp.doc(security=PRIVATE)
def formats(query, video_id):
    """Resolutions and containers available for a clip (document id) or a YouTube id;
    `?detail=true` adds every format labelled (sizes for the clip's duration)."""
    return video_service.formats_for(video_id, g.current_user["user_id"], query["detail"])


@blp.post("/resolutions")
@blp.arguments(schemas.ResolutionsQuery)
@blp.response(200, schemas.ResolutionsResponse)
@blp.errors({400: "VALIDATION_ERROR, INVALID_URL, SOURCE_NOT_ALLOWED", 422: MEDIA_422,
             429: "RATE_LIMITED (this endpoint's limit, or " + MEDIA_429 + ")",
             413: "REQUEST_TOO_LARGE", 500: MEDIA_500})
@blp.doc(security=NONE)
def resolutions(body):
    """Resolutions available for a video URL (no authentication)."""
    return video_service.resolutions_for(body["url"])


@blp.get("/info")
@blp.arguments(schemas.InfoQuery, location="query")
@blp.response(200, schemas.VideoInfoResponse)
@blp.errors({400: "VALIDATION_ERROR, INVALID_URL, SOURCE_NOT_ALLOWED",
             422: MEDIA_422 + " (GEO_RESTRICTED: details.allowed_countries when known)",
             429: "RATE_LIMITED (this endpoint's limit, or " + MEDIA_429 + ")",
             413: "REQUEST_TOO_LARGE", 500: MEDIA_500})
@blp.doc(security=NONE)
def info(query):
    """What a video is: title, channel, duration, dates, live status, thumbnail, size estimate,
    audio and subtitle languages (no authentication; issue 18)."""
    return video_service.info_for(query["url"])
