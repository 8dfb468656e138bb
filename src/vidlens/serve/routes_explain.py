"""`POST /v1/explain` (added to the app by `create_app`): where and when the served classifier looked.

Multipart `file` (a video, checked like every upload: 413/400/415) plus `method` (gradcam, gradcam++,
occlusion, integrated-gradients, attention, hirescam; default gradcam, occlusion for the audio-visual model), `model`
(`classifier`, the `--checkpoint`, or `av`, the `--av-model`; default the classifier when there is one),
optional `target` (a label; default: the predicted one), `clips` and `top_k` -> 202 and a job of kind `explain`
behind the same API key, queue and limits as the other jobs. The finished job's `result` holds the
explanation's JSON (target, probability, importance per second, ...) and `overlay` URLs of overlay.gif,
frames.png, temporal.png and overlay.mp4; `artifacts` lists every file.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse

__all__ = ["add_explain_routes"]
Method = Literal["gradcam", "gradcam++", "occlusion", "integrated-gradients", "attention", "hirescam"]


def add_explain_routes(app: FastAPI, rt: Callable[[], Any], accept: Callable[..., JSONResponse],
                       offered: Callable[[str], None], key_header: Any) -> None:
    """Register `POST /v1/explain`. `rt()`: the running `ServiceRuntime`; `accept(kind, upload, options)`
    queues a checked upload; `offered(kind)`: 503 unless the server offers it."""

    @app.post("/v1/explain", status_code=202, dependencies=[key_header], tags=["jobs"])
    def explain(file: Annotated[UploadFile, File(description="the video (mp4, avi, mkv, webm, mov, gif, ...)")],
                method: Annotated[Method | None, Form(description="how the explanation is made (default: gradcam; "
                                                                  "occlusion for the audio-visual model)")] = None,
                model: Annotated[Literal["classifier", "av"] | None, Form(
                    description="the served classifier (--checkpoint) or the audio-visual model (--av-model); "
                                "default: the classifier when there is one")] = None,
                target: Annotated[str | None, Form(description="the label to explain (default: the predicted one)")] = None,
                clips: Annotated[int | None, Form(ge=1, le=32, description="clips explained (default: up to 10)")] = None,
                top_k: Annotated[int, Form(ge=1, le=100)] = 5,
                overlay_video: Annotated[bool, Form(description="also overlay.mp4 and overlay.gif")] = True) -> JSONResponse:
        """Explain the classifier's decision on the video: heat over the frames (overlay.gif, frames.png) and
        which seconds drove it (temporal.png/.csv), with the JSON as the job's result."""
        served = rt().models
        av = (served.get("emotion") or {}).get("av_model")
        model = model or ("av" if av and not served.get("classify") else "classifier")
        if model == "av":
            if not av:
                raise HTTPException(503, "this server has no audio-visual model: start it with --av-model CKPT")
            labels = av["labels"]
        else:
            offered("classify")  # 503 naming --checkpoint when the server has no classifier
            labels = (served.get("classify") or {}).get("labels") or []
        target = (target or "").strip() or None
        if target is not None and labels and target not in labels:
            raise HTTPException(400, f"unknown label {target!r}; the model's labels: {', '.join(labels)}")
        return accept("explain", file, {"method": method, "target": target, "clips": clips, "top_k": top_k,
                                        "video": overlay_video, "model": model})
