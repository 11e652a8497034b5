"""Tasks: the task, not the architecture, decides data format, loss, metrics and export.

One registered `Task` object per module here (`image_classification`,
`text_classification`, `token_classification`, `seq2seq`, `audio_classification`,
`speech_to_text`, `object_detection`); see `zoo.tasks.base` for what a task owns.

    from zoo.tasks import get_task, list_tasks
    get_task("image_classification").loss()
"""

from zoo.tasks.base import (
    CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, Endpoint, ExportSource, Request, Signatures, Task,
    get_task, list_tasks, register_task,
)
from zoo.tasks import (  # noqa: F401,E402 - registers the tasks
    audio_classification, image_classification, object_detection, seq2seq, speech_to_text, text_classification,
    token_classification,
)

__all__ = [
    "CLASSIFY_METHOD", "PREDICT_METHOD", "REGRESS_METHOD", "Endpoint", "ExportSource", "Request", "Signatures",
    "Task", "get_task", "list_tasks", "register_task", "task_for_feature", "task_for_signatures",
]


def task_for_feature(dtype, shape) -> str | None:
    """The name of the first task whose input reads a TFDS feature of `dtype` and `shape`."""
    for name in list_tasks():
        if get_task(name).reads_feature(dtype, shape):
            return name
    return None


def task_for_signatures(signatures: dict) -> Task | None:
    """The task whose exports have these signatures (a served model's metadata), if any."""
    for name in list_tasks():
        if get_task(name).serves(signatures):
            return get_task(name)
    return None
