"""The video-search routes of `vidlens serve --index PATH` (added to the app by `create_app`).

- `POST /v1/search`: one of a `file` (a clip, optional `start`/`end` seconds; or an image, told by its
  extension), `text`, or `video` (an indexed video's id or name: "more like this"), plus `k` -> 202 and a
  job like any other (same key, limits, 413/415/429, long poll); text and video queries are jobs without
  an upload. Result: the search's JSON (hits: video, video_id, start_s, end_s, score, kind, tags, why,
  thumbnail); artifacts `results.json`, `results.csv`, `sheet.png`, `hits/<rank>.jpg`.
- `GET /v1/index`: the index's facts and its videos. `POST /v1/index`: upload a video (`file`, optional
  user `text`) -> 202 and an `index` job. `DELETE /v1/index/{video}`: remove a video (id or name), at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vidlens.errors import VidlensError
from vidlens.serve.search import IMAGE_EXTENSIONS, remove_video

__all__ = ["add_search_routes", "image_facts", "IMAGE_EXTENSIONS"]
MAX_TEXT = 1000


def image_facts(path: Path) -> dict[str, Any]:
    """Width and height of an uploaded image; 415 when it cannot be decoded."""
    from vidlens.tasks.retrieval.search import load_image

    try:
        img = load_image(path)
    except VidlensError as exc:
        raise HTTPException(415, f"not a readable image: {exc.reason}") from None
    return {"width": int(img.shape[1]), "height": int(img.shape[0])}


def add_search_routes(app: FastAPI, rt: Callable[[], Any], accept: Callable[..., JSONResponse],
                      accept_query: Callable[..., JSONResponse], offered: Callable[[str], None], key_header: Any) -> None:
    """Register the search and index routes. `rt()`: the running `ServiceRuntime`; `accept`/`accept_query`:
    queue a job with / without an upload; `offered(kind)`: 503 unless the server offers `kind`."""

    def index() -> Any:
        offered("search")
        return rt().index

    @app.post("/v1/search", status_code=202, dependencies=[key_header], tags=["search"])
    def search(file: Annotated[UploadFile | None, File(description="a clip (any video) or an image (.jpg, .png, ...)")] = None,
               text: Annotated[str | None, Form(description="words matched against tags, labels and user text (not pixels)")] = None,
               video: Annotated[str | None, Form(description="an indexed video's id or name: more like this")] = None,
               k: Annotated[int, Form(ge=1, le=100)] = 10,
               start: Annotated[float | None, Form(ge=0, description="clip: first second used")] = None,
               end: Annotated[float | None, Form(gt=0, description="clip: last second used")] = None) -> JSONResponse:
        """Search the index by example clip, image, text or indexed video; the hits (one per video, best
        first, with the matching time range) are the job's result."""
        handle = index()
        given = [name for name, value in (("file", file), ("text", text), ("video", video)) if value not in (None, "")]
        if len(given) != 1:
            raise HTTPException(400, "give exactly one of: file (a clip or an image), text, video" +
                                (f" (got {', '.join(given)})" if given else ""))
        if file is not None:
            if start is not None and end is not None and end <= start:
                raise HTTPException(400, f"end ({end}) must be after start ({start})")
            return accept("search", file, {"k": k, "start": start, "end": end}, image_ok=True)
        if text is not None:
            words = text.strip()
            if not words or len(words) > MAX_TEXT:
                raise HTTPException(400, f"the text must have 1 to {MAX_TEXT} characters")
            return accept_query("search", "text-query", {"query": "text", "text": words, "k": k})
        row = handle.find(str(video).strip())
        if row is None:
            raise HTTPException(404, f"no video {video!r} in the index (see GET /v1/index)")
        return accept_query("search", "more-like-this", {"query": "video", "video": str(row["id"]), "k": k})

    @app.get("/v1/index", dependencies=[key_header], tags=["search"])
    def index_list() -> dict[str, Any]:
        """The index's facts (videos, segments, vectors, store backend) and its videos, oldest first."""
        handle = index()
        return {"index": handle.facts(), "videos": handle.listing()}

    @app.post("/v1/index", status_code=202, dependencies=[key_header], tags=["search"])
    def index_add(file: Annotated[UploadFile, File(description="the video to add (mp4, avi, mkv, webm, mov, ...)")],
                  text: Annotated[str, Form(description="your words for it: found by text search")] = "") -> JSONResponse:
        """Add a video to the index (a job; the file is kept beside the index so results can show it)."""
        offered("index")
        if len(text) > MAX_TEXT:
            raise HTTPException(400, f"the text must have at most {MAX_TEXT} characters")
        return accept("index", file, {"text": text.strip()})

    @app.delete("/v1/index/{video}", dependencies=[key_header], tags=["search"])
    async def index_remove(video: str) -> dict[str, Any]:
        """Remove a video (id or name) from the index, at once (waits for a write in progress)."""
        offered("index")
        handle = rt().index
        row = await run_in_threadpool(handle.find, video)
        if row is None:
            raise HTTPException(404, f"no video {video!r} in the index (see GET /v1/index)")
        done = await run_in_threadpool(remove_video, handle.path, str(row["id"]))
        if done is None:
            raise HTTPException(404, f"no video {video!r} in the index (removed meanwhile)")
        return done
