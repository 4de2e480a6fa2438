"""Camera sources, capture threads, pairing and the recording format: frames in, paired frames out."""
