"""Stage 2 (models): the zoo, one table of every shipped weights file, and the lookups into it.

Names follow timm's ``arch.tag`` convention. A codec model (the first one is the default) may have
companions, each naming the model it serves: a code detector, an edge decoder, a JPEG decoder and a
frame judge. Colourisers serve grays without a code. Each entry's file lies in :func:`weights_dir`
with its sha256 prefix in its name, and is loaded through ``weights.load_weights``, which checks
the whole sha256. Users may type a codec model's tag alone (``invisible_v2``) where it is unique.
"""
from __future__ import annotations

import difflib
import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from invgray_cli.errors import InvgrayError
from invgray_cli.models.detector import CodeDetector
from invgray_cli.models.frame_judge import FrameJudge
from invgray_cli.models.jpeg_decoder import JpegDecoder
from invgray_cli.models.kinds import (CODEC_NET, COLORIZER_NET, DETECTOR_NET, FRAME_JUDGE_NET, JPEG_DECODER_NET,
                                      NetKind)
from invgray_cli.models.net import EdgeDecoder, InvertibleGray
from invgray_cli.models.weights import LoadedWeights, load_weights
from invgray_cli.untrusted import printable

WEIGHTS_DIR_ENV = "INVGRAY_WEIGHTS_DIR"  # overrides where shipped weights are looked for
NAME_PATTERN = re.compile(r"[a-z0-9_]+\.[a-z0-9_]+")  # arch.tag


@dataclass(frozen=True)
class Role:
    """What a shipped file is for: ``key`` in JSON and `invgray models`, ``words`` in messages,
    and the kind of net its file holds."""

    key: str
    words: str
    kind: NetKind


CODEC = Role("codec", "codec model", CODEC_NET)
DETECTOR = Role("code_detector", "code detector", DETECTOR_NET)
EDGE_DECODER = Role("edge_decoder", "edge decoder", CODEC_NET)
JPEG_DECODER = Role("jpeg_decoder", "JPEG decoder", JPEG_DECODER_NET)
FRAME_JUDGE = Role("frame_judge", "frame judge", FRAME_JUDGE_NET)
COLORIZER = Role("colorizer", "colouriser", COLORIZER_NET)
ROLES = (CODEC, DETECTOR, EDGE_DECODER, JPEG_DECODER, FRAME_JUDGE, COLORIZER)


@dataclass(frozen=True, kw_only=True)
class WeightsEntry:
    """One shipped weights file and the facts the loader, the tiler and `invgray models` need."""

    name: str  # "arch.tag"
    role: Role
    file: str  # in weights_dir(); holds the sha256 prefix
    sha256: str  # of the whole file
    config: dict  # the net's config, as its file's metadata has it
    card: str  # the model card in weights_dir() (recipe, data, evaluation)
    description: str
    licence: str
    serves: str | None = None  # a companion: the name of the codec model it serves
    all_cuts: bool = False  # an edge decoder trained with --edge-all-cuts: it serves every cut edge
    # codec models: what the tiler needs, and the gray floor encode keeps by default (guard.py; None: off)
    divisibility: int | None = None
    receptive_field: int | None = None  # radius in pixels
    gray_floor: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: written into the gray's chunk and reported by the CLI."""

    name: str
    sha256: str
    divisibility: int
    receptive_field: int
    path: Path | None = None
    gray_floor: float | None = None  # from the zoo entry; None for a --weights file of another net


INVISIBLE_V2 = "igray_s4w96.invisible_v2"
S4W96 = {"scale": 4, "width": 96, "encoder_blocks": 4, "decoder_blocks": 4, "max_residual": 0.25,
         "carrier_gain": 0.25}
RESEARCH_PHOTOS = "code MIT; weights trained on research-use photos, see weights/{card}"

# Every shipped file. The first codec model is the default. Each file is made by the `invgray train*`
# command its card gives the recipe of.
ZOO: list[WeightsEntry] = [
    WeightsEntry(
        name=INVISIBLE_V2, role=CODEC, file="igray_s4w96_invisible_v2-5ee4bae4.safetensors",
        sha256="5ee4bae484eda4cd6ea76b76784834f4b887df73bdf98582deb5f7183bc137e1", config=S4W96,
        card="igray_s4w96.invisible_v2.md", divisibility=4, receptive_field=44, gray_floor=0.955,
        description="the gray first: photos789_v1 fine-tuned to hide its pattern on smooth photos and digital "
        "art (per-window structure hinge, defocus and synthetic-art crops); gray floor 0.955",
        licence=RESEARCH_PHOTOS.format(card="igray_s4w96.invisible_v2.md"),
    ),
    WeightsEntry(
        name="igray_s4w96.photos789_v1", role=CODEC, file="igray_s4w96_photos789_v1-9a9af3f1.safetensors",
        sha256="9a9af3f15fd568e4c2721851beacf4aeda927a998feca4eefbe7d9196cb675be", config=S4W96,
        card="igray_s4w96.photos789_v1.md", divisibility=4, receptive_field=44,
        description="colour first: 4x4-block nets (96 ch, 4+4 residual blocks) trained on 789 photos "
        "(BSDS500, COCO, Sun-Hays 80, Urban100); invgray 0.1's default",
        licence=RESEARCH_PHOTOS.format(card="igray_s4w96.photos789_v1.md"),
    ),
    WeightsEntry(
        name="idetect_p4w32.invisible_v2", role=DETECTOR, serves=INVISIBLE_V2,
        file="igray_s4w96_invisible_v2.detector-fe649633.safetensors",
        sha256="fe6496334ab2f1b7d59e316950a8abc99da48a4e4d2bf4f5ec80a94fd14b79c3", config={"period": 4, "width": 32},
        card="igray_s4w96.invisible_v2.md",
        description="tells decode whether a gray without a chunk still carries invisible_v2's colour code",
        licence=RESEARCH_PHOTOS.format(card="igray_s4w96.invisible_v2.md"),
    ),
    WeightsEntry(
        name="igray_s4w96.invisible_v2_edges", role=EDGE_DECODER, serves=INVISIBLE_V2, all_cuts=True,
        file="igray_s4w96_invisible_v2.edges-16862b64.safetensors",
        sha256="16862b6481a07b0924b3683bf43b620fbdae1cfbadba4afcc4c8840501540235", config=S4W96,
        card="igray_s4w96.invisible_v2.md",
        description="invisible_v2's decoder fine-tuned for the lines beside a crop's cut edges (every cut edge)",
        licence=RESEARCH_PHOTOS.format(card="igray_s4w96.invisible_v2.md"),
    ),
    WeightsEntry(
        name="ijpeg_u24.invisible_v2", role=JPEG_DECODER, serves=INVISIBLE_V2,
        file="igray_s4w96_invisible_v2.jpeg-8f7c1e6f.safetensors",
        sha256="8f7c1e6f5d286cd06241f668efcc7fb236b3811ac6b6383ddecb6a5683f0d614",
        config={"bottom_blocks": 2, "fine_planes": True, "levels": 2, "width": 24}, card="igray_s4w96.invisible_v2.md",
        description="colour of invisible_v2's JPEG grays from their luma, block code and the codec's own decode",
        licence=RESEARCH_PHOTOS.format(card="igray_s4w96.invisible_v2.md"),
    ),
    WeightsEntry(
        name="iframe_w32.invisible_v2", role=FRAME_JUDGE, serves=INVISIBLE_V2,
        file="igray_s4w96_invisible_v2.frames-30fbd979.safetensors",
        sha256="30fbd979ef3607a6b82fc0ad7769774d62ae373d29102db74cad7e8f6663da51", config={"width": 32},
        card="igray_s4w96.invisible_v2.md",
        description="picks the frame of a cropped, mirrored or turned invisible_v2 gray (decode --find-frame)",
        licence=RESEARCH_PHOTOS.format(card="igray_s4w96.invisible_v2.md"),
    ),
    WeightsEntry(
        name="icolor_u24p.palette_v2", role=COLORIZER, file="icolor_u24p.palette_v2-feaff511.safetensors",
        sha256="feaff51168fa23c810532376e54595c46d118fca9516b801b9e583d7c5f5757a",
        config={"bottom_blocks": 2, "follow_edges": True, "levels": 3, "palette_planes": True, "width": 24},
        card="icolor_u24p.palette_v2.md",
        description="hints_v1's U-Net given palette planes (--palette, --reference) and hint spreads that stop at "
        "the gray's edges; trained on 6,112 photos (CPU, 2000 steps from hints_v1)",
        licence=RESEARCH_PHOTOS.format(card="icolor_u24p.palette_v2.md"),
    ),
    WeightsEntry(
        name="icolor_u24.hints_v1", role=COLORIZER, file="icolor_u24.hints_v1-b402fab6.safetensors",
        sha256="b402fab6c9bcf3edb3ede7009b1c8608513a518bab82f7f5380d3bef1ee700bf",
        config={"bottom_blocks": 2, "levels": 3, "width": 24}, card="icolor_u24.hints_v1.md",
        description="a 24-channel U-Net over the gray, its hints and their box and bilateral-grid spreads; "
        "trained on the 789 training photos (CPU, 8000 steps in two runs)",
        licence=RESEARCH_PHOTOS.format(card="icolor_u24.hints_v1.md"),
    ),
]


def weights_dir() -> Path:
    """Folder of the shipped weights, found without network.

    Order: $INVGRAY_WEIGHTS_DIR; ``invgray_cli/weights`` package data (regular install);
    the repository's top-level ``weights/`` beside the package (source checkout, editable install).
    """
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env)
    packaged = resources.files("invgray_cli") / "weights"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "weights"


def entries(role: Role | None = None) -> list[WeightsEntry]:
    """The zoo's entries in table order, those of ``role`` only when given."""
    return [entry for entry in ZOO if role is None or entry.role == role]


def default_entry(role: Role = CODEC) -> WeightsEntry | None:
    """The first entry of ``role``: the default model (or colouriser); None when none ships."""
    return next(iter(entries(role)), None)


def default_model_name() -> str | None:
    entry = default_entry(CODEC)
    return None if entry is None else entry.name


def find_entry(name: str, role: Role = CODEC) -> WeightsEntry:
    """The entry of ``role`` called ``name``, or whose tag (or arch) alone is ``name`` when only one
    is; else a one-line error with the closest name and the known ones."""
    candidates = entries(role)
    matches = ([entry for entry in candidates if entry.name == name]
               or [entry for entry in candidates if entry.name.partition(".")[2] == name]
               or [entry for entry in candidates if entry.name.partition(".")[0] == name])
    if len(matches) == 1:
        return matches[0]
    shown = printable(name[:80])
    if matches:
        raise InvgrayError(f"{role.words} '{shown}' could be any of {', '.join(e.name for e in matches)}; "
                           "give the full name")
    spellings = [entry.name for entry in candidates] + [entry.name.partition(".")[2] for entry in candidates]
    close = difflib.get_close_matches(name, spellings, n=1)
    suggestion = f"; did you mean '{close[0]}'?" if close else ""
    known = ", ".join(entry.name for entry in candidates) or "none"
    raise InvgrayError(f"unknown {role.words} '{shown}'{suggestion} (shipped: {known}); see `invgray models`")


def load_entry(entry: WeightsEntry) -> LoadedWeights:
    """The net of a shipped entry, its file checked against the entry's sha256."""
    path = weights_dir() / entry.file
    if not path.is_file():
        raise InvgrayError(f"shipped {entry.role.words} is missing: {path} ('{entry.name}'); reinstall invgray")
    return load_weights(path, entry.role.kind, entry.sha256)


def companion(model_sha256: str, role: Role) -> WeightsEntry | None:
    """The entry of ``role`` serving the shipped codec model whose file has ``model_sha256``, or None."""
    model = next((entry for entry in entries(CODEC) if entry.sha256 == model_sha256), None)
    if model is None:
        return None
    return next((entry for entry in entries(role) if entry.serves == model.name), None)


def _companion_net(model_sha256: str, role: Role):
    entry = companion(model_sha256, role)
    return None if entry is None else load_entry(entry).net


@functools.lru_cache(maxsize=4)
def shipped_detector(model_sha256: str) -> CodeDetector | None:
    """The shipped code detector of the codec model with this sha256 (on the CPU), or None."""
    return _companion_net(model_sha256, DETECTOR)


@functools.lru_cache(maxsize=4)
def shipped_frame_judge(model_sha256: str) -> FrameJudge | None:
    """The shipped frame judge of the codec model with this sha256 (on the CPU), or None."""
    return _companion_net(model_sha256, FRAME_JUDGE)


@functools.lru_cache(maxsize=4)
def shipped_jpeg_decoder(model_sha256: str) -> JpegDecoder | None:
    """The shipped JPEG decoder of the codec model with this sha256 (on the CPU), or None."""
    return _companion_net(model_sha256, JPEG_DECODER)


@functools.lru_cache(maxsize=4)
def shipped_edge_decoder(model_sha256: str) -> EdgeDecoder | None:
    """The shipped edge decoder of the codec model with this sha256 (on the CPU), or None."""
    entry = companion(model_sha256, EDGE_DECODER)
    return None if entry is None else EdgeDecoder(load_entry(entry).net, entry.all_cuts)


def resolve_model(name: str | None = None, weights_path: str | Path | None = None) -> tuple[InvertibleGray, ModelInfo]:
    """The model to run: a user's ``weights_path``, else the shipped ``name``, else the default."""
    if weights_path is not None:
        loaded = load_weights(weights_path, CODEC_NET)
        # a shipped file named by path is that model, its gray floor included
        entry = next((e for e in entries(CODEC) if e.sha256 == loaded.sha256), None)
    else:
        entry = default_entry(CODEC) if name is None else find_entry(name)
        if entry is None:
            raise InvgrayError("no shipped weights; pass --weights PATH")
        loaded = load_entry(entry)
    net = loaded.net
    info = ModelInfo(loaded.name if entry is None else entry.name, loaded.sha256, net.divisibility,
                     net.receptive_field, loaded.path, None if entry is None else entry.gray_floor)
    return net, info


def shipped_file_name(name: str, sha256: str) -> str:
    """``igray.s2w48`` + sha -> ``igray_s2w48-1a2b3c4d.safetensors`` (the sha prefix is checked on load)."""
    return f"{name.replace('.', '_')}-{sha256[:8]}.safetensors"


def make_entry(path: str | Path, name: str, description: str, licence: str) -> WeightsEntry:
    """The zoo entry of a codec model's weights file (to paste into ZOO when shipping it)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvgrayError(f"model name '{printable(name)}' must look like arch.tag (lower case letters, digits, _)")
    loaded = load_weights(path, CODEC_NET)
    net = loaded.net
    return WeightsEntry(name=name, role=CODEC, file=shipped_file_name(name, loaded.sha256), sha256=loaded.sha256,
                        config=net.config.to_dict(), card=f"{name}.md", description=description, licence=licence,
                        divisibility=net.divisibility, receptive_field=net.receptive_field)
