"""DevCV Toolbox: the twelve task plugins and the ``babyvlm tasks`` command group.

Tasks are registered by import string, so discovering plugins imports nothing heavy; each task module
holds one task and only says how its items are built (the contract, parsing, scoring, file I/O and
checks are shared: ``base``, ``parsing``, ``options``, ``itemio``, ``frames``, ``checks``).
"""

from babyvlm.core.hookspecs import hookimpl

TASKS = {
    "baby_pv": "picture_vocabulary:PictureVocabulary",
    "baby_winoground": "winoground:LookingWhileListening",
    "baby_localize": "localization:Localization",
    "baby_leftright": "left_right:LeftRight",
    "baby_spatialdetails": "spatial_details:SpatialDetails",
    "baby_vdr_binary": "vdr_binary:VDRBinary",
    "baby_vdr_open": "vdr_open:VDROpen",
    "baby_compare_real": "compare_real:WhoHasMoreReal",
    "baby_compare_synthetic": "compare_synthetic:WhoHasMoreSynthetic",
    "baby_count": "count:ObjectCounting",
    "baby_memory": "memory:DelayedMemory",
    "baby_subitize": "subitize:Subitizing",
}


@hookimpl
def register_tasks(register):
    for name, target in TASKS.items():
        register(name, f"babyvlm.plugins.devcv.{target}")


@hookimpl
def register_task_builders(register):
    register("devcv", "babyvlm.plugins.devcv.builder:DevCVTaskBuilder")


@hookimpl
def register_commands(register):
    register("tasks", "babyvlm.plugins.devcv.commands:tasks_group",
             short_help="DevCV tasks: list, build, check, show, instructions, export.")
