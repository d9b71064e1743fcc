"""Stage train: joint training of the encoder/decoder (paper Sec. 5-6), resumable, CPU or GPU
(``loop``, one step's losses in ``step``, ``validation``, ``checkpoints``, ``config``); and the
trainers of the companion nets and the colouriser."""
