"""Video encoding endpoints (spec: Video Encoding Endpoints 1-5)."""
from __future__ import annotations

from flask import g, request
from marshmallow import Schema, fields, validate

from ..errors import ApiError
from ..media.encode import CODECS
from ..schemas import ProcessingResponse
from ..middleware.auth import private_token_required
from ..services import encoding_service, upload_service
from ..utils.files import file_available, send_media  # X-Accel-Redirect when enabled
from . import Blueprint

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


@blp.post("/upload")
@private_token_required
@blp.response(201, UploadResponse)
def upload():
    """Upload a video (multipart field ``video``) to encode later."""
    return upload_service.save_upload(request.files.get("video"), g.current_user["user_id"])


@blp.post("/start/<encode_id>")
@private_token_required
@blp.arguments(StartSchema)
@blp.alt_response(200, schema=EncodedResponse, description="Encoded")
@blp.alt_response(202, schema=ProcessingResponse, description="Still encoding")
def start(body, encode_id):
    """Encode the upload to MP4 with a codec and quality preset; waits a little (else 202)."""
    result = encoding_service.start_encode(encode_id, g.current_user["user_id"],
                                           body["video_codec"], body["quality_preset"])
    return (PROCESSING, 202) if result.get("processing") else result


@blp.get("/status/<encode_id>")
@private_token_required
def status(encode_id):
    """Encoding status and progress (0-100)."""
    doc = upload_service.get_owned_upload(encode_id, g.current_user["user_id"])
    return encoding_service.status_view(encoding_service.reap_if_dead(doc))


@blp.post("/download/<encode_id>")
@private_token_required
def download(encode_id):
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
    response = send_media(doc["file_path"], mimetype="video/mp4")
    name = upload_service.download_name(doc)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@blp.get("/codecs")
@blp.response(200, CodecsResponse)
def codecs():
    """Supported codecs and quality presets (no authentication)."""
    return {"codecs": CODECS}
