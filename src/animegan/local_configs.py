"""Lets a `configs/` folder in the current directory override or add animegan configs.

A Hydra SearchPathPlugin that puts `./configs` in front of the shipped configs, so
`./configs/dataset/mine.yaml` adds a dataset and `./configs/model/dcgan64.yaml` replaces
the shipped one. It is registered by animegan's entry points rather than discovered
through the `hydra_plugins` namespace, which editable installs hide from Hydra's scan,
and it acts only on animegan's own search path.
"""

import contextlib
import os
from typing import Iterator, Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

SHIPPED = "pkg://animegan.configs"
_chosen: Optional[str] = None  # a folder chosen in Python (animegan.train(config_dir=...)), else ./configs


class LocalConfigsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not any(element.path == SHIPPED for element in search_path.get_path()):
            return  # another Hydra application in this process: leave it alone
        local = _chosen or os.path.join(os.getcwd(), "configs")
        if os.path.isdir(local):
            search_path.prepend(provider="animegan-local", path=f"file://{local}")


def register_local_configs() -> None:
    plugins = Plugins.instance()
    if LocalConfigsSearchPath not in plugins.discover(SearchPathPlugin):
        plugins.register(LocalConfigsSearchPath)


@contextlib.contextmanager
def local_configs_from(folder: Optional[str]) -> Iterator[None]:
    """Within the block, take the user's configs from `folder` instead of ./configs."""
    global _chosen
    previous, _chosen = _chosen, (os.path.abspath(folder) if folder else None)
    try:
        yield
    finally:
        _chosen = previous
