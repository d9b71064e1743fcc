"""Stage 3 of the pipeline: the codec. The nets on a device, tiled (``tiling``), and the stages
around them: the gray guard, the sync pattern and its frames, the block code, edge decoding."""
