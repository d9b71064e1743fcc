"""Joint training of the encoder/decoder (paper Sec. 5-6), resumable, CPU or GPU."""
