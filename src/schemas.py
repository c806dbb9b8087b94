"""Marshmallow schemas: request validation and response shapes (they also drive the OpenAPI doc).

Numbers in JSON bodies must be JSON numbers: ``"60"`` and ``true`` are rejected (:class:`Seconds`).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from marshmallow import Schema, ValidationError, fields, validate

FORMATS = ("mp4", "webm", "best")
#: An audio clip's formats and bitrates (issue 18, src/media/audio.py).
AUDIO_FORMATS = ("mp3", "m4a", "opus")
AUDIO_BITRATES = (64, 96, 128, 160, 192, 256, 320)
#: A subtitle language as yt-dlp names them (BCP 47 tags like ``en``, ``pt-BR``, ``zh-Hans``;
#: YouTube's ``en-orig``): also a file-name part of the clip's sidecar files.
LANGUAGE = r"^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8}){0,3}$"
RESOLUTIONS = ("720p", "1080p", "1440p", "2160p", "4320p", "best")
#: Clip list (issue 17, item 4): longest search text, default page size, highest page number,
#: most stream groups listed.
MAX_QUERY_LENGTH = 100
DEFAULT_PER_PAGE = 20
MAX_PAGE = 10_000
MAX_GROUPS = 500


class Seconds(fields.Float):
    """A finite, non-negative number of seconds; strings and booleans are not numbers."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("Must be a number (seconds).")
        if not math.isfinite(value) or value < 0:
            raise ValidationError("Must be a finite number ≥ 0.")
        return float(value)


class QuerySeconds(fields.Float):
    """Seconds given in a query string ("60", "12.5"): finite and ≥ 0."""

    def _deserialize(self, value, attr, data, **kwargs):
        number = super()._deserialize(value, attr, data, **kwargs)
        if not math.isfinite(number) or number < 0:
            raise ValidationError("Must be a finite number ≥ 0.")
        return number


class CredentialsSchema(Schema):
    """Register: a valid email and a password of 8-128 characters."""

    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))


class LoginSchema(Schema):
    """Login: email and password (checked against the stored bcrypt hash)."""

    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class ChangePasswordSchema(Schema):
    """The current password and a new one of 8-128 characters."""

    current_password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    new_password = fields.String(required=True, validate=validate.Length(min=8, max=128))


class UserSchema(Schema):
    id = fields.String()
    email = fields.String()


class MessageSchema(Schema):
    message = fields.String()


class RegisterResponse(MessageSchema):
    user_id = fields.String()


class LoginResponse(MessageSchema):
    token = fields.String()
    user = fields.Nested(UserSchema)


class MeResponse(Schema):
    user = fields.Nested(UserSchema)


class PublicTokenResponse(Schema):
    token = fields.String()
    expires_in = fields.Integer(metadata={"description": "seconds"})
    jti = fields.String(metadata={"description": "token id, for listing and revocation"})
    user_id = fields.String(allow_none=True,
                            metadata={"description": "the user a bound token saves for"})


class PublicTokenInfo(Schema):
    jti = fields.String()
    created_at = fields.String()
    expires_at = fields.String()
    revoked = fields.Boolean()


class PublicTokenListResponse(Schema):
    tokens = fields.List(fields.Nested(PublicTokenInfo))


class SaveVideoSchema(Schema):
    """A clip request: times in seconds (JSON numbers), the owner's user id (a bound public
    token names its owner, so only an anonymous token needs it)."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=2048), metadata={
        "description": "a video page: YouTube watch, youtu.be, /shorts/, /live/, /embed/ "
                       "(www., m., music.) or another allowed source; a youtube.com/clip/ URL "
                       "is saved as its video with the clip's section as start and end"})
    start_time = Seconds(required=True)
    end_time = Seconds(required=True)
    user_id = fields.String(load_default=None, metadata={
        "description": "required with an anonymous token; optional with a bound one"})
    additional_message = fields.String(load_default=None, allow_none=True,
                                       validate=validate.Length(max=500))
    clip_offset = Seconds(load_default=None, allow_none=True)


class SaveLiveSchema(Schema):
    """Clip the last seconds of a live source (issue 14, item 3): the moment is the request
    time minus ``STREAM_DELAY_SECONDS``; the clip covers ``offset`` seconds before it and
    lasts ``duration``."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=2048), metadata={
        "description": "a live page or stream on an allowed host (a YouTube live, a live HLS "
                       "playlist)"})
    user_id = fields.String(load_default=None, metadata={
        "description": "required with an anonymous token; optional with a bound one"})
    offset = Seconds(load_default=60, metadata={"description": "seconds before the moment"})
    duration = Seconds(load_default=120, validate=validate.Range(min=1), metadata={
        "description": "seconds of the clip (at most MAX_VIDEO_DURATION)"})
    additional_message = fields.String(load_default=None, allow_none=True,
                                       validate=validate.Length(max=500))


class SaveStreamQuery(Schema):
    """Query of the Nightbot stream save (seconds as query strings)."""

    user_id = fields.String(load_default=None, metadata={
        "description": "required with an anonymous token; optional with a bound one"})
    message = fields.String(load_default=None, validate=validate.Length(max=500))
    offset = QuerySeconds(load_default=None, metadata={
        "description": "seconds kept before the moment (default: the channel's setting, else 60)"})
    duration = QuerySeconds(load_default=None, validate=validate.Range(
        min=0, min_inclusive=False), metadata={
        "description": "clip length in seconds (default: the channel's setting, else 120)"})
    t = QuerySeconds(load_default=None, metadata={
        "description": "the moment in the video, in seconds; without it the moment is placed "
                       "from the stream's start time by a background resolver"})
    delay = QuerySeconds(load_default=None, metadata={
        "description": "viewer latency in seconds, subtracted from the request time "
                       "(default STREAM_DELAY_SECONDS)"})
    channel = fields.String(load_default=None, validate=validate.Regexp(r"^UC[\w-]{22}$"),
                            metadata={"description": "YouTube channel id for the video id "
                                                     "`live` (default: Nightbot-Channel's)"})
    format = fields.String(load_default=None, validate=validate.OneOf(("json", "text")),
                           metadata={"description": "`text`: a short plain-text reply for chat"})
    followup = fields.Boolean(load_default=True, metadata={
        "description": "`0`: no follow-up chat message through Nightbot-Response-Url when the "
                       "clip is ready or failed (default: on, unless NIGHTBOT_FOLLOWUP is off)"})


class SavedResponse(MessageSchema):
    video_id = fields.String()
    youtube_video_id = fields.String(allow_none=True)


class DownloadSchema(Schema):
    """Optional download preferences; missing ones keep the clip's."""

    format_preference = fields.String(load_default=None, validate=validate.OneOf(
        FORMATS + AUDIO_FORMATS), metadata={
        "description": "mp4 | webm | best, or an audio-only clip: mp3 | m4a | opus (issue 18)"})
    resolution_preference = fields.String(load_default=None, validate=validate.OneOf(RESOLUTIONS))
    audio_bitrate = fields.Integer(load_default=None, strict=True, validate=validate.OneOf(
        AUDIO_BITRATES), metadata={
        "description": "kbit/s of an audio clip's encode (default 192; opus 128). m4a and opus "
                       "copy the source's AAC/Opus unless a lower bitrate is asked"})
    subtitles = fields.List(fields.String(validate=validate.Regexp(LANGUAGE)), load_default=None,
                            validate=validate.Length(max=10), metadata={
        "description": "languages (GET /api/video/formats/{id} lists them): the cues of the "
                       "segment, shifted to the clip's time; [] for none"})
    subtitles_mode = fields.String(load_default=None, validate=validate.OneOf(
        ("embed", "sidecar")), metadata={
        "description": "embed (default for mp4/webm: mov_text / WebVTT tracks) or sidecar "
                       "(WebVTT files: GET /api/video/download/{id}/subtitles/{lang}.vtt; "
                       "the only mode of an audio clip)"})
    quality_preset = fields.String(load_default=None, validate=validate.OneOf(
        ("lossless", "high", "medium")), metadata={
        "description": "H.265 quality when an MP4 above 1080p must be re-encoded from WebM "
                       "(default HIGHRES_MP4_PRESET)"})
    format_id = fields.String(load_default=None, validate=validate.Regexp(
        r"^[A-Za-z0-9_.-]{1,64}(\+[A-Za-z0-9_.-]{1,64})?$"), metadata={
        "description": "exactly these formats (issue 18): one format id with video, or "
                       "`video+audio` (ids from GET /api/video/formats/{id}?detail=true); no "
                       "format logic runs. Absent: the clip's (a format or resolution preference "
                       "without it returns to the format logic)"})


class ProcessingResponse(MessageSchema):
    status = fields.String()


class ProgressSchema(Schema):
    current_phase = fields.String(metadata={
        "description": "initializing | downloading | encoding, or recording while a live clip "
                       "waits for the stream (issue 14)"})
    seconds_to_come = fields.Float(metadata={
        "description": "recording: seconds of the clip the stream has not produced yet"})
    download_progress = fields.Float()
    encoding_progress = fields.Float()
    speed = fields.String(allow_none=True)
    eta = fields.String(allow_none=True)
    fps = fields.Float()


class VideoSummarySchema(Schema):
    video_id = fields.String()
    url = fields.String()
    youtube_video_id = fields.String(allow_none=True)
    start_time = fields.Float(allow_none=True)
    end_time = fields.Float(allow_none=True)
    status = fields.String()
    created_at = fields.String()
    file_available = fields.Boolean()
    additional_message = fields.String(allow_none=True)
    error_message = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)
    phase = fields.String(allow_none=True, metadata={
        "description": "a pending stream clip: resolving | waiting_for_vod"})
    nightbot_user = fields.Dict(allow_none=True, metadata={
        "description": "who typed the command: name, displayName, provider, providerId, userLevel"})
    title = fields.String(allow_none=True, metadata={
        "description": "the video's title (from the extraction; null until known)"})
    channel = fields.String(allow_none=True, metadata={
        "description": "the video's channel (or uploader) name; null until known"})
    thumbnail_url = fields.String(allow_none=True, metadata={
        "description": "a finished clip: a signed URL of the JPEG of its moment, valid 1-2 h "
                       "and stable within the hour (cacheable); null: none"})


class VideoStatusSchema(VideoSummarySchema):
    available_formats = fields.List(fields.String())
    format_preference = fields.String(allow_none=True)
    resolution_preference = fields.String(allow_none=True)
    file_size_mb = fields.Float(allow_none=True)
    expires_at = fields.String(allow_none=True)
    progress = fields.Nested(ProgressSchema, allow_none=True)
    format_id = fields.String(allow_none=True, metadata={
        "description": "the format id(s) the download names, if any (issue 18)"})
    video_info = fields.Nested("VideoInfoSchema", allow_none=True, metadata={
        "description": "filled by the background format look-up after the save (issue 18)"})
    formats_error = fields.String(allow_none=True, metadata={
        "description": "the media error code of that look-up, when it failed"})
    audio_bitrate = fields.Integer(allow_none=True)
    live_window = fields.Dict(allow_none=True, metadata={
        "description": "a live clip (POST /api/video/save/live): {start_at, end_at}, the "
                       "wall-clock span it records, ISO-8601 UTC; also a stream clip from "
                       "chat while it is recorded from the live stream (issue 14)"})
    live_fallback = fields.Dict(allow_none=True, metadata={
        "description": "a stream clip that could not be recorded live and waits for the VOD "
                       "instead: {code, message}, the reason (issue 14)"})
    subtitles_mode = fields.String(allow_none=True)
    subtitles = fields.List(fields.Nested("ClipSubtitleSchema"), metadata={
        "description": "the subtitle files of the finished file (issue 18)"})
    subtitle_errors = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "languages asked for but left out, with the reason"})


class ClipSubtitleSchema(Schema):
    lang = fields.String()
    automatic = fields.Boolean()
    cues = fields.Integer()
    url = fields.String(metadata={"description": "the WebVTT file (private token)"})


class StreamGroupSchema(Schema):
    youtube_video_id = fields.String(allow_none=True, metadata={
        "description": "the stream (YouTube video id); null for clips of other sources"})
    count = fields.Integer(metadata={"description": "clips of that stream that match"})


class VideoListSchema(Schema):
    """The clip list: the spec's ``{"videos": [...]}``; with any query parameter also
    ``total``, with paging ``page`` and ``per_page``, with ``group=stream`` ``groups``."""

    videos = fields.List(fields.Nested(VideoSummarySchema))
    total = fields.Integer(metadata={"description": "clips matching the filters (all pages)"})
    page = fields.Integer()
    per_page = fields.Integer()
    groups = fields.List(fields.Nested(StreamGroupSchema), metadata={
        "description": "group=stream: the matching clips counted by stream, newest stream first "
                       f"(at most {MAX_GROUPS})"})


class FormatsResponse(Schema):
    video_id = fields.String()
    resolutions = fields.List(fields.String())
    extensions = fields.List(fields.String())
    formats = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    details = fields.List(fields.Nested("FormatDetailSchema"), metadata={
        "description": "with ?detail=true only: every format labelled (issue 18)"})
    audio_formats = fields.List(fields.String(), metadata={
        "description": "audio-only clip formats offered (mp3, m4a, opus); empty without audio"})
    subtitles = fields.List(fields.Nested("SubtitleLanguageSchema"), metadata={
        "description": "subtitle languages a download may ask for (issue 18)"})


class FormatsQuery(Schema):
    detail = fields.Boolean(load_default=False, metadata={
        "description": "true: add `details`, every format labelled"})


class FormatDetailSchema(Schema):
    """One format labelled (issue 18): sizes in bytes for the clip's duration (a stored clip)
    or the whole video (a YouTube id); null when unknown."""

    format_id = fields.String(allow_none=True)
    ext = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True, metadata={"description": "`1280x720` or "
                                                                         "`audio only`"})
    height = fields.Integer(allow_none=True)
    fps = fields.Float(allow_none=True)
    vcodec = fields.String(allow_none=True, metadata={
        "description": "H.264, H.265, VP9, AV1, … or `none`"})
    acodec = fields.String(allow_none=True, metadata={
        "description": "AAC, Opus, MP3, … or `none`"})
    vcodec_raw = fields.String(allow_none=True)
    acodec_raw = fields.String(allow_none=True)
    tbr = fields.Float(allow_none=True, metadata={"description": "kbit/s"})
    filesize = fields.Integer(allow_none=True)
    filesize_approx = fields.Integer(allow_none=True)
    protocol = fields.String(metadata={"description": "http, https, dash or hls"})
    dynamic_range = fields.String(allow_none=True)
    hdr = fields.Boolean()


class SubtitleLanguageSchema(Schema):
    lang = fields.String()
    automatic = fields.Boolean(metadata={"description": "true: automatic captions"})
    exts = fields.List(fields.String())


class VideoInfoSchema(Schema):
    """What a video is (issue 18): sizes in SI units (1 MB = 10^6 bytes), dates ISO-8601 UTC;
    null when the source does not say."""

    id = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    uploader = fields.String(allow_none=True)
    uploader_id = fields.String(allow_none=True)
    uploader_url = fields.String(allow_none=True)
    channel = fields.String(allow_none=True)
    channel_id = fields.String(allow_none=True)
    channel_url = fields.String(allow_none=True)
    duration = fields.Float(allow_none=True, metadata={"description": "seconds"})
    duration_hms = fields.String(allow_none=True, metadata={"description": "H:MM:SS"})
    upload_date = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD"})
    timestamp = fields.String(allow_none=True)
    release_timestamp = fields.String(allow_none=True, metadata={
        "description": "a stream's (scheduled) start"})
    live_status = fields.String(allow_none=True)
    thumbnail = fields.String(allow_none=True)
    filesize = fields.Integer(allow_none=True, metadata={
        "description": "bytes of the whole video in the formats a default clip chooses"})
    filesize_human = fields.String(allow_none=True, metadata={"description": "e.g. `12.3 MB`"})
    audio_languages = fields.List(fields.String())
    subtitles = fields.List(fields.Nested(SubtitleLanguageSchema))
    has_subtitles = fields.Boolean()
    availability = fields.String(allow_none=True)
    is_geo_restricted = fields.Boolean(allow_none=True, metadata={
        "description": "null: unknown (yt-dlp's info has no geo field; a video this server "
                       "cannot reach is the 422 GEO_RESTRICTED error instead)"})
    allowed_countries = fields.List(fields.String(), allow_none=True)
    blocked_countries = fields.List(fields.String(), allow_none=True)


class PlaylistEntrySchema(Schema):
    video_id = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    duration = fields.Float(allow_none=True, metadata={"description": "seconds"})
    url = fields.String(allow_none=True)


class PlaylistSchema(Schema):
    """A playlist page's entries, listed without extracting any (issue 18, item 5)."""

    id = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    uploader = fields.String(allow_none=True)
    count = fields.Integer(metadata={"description": "entries listed (at most 200)"})
    truncated = fields.Boolean(metadata={"description": "the playlist has more entries"})
    entries = fields.List(fields.Nested(PlaylistEntrySchema))


class VideoInfoResponse(VideoInfoSchema):
    video_id = fields.String(allow_none=True, metadata={"description": "the YouTube id, if any"})
    url = fields.String()
    playlist = fields.Nested(PlaylistSchema, metadata={
        "description": "a YouTube playlist page: its entries (then no video fields)"})


class InfoQuery(Schema):
    """The video URL to look up (a query string)."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class ResolutionsQuery(Schema):
    """The video URL to look up."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class ResolutionsResponse(Schema):
    video_id = fields.String(allow_none=True)
    url = fields.String()
    resolutions = fields.List(fields.String())
    playlist = fields.Nested(PlaylistSchema, metadata={
        "description": "a YouTube playlist page: its entries (then `resolutions` is empty)"})


# --- The OpenAPI document (issue 16, item 1): error shape, path ids, files, health ------------

#: A clip's or an upload's document id (a MongoDB ObjectId as 24 lower-case hex digits).
OBJECT_ID = r"^[0-9a-f]{24}$"
#: A YouTube video id (11 characters of the URL-safe base64 alphabet).
YOUTUBE_ID = r"^[A-Za-z0-9_-]{11}$"


class ErrorSchema(Schema):
    """The one error shape of every non-2xx JSON answer (DESIGN.md, Conventions); installed as
    flask-smorest's ``Api.ERROR_SCHEMA`` so the ``Error`` component is this shape."""

    class Meta:
        ordered = True

    error = fields.String(required=True, metadata={"description": "human message"})
    code = fields.String(required=True, metadata={
        "description": "machine code (README, Errors), e.g. VALIDATION_ERROR, INVALID_TOKEN"})
    details = fields.Dict(keys=fields.String(), metadata={
        "description": "validation errors: field → messages (nested for nested fields)"})


class HealthCheckSchema(Schema):
    """One dependency check; the other keys depend on the check (``free_mb``, ``running``…)."""

    class Meta:
        unknown = "include"

    ok = fields.Boolean(required=True)
    error = fields.String(metadata={"description": "why the check failed"})


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(
        ("ok", "degraded", "unavailable")))
    checks = fields.Dict(keys=fields.String(), required=True, metadata={
        "description": "mongodb, redis, ffmpeg, disk, storage, jobs, yt_dlp: each {ok, "
                       "error?, …}; `embedded`: the stores running in-process (a list of "
                       "setting names)"})


class ReadySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ready", "unavailable")))
    failing = fields.List(fields.String(), required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(HealthCheckSchema),
                         required=True)


class LiveSchema(Schema):
    status = fields.String(required=True, validate=validate.Equal("alive"))


class EncodeStatusSchema(Schema):
    encode_id = fields.String()
    status = fields.String(validate=validate.OneOf(
        ("pending", "processing", "completed", "failed", "expired")))
    progress = fields.Float(metadata={"description": "0-100"})
    original_filename = fields.String(allow_none=True)
    video_codec = fields.String(allow_none=True)
    quality_preset = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    encoding_started_at = fields.String(allow_none=True)
    encoding_completed_at = fields.String(allow_none=True)
    file_available = fields.Boolean()
    file_size_mb = fields.Float(allow_none=True)
    metadata = fields.Dict(allow_none=True)
    expires_at = fields.String(allow_none=True)
    error_message = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)


#: A file answer (OpenAPI 3.0: a binary string) for ``content`` of a response.
BINARY = {"schema": {"type": "string", "format": "binary"}}


# --- Chat commands (issue 17, item 1): !clipedit, !clipdelete, !recent, !clipsearch ----------

class ChatQuery(Schema):
    """Query of a chat command (Nightbot's ``$(querystring)`` fills ``message``)."""

    message = fields.String(load_default=None, validate=validate.Length(max=500), metadata={
        "description": "the command's words: edit `[id] text`, delete `[id]`, recent `[n]` "
                       "(≤ 5), search `words`; `id` is the clip id the stream save replied "
                       "with (without it: this channel's newest clip)"})
    channel = fields.String(load_default=None, validate=validate.Regexp(r"^UC[\w-]{22}$"),
                            metadata={"description": "YouTube channel id whose clips are meant "
                                                     "(default: Nightbot-Channel's; none: all "
                                                     "of the owner's stream clips)"})
    format = fields.String(load_default=None, validate=validate.OneOf(("json", "text")),
                           metadata={"description": "`text`: a short plain-text reply for chat"})


class ChatClipSchema(Schema):
    video_id = fields.String()
    position = fields.Float(allow_none=True, metadata={
        "description": "the moment in the stream (seconds); null while it is being placed"})
    time = fields.String(allow_none=True, metadata={"description": "`position` as H:MM:SS"})
    message = fields.String(allow_none=True)
    status = fields.String()
    youtube_video_id = fields.String(allow_none=True)


class ChatReplySchema(Schema):
    """A chat command's answer: the chat line, whether it did what was asked (false: a refusal
    for the user's level, or a usage hint; nothing changed) and the clips it is about."""

    message = fields.String(metadata={"description": "the reply for chat (under 400 characters)"})
    done = fields.Boolean()
    clips = fields.List(fields.Nested(ChatClipSchema))


# --- The clip library (issue 17, item 4): list query, playback ------------------------------

class ListDateTime(fields.String):
    """An ISO-8601 date-time (``2026-12-01T20:00:00Z``; no offset = UTC) or a date
    (``2026-12-01``): loaded as an aware UTC datetime. With ``end_of_day`` a date alone means
    the end of that day (the next midnight). Python's ``datetime.fromisoformat`` reads it
    (3.11: RFC 3339 and the other ISO-8601 forms); instants outside years 1-9999 once in UTC
    are clamped to those bounds."""

    def __init__(self, end_of_day: bool = False, **kwargs):
        kwargs["metadata"] = {"format": "date-time", "minLength": 8, "maxLength": 40,
                              **kwargs.get("metadata", {})}
        super().__init__(**kwargs)
        self.end_of_day = end_of_day

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if not 8 <= len(text) <= 40:
                raise ValueError(text)
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValidationError("Not an ISO-8601 date or date-time.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        date_only = len(text.strip()) <= 10 and "T" not in text.upper()
        try:
            moment = moment.astimezone(timezone.utc)
            if date_only and self.end_of_day:
                moment += timedelta(days=1)
        except OverflowError:
            bound = datetime.min if moment.year < 5000 else datetime.max
            moment = bound.replace(tzinfo=timezone.utc)
        return moment


#: Every status a clip can have (spec statuses + ``expired``, DESIGN.md).
CLIP_STATUSES = ("pending", "processing", "completed", "failed", "expired")
#: A YouTube channel id (``UC`` + 22 characters of the URL-safe base64 alphabet).
CHANNEL_ID = r"^UC[A-Za-z0-9_-]{22}$"


class VideoListQuery(Schema):
    """Search, filters, paging and grouping of GET /api/video/list (issue 17, item 4). Without
    any parameter the answer is the spec's (every clip up to 500, newest first)."""

    q = fields.String(load_default=None, validate=validate.Length(max=MAX_QUERY_LENGTH),
                      metadata={"description": "words, each found (case-insensitively, "
                                "literally) in the clip's message, its video's title or its "
                                "chat user's name"})
    status = fields.String(load_default=None, validate=validate.OneOf(CLIP_STATUSES))
    channel = fields.String(load_default=None, validate=validate.Regexp(CHANNEL_ID), metadata={
        "description": "the YouTube channel the clip was saved from (stream clips)"})
    youtube_video_id = fields.String(load_default=None, validate=validate.Regexp(YOUTUBE_ID),
                                     metadata={"description": "clips of this video or stream"})
    since = ListDateTime(load_default=None, metadata={
        "description": "clips saved at or after this moment (a date alone: its midnight UTC)"})
    until = ListDateTime(end_of_day=True, load_default=None, metadata={
        "description": "clips saved before this moment (a date alone: through that day, UTC)"})
    page = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_PAGE),
                          metadata={"description": "page number (from 1); paging also with "
                                                   "per_page alone"})
    per_page = fields.Integer(load_default=None, validate=validate.Range(min=1, max=100),
                              metadata={"description": f"clips per page (default "
                                                       f"{DEFAULT_PER_PAGE} when paging)"})
    group = fields.String(load_default=None, validate=validate.OneOf(("stream",)), metadata={
        "description": "`stream`: add `groups`, the matching clips counted by stream"})
    owner = fields.String(load_default=None, validate=validate.Regexp(OBJECT_ID), metadata={
        "description": "a user id: list that user's clips instead of yours — for an active "
                       "moderator of theirs (issue 17, item 6; else 403 FORBIDDEN)"})


class PlayResponse(Schema):
    url = fields.String(metadata={"description": "the clip's file for a <video> element: a "
                                                 "signed path, no token needed; HTTP Range"})
    expires_at = fields.String(metadata={"description": "ISO-8601 UTC; ask again after it"})


class DownloadLinkQuery(Schema):
    """How a file in the bucket is handed over (issue 15, item 3)."""

    link = fields.Boolean(load_default=False, metadata={
        "description": "with STORAGE_BACKEND=s3 and S3_DOWNLOAD_MODE=redirect: answer 200 "
                       "{url, expires_at} (the presigned URL) instead of the 302, for a page "
                       "whose script cannot follow a cross-origin redirect with its token; "
                       "otherwise the file as without it"})


#: The extra answers of a download whose file is in the bucket (OpenAPI ``responses``).
STORED_FILE_ANSWERS = {
    "302": {"description": "STORAGE_BACKEND=s3, S3_DOWNLOAD_MODE=redirect: the file is at a "
                           "presigned URL valid S3_PRESIGNED_SECONDS (it sets the same "
                           "Content-Type and Content-Disposition)",
            "headers": {"Location": {"description": "the presigned URL",
                                     "schema": {"type": "string"}}}}}
LINK_JSON = {"application/json": {"schema": {"type": "object", "properties": {
    "url": {"type": "string"}, "expires_at": {"type": "string"}}}}}


class PlayFileQuery(Schema):
    """The signature of a play URL (POST /api/video/play/{video_id} makes them)."""

    exp = fields.Integer(required=True, validate=validate.Range(min=0, max=2**53), metadata={
        "description": "expiry, POSIX seconds"})
    sig = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"), metadata={
        "description": "HMAC-SHA256 of the id and exp (hex)"})
