"""bench.stages: the time of each encode and decode stage, and the share of those other than the nets."""
import pytest

from invgray_cli.bench.measure import synthetic_photo
from invgray_cli.bench.stages import NET_STAGES, OTHER_STAGES, stage_shares, stage_times
from invgray_cli.codec.nets import Codec
from invgray_cli.models.zoo import ModelInfo


def test_every_stage_is_timed_and_the_nets_are_left_out_of_the_share(tiny_model):
    info = ModelInfo("tiny", "0" * 64, tiny_model.divisibility, tiny_model.receptive_field)
    codec = Codec.from_model(tiny_model, info, device="cpu").with_gray_floor(0.99)  # the guard runs
    times = stage_times(codec, synthetic_photo((80, 64)), warmup=0, repeats=1)
    stages = set(NET_STAGES) | set(OTHER_STAGES["jpeg"])
    assert stages | {"encode_png_gray", "encode_jpeg_gray", "decode"} == set(times)
    assert all(times[name] > 0 for name in times)
    shares = stage_shares(times)
    assert 0 < shares["png"] < shares["jpeg"] < 1
    other = times["encode_png_gray"] - times["encoder_net"] + times["sync_pattern_find"] + times["sync_pattern_remove"]
    assert shares["png"] == pytest.approx(other / (other + times["encoder_net"] + times["decoder_net"]))
    assert stage_times(codec.with_gray_floor(None), synthetic_photo((32, 32)), 0, 1)["guard"] == 0.0
