"""``invgray eval``: the codec's quality on folders of photos, measured the way users run it."""
