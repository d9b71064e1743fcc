"""Stage 1 of the pipeline: files in and out. Images read (``images``) and written (``writing``) by a
stated policy, JPEG tables and round trips (``jpeg``), the ``invgray`` chunk a gray carries
(``chunk``), safe opens and atomic writes (``filesystem``), which files a run reads (``inputs``) and
where it writes them (``paths``)."""
