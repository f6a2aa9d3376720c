"""A user's `model_repository_implementation`: the class MLServer's
`ModelRepositoryFactory` builds (`cls(root=model_repository_root,
**model_repository_implementation_args)`), asked for its models with
`list()` and `find(name)` as MLServer's start and repository handlers ask.

The server sends each model's settings on as MLServer's `ModelSettings`
hold them (the fields set, and the file they came from), and loads them as
it loads the folder's.
"""

import json

from .mlserver_api import result


class Repositories:
    """The repository instances, one per class and arguments, made on first
    use and kept: a repository may hold state (a client, a cache) between
    calls, as it does in MLServer's one process."""

    def __init__(self):
        self.instances = {}

    async def call(self, message: dict) -> bytes:
        repository = self._instance(message)
        if message["op"] == "find":
            found = await result(repository.find(message["name"]))
        else:
            found = await result(repository.list())
        return json.dumps([_described(settings) for settings in found]).encode()

    def _instance(self, message: dict):
        key = json.dumps(
            [message["implementation"], message["root"], message["args"]], sort_keys=True
        )
        instance = self.instances.get(key)
        if instance is None:
            # The import MLServer's settings do (pydantic's `ImportString`).
            from pydantic._internal._validators import import_string

            cls = import_string(message["implementation"])
            instance = cls(root=message["root"], **message["args"])
            self.instances[key] = instance
        return instance


def _described(settings) -> dict:
    from mlserver.settings import ModelSettings

    if not isinstance(settings, ModelSettings):
        raise TypeError(
            f"the model repository returned {type(settings).__name__}, not ModelSettings"
        )
    return {
        "settings": settings.model_dump(mode="json", by_alias=True, exclude_unset=True),
        "source": settings._source,
    }
