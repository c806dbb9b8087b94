"""Video encoding endpoints (spec: Video Encoding Endpoints 1-5)."""
from __future__ import annotations

from flask import g, request
from marshmallow import Schema, fields, validate

from ..errors import ApiError
from ..media.encode import CODECS
from ..middleware.auth import private_token_required
from ..schemas import (
    BINARY,
    LINK_JSON,
    OBJECT_ID,
    STORED_FILE_ANSWERS,
    DownloadLinkQuery,
    EncodeStatusSchema,
    ProcessingResponse,
)
from ..services import encoding_service, upload_service
from ..utils.files import file_available, send_media  # X-Accel-Redirect when enabled
from . import NONE, PRIVATE, PRIVATE_401, Blueprint

blp = Blueprint("encode", __name__, url_prefix="/api/encode", description="Re-encode to MP4")

PRESETS = ("lossless", "high", "medium")


class StartSchema(Schema):
    video_codec = fields.String(required=True, validate=validate.OneOf(tuple(CODECS)))
    quality_preset = fields.String(required=True, validate=validate.OneOf(PRESETS))


class UploadResponse(Schema):
    message = fields.String()
    encode_id = fields.String()
    original_filename = fields.String()
    file_size_mb = fields.Float()
    metadata = fields.Dict()


class EncodedResponse(Schema):
    message = fields.String()
    encode_id = fields.String()
    file_size_mb = fields.Float()


class CodecsResponse(Schema):
    codecs = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


PROCESSING = {"message": "Video is currently being encoded", "status": "processing"}
ENCODE_ID = [{"in": "path", "name": "encode_id", "description": "the upload's id",
              "schema": {"type": "string", "pattern": OBJECT_ID}}]
OWNED = {401: PRIVATE_401, 403: "FORBIDDEN (not your upload)", 404: "NOT_FOUND"}
#: A finished encode that failed: 422 when its file caused it, 500 ours (encoding_service).
FAILED = {422: ", ".join(encoding_service.INPUT_FAILURES),
          500: "ENCODE_FAILED, JOB_INTERRUPTED, INTERNAL_ERROR"}
#: The upload's body (read from ``request.files`` by upload_service, so documented by hand).
UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["video"], "properties": {"video": {
        "type": "string", "format": "binary", "description": "the video file; its name must "
        "end in an allowed extension (mp4, avi, mkv, mov, flv, wmv, webm, m4v, mpg, mpeg, 3gp) "
        "and its content be one of the accepted containers"}}}, "encoding": {"video": {
            "contentType": "application/octet-stream", "headers": {
                "Content-Disposition": {"schema": {
                    "type": "string",
                    "example": 'form-data; name="video"; filename="clip.mp4"'}}}}}}}}
FILE_200 = {**STORED_FILE_ANSWERS, "200": {
    "description": "The encoded MP4 (`?link=true` with files in the bucket: its URL)",
    "content": {"video/mp4": BINARY, **LINK_JSON},
                    "headers": {"Content-Disposition": {
                        "description": 'attachment; filename="{name}_{codec}_{preset}.mp4"',
                        "schema": {"type": "string"}}}}}


@blp.post("/upload")
@private_token_required
@blp.response(201, UploadResponse)
@blp.errors({401: PRIVATE_401, 400: "NO_FILE, INVALID_FORMAT, FILE_TOO_LARGE, INVALID_VIDEO, "
             "UNSUPPORTED_FORMAT, VIDEO_TOO_LONG, RESOLUTION_TOO_HIGH, RESOLUTION_TOO_LOW, "
             "FRAME_RATE_TOO_HIGH",
             507: "INSUFFICIENT_STORAGE"})
@blp.doc(security=PRIVATE, requestBody=UPLOAD_BODY)
def upload():
    """Upload a video (multipart field ``video``) to encode later."""
    return upload_service.save_upload(request.files.get("video"), g.current_user["user_id"])


@blp.post("/start/<encode_id>", parameters=ENCODE_ID)
@private_token_required
@blp.arguments(StartSchema)
@blp.alt_response(200, schema=EncodedResponse, description="Encoded", success=True)
@blp.alt_response(202, schema=ProcessingResponse, description="Still encoding", success=True)
@blp.errors({**OWNED, 400: "VALIDATION_ERROR", 410: "UPLOAD_EXPIRED", 413: "REQUEST_TOO_LARGE",
             429: "TOO_MANY_JOBS", 507: "INSUFFICIENT_STORAGE", **FAILED})
@blp.doc(security=PRIVATE)
def start(body, encode_id):
    """Encode the upload to MP4 with a codec and quality preset; waits a little (else 202)."""
    result = encoding_service.start_encode(encode_id, g.current_user["user_id"],
                                           body["video_codec"], body["quality_preset"])
    return (PROCESSING, 202) if result.get("processing") else result


@blp.get("/status/<encode_id>", parameters=ENCODE_ID)
@private_token_required
@blp.alt_response(200, schema=EncodeStatusSchema, description="The encode's status",
                  success=True)
@blp.errors(OWNED)
@blp.doc(security=PRIVATE)
def status(encode_id):
    """Encoding status and progress (0-100)."""
    doc = upload_service.get_owned_upload(encode_id, g.current_user["user_id"])
    return encoding_service.status_view(encoding_service.reap_if_dead(doc))


@blp.post("/download/<encode_id>", parameters=ENCODE_ID)
@private_token_required
@blp.arguments(DownloadLinkQuery, location="query")
@blp.alt_response(202, schema=ProcessingResponse, description="Still encoding", success=True)
@blp.errors({**OWNED, 404: "NOT_FOUND (also: no encoded file yet, start the encode first)",
             410: "FILE_EXPIRED", 413: "REQUEST_TOO_LARGE", **FAILED})
@blp.doc(security=PRIVATE, responses=FILE_200)
def download(query, encode_id):
    """Download the encoded MP4 (202 while encoding)."""
    doc = encoding_service.reap_if_dead(
        upload_service.get_owned_upload(encode_id, g.current_user["user_id"]))
    if doc["status"] == "processing":
        return PROCESSING, 202
    if doc["status"] == "failed":
        raise encoding_service.failure_error(doc)
    if not file_available(doc):
        raise ApiError(404, "No encoded file for this request; start the encode first",
                       "NOT_FOUND")
    name = upload_service.download_name(doc)
    return send_media(doc["file_path"], mimetype="video/mp4", link=query["link"],
                      disposition=f'attachment; filename="{name}"')


@blp.get("/codecs")
@blp.response(200, CodecsResponse)
@blp.doc(security=NONE)
def codecs():
    """Supported codecs and quality presets (no authentication)."""
    return {"codecs": CODECS}
