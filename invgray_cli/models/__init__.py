"""Stage 2 of the pipeline: the nets, the kinds of weights file (`kinds`), their one checked load and
atomic save (`weights`), and the zoo of shipped files (`zoo`)."""
from invgray_cli.models.net import InvertibleGray, NetConfig

__all__ = ["InvertibleGray", "NetConfig"]
