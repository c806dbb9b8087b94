"""A thumbnail of a clip's moment (issue 17, item 4): one frame of the finished file as JPEG.

The frame is grabbed from our own output (the clip just cut or encoded), read with the output
containers' demuxers only and ``-protocol_whitelist file`` (as :mod:`src.media.segment` probes
it), sought to the moment with an input ``-ss`` (ffmpeg decodes from the keyframe before it and
outputs the frame at it), scaled to at most :data:`MAX_HEIGHT` px high, written under a hidden
name and renamed, so a half-written thumbnail is never served. A clip without video (audio
only), or a frame that cannot be read, has none: the thumbnail never fails a clip.
"""
from __future__ import annotations

import logging
import os
import tempfile
from typing import Optional

from src.media.ffmpeg import FFmpegError, run_ffmpeg

log = logging.getLogger(__name__)

MAX_HEIGHT = 360
NAME = "thumbnail.jpg"
_INPUT = ("-format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm",
          "-protocol_whitelist", "file")


def grab(video_path: str, at: float, duration: Optional[float],
         timeout: float = 30.0) -> Optional[str]:
    """Write the frame ``at`` seconds into ``video_path`` (clamped inside ``duration``, the
    clip's length in seconds, when known) as ``thumbnail.jpg`` beside it; return its path, or
    None when there is no frame to grab (no video stream, an unreadable file, a timeout)."""
    if duration:
        at = min(at, max(0.0, duration - 0.5))
    folder = os.path.dirname(video_path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".thumbnail.", suffix=".jpg")
    os.close(fd)
    try:
        run_ffmpeg([*_INPUT, "-ss", f"{max(0.0, at):.3f}", "-i", video_path, "-map", "0:v:0",
                    "-frames:v", "1", "-vf", f"scale=-2:'min({MAX_HEIGHT},ih)'", "-c:v",
                    "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "4", "-map_metadata", "-1",
                    "-f", "mjpeg", tmp], timeout=timeout)
        if os.path.getsize(tmp) == 0:
            return None
        path = os.path.join(folder, NAME)
        os.replace(tmp, path)
        return path
    except (FFmpegError, OSError) as exc:
        log.info("no thumbnail for %s: %s", video_path, exc)
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
