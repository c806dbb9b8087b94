"""Video endpoints (spec: Video Endpoints 1-7)."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, g, request

from .. import schemas
from ..middleware.auth import (private_token_required, public_token_in_path,
                               public_token_required)
from ..services import download_service, stream_service, video_service
from ..utils.files import send_media  # X-Accel-Redirect when enabled
from . import Blueprint

blp = Blueprint("video", __name__, url_prefix="/api/video", description="Clips")

MIMETYPES = {"mp4": "video/mp4", "webm": "video/webm"}


@blp.post("/save")
@public_token_required
@blp.arguments(schemas.SaveVideoSchema)
@blp.response(201, schemas.SavedResponse)
def save(body):
    """Save a clip request (public token)."""
    video_id = video_service.save_clip(body, g.public_token)
    return {"message": "Video info saved successfully", "video_id": video_id}


@blp.route("/save/stream/<token>/<youtube_id>", methods=["GET", "POST"])
@public_token_in_path
@blp.arguments(schemas.SaveStreamQuery, location="query")
@blp.response(201, schemas.SavedResponse)
def save_stream(query, token, youtube_id):
    """Save a clip of a live stream at this moment (Nightbot; `live` = the channel's stream)."""
    saved = stream_service.save_stream_clip(
        youtube_id, query, datetime.now(timezone.utc), g.public_token,
        stream_service.parse_identity(request.headers.get("Nightbot-User")),
        stream_service.parse_identity(request.headers.get("Nightbot-Channel")))
    if _wants_text():
        return Response(stream_service.text_reply(saved, query.get("message")), 201,
                        mimetype="text/plain")
    return {"message": "Video clip saved successfully", "video_id": saved["video_id"],
            "youtube_video_id": saved["youtube_video_id"]}


def _wants_text() -> bool:
    """Chat bots get plain text: Nightbot headers present or ``?format=text`` (``json`` wins)."""
    chosen = request.args.get("format")
    nightbot = "Nightbot-User" in request.headers or "Nightbot-Channel" in request.headers
    return chosen == "text" or (nightbot and chosen != "json")


@blp.after_app_request
def _text_errors(response):
    """Errors of the stream save reach a chat as one short line with the same status code."""
    if request.endpoint == "video.save_stream" and response.status_code >= 400 \
            and response.is_json and _wants_text():
        body = response.get_json(silent=True) or {}
        response.set_data(stream_service.error_text(body.get("error", "error"),
                                                    body.get("code", "ERROR")))
        response.mimetype = "text/plain"
    return response


@blp.post("/download/<video_id>")
@private_token_required
@blp.arguments(schemas.DownloadSchema(), required=False)
@blp.alt_response(202, schema=schemas.ProcessingResponse, description="Still processing")
def download(prefs, video_id):
    """Download the clip's file; starts or joins the job and waits a little (else 202)."""
    result = download_service.request_download(video_id, g.current_user["user_id"], prefs or {})
    if result.get("processing"):
        return {"message": "Video is currently being processed", "status": "processing"}, 202
    response = send_media(result["file"], mimetype=MIMETYPES[result["ext"]])
    response.headers["Content-Disposition"] = \
        f'attachment; filename="video_{video_id}.{result["ext"]}"'
    return response


@blp.get("/status/<video_id>")
@private_token_required
@blp.alt_response(200, schema=schemas.VideoStatusSchema, description="The clip's status")
def status(video_id):
    """Status, progress and file facts of a clip (polled: answered without a schema dump)."""
    doc = video_service.get_owned(video_id, g.current_user["user_id"])
    return video_service.status_view(download_service.reap_if_dead(doc))


@blp.get("/list")
@private_token_required
@blp.response(200, schemas.VideoListSchema)
def list_videos():
    """All clips of the user, newest first."""
    return {"videos": video_service.list_clips(g.current_user["user_id"])}


@blp.get("/formats/<video_id>")
@private_token_required
@blp.response(200, schemas.FormatsResponse)
def formats(video_id):
    """Resolutions and containers available for a clip (document id) or a YouTube id."""
    return video_service.formats_for(video_id, g.current_user["user_id"])


@blp.post("/resolutions")
@blp.arguments(schemas.ResolutionsQuery)
@blp.response(200, schemas.ResolutionsResponse)
def resolutions(body):
    """Resolutions available for a video URL (no authentication)."""
    return video_service.resolutions_for(body["url"])
