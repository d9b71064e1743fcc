"""Stage 1 of the pipeline: files in and out. Images by a stated policy (``images``), the
``invgray`` chunk a gray carries (``chunk``), and which files a run reads and writes (``paths``)."""
