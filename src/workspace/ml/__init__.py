"""Pre-annotation: per-project ML backends (a built-in text classifier, a built-in dictionary/pattern
tagger, and external backends speaking Label Studio's ML backend protocol) and the ``predict`` job that
runs one over a project's tasks and stores its predictions."""
