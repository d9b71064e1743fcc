"""Network architectures and the registry of shipped weights."""
from invgray_cli.models.net import InvertibleGray, NetConfig, rgb_to_luma

__all__ = ["InvertibleGray", "NetConfig", "rgb_to_luma"]
