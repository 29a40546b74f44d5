"""Object annotations for DevCV from real video: detector output in, ``*.objects.json`` out.

The DevCV builders read COCO-style ``annotations/<recording>.objects.json`` (docs/data-formats.md §1.6),
which real corpora do not ship. This plugin makes them, two ways, with the same score thresholds,
validation and per-file kept/dropped counts (``objects.ObjectsCollector``):

- ``babyvlm annotations import --format coco-results|yolo``: a detector's output files (``readers``);
- ``babyvlm annotations detect --annotator NAME``: an ``annotator`` plugin run in-process over the
  frames (``annotate``); bundled: ``synthetic_truth``, the synthetic world's own boxes.

``babyvlm annotations check`` reads files as the builders do. Registered: the ``annotations`` command
and the annotator ``synthetic_truth``. Heavy modules are imported only when a command runs.
"""

from babyvlm.core.hookspecs import hookimpl


@hookimpl
def register_annotators(register):
    register("synthetic_truth", "babyvlm.plugins.annotation_import.synthetic_truth:SyntheticTruthAnnotator")


@hookimpl
def register_commands(register):
    register("annotations", "babyvlm.plugins.annotation_import.commands:annotations_group",
             short_help="Object boxes for DevCV: import detector output, run an annotator, check files.")
