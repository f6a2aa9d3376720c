"""A `model_repository_implementation` as MLServer's users write one: a
`ModelRepository` whose models are the settings files it is given
(`model_repository_implementation_args: {"files": [...]}`), not the ones in
the models folder. While a file named `broken` sits in the root, listing
fails, as a repository whose backend is down does."""

import os
from typing import List

from mlserver.errors import ModelNotFound
from mlserver.repository.repository import ModelRepository
from mlserver.settings import ModelSettings


class ListedRepository(ModelRepository):
    def __init__(self, root: str, files: List[str]) -> None:
        self._root = root
        self._files = files

    async def list(self) -> List[ModelSettings]:
        if os.path.exists(os.path.join(self._root, "broken")):
            raise RuntimeError("the listing backend is down")
        return [ModelSettings.parse_file(path) for path in self._files]

    async def find(self, name: str) -> List[ModelSettings]:
        found = [m for m in await self.list() if m.name == name]
        if not found:
            raise ModelNotFound(name)
        return found
