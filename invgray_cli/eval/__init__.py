"""Stage eval (``invgray eval``): the codec's quality on folders of photos, measured the way users run
it (``evaluate``: the folder run; ``scoring``: the measures; ``figures``: the comparison strips)."""
